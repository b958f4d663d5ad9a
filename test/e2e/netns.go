// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DoInNetns runs fn on an OS thread that has joined the network namespace at
// nsPath (e.g. /run/netns/NAME). Sockets fn creates stay in that namespace for
// their lifetime, whatever thread later uses them.
//
// The thread returns to its original namespace afterwards instead of being
// discarded: a thread's exit fires the parent-death signal of every child
// process it happened to fork, and the harness relies on that signal.
func DoInNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			// A thread stuck in the other namespace must never run another
			// goroutine; leaving it locked makes the runtime discard it.
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			restored = true
			return
		}
		defer orig.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			errc <- fmt.Errorf("open netns: %w", err)
			restored = true
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", nsPath, err)
			restored = true
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return from %s: %w", nsPath, err))
			return
		}
		restored = true
		errc <- fnErr
	}()
	return <-errc
}

// ListenUDPInNetns opens a UDP socket bound to laddr inside the network
// namespace at nsPath.
func ListenUDPInNetns(nsPath string, laddr *net.UDPAddr) (*net.UDPConn, error) {
	var conn *net.UDPConn
	err := DoInNetns(nsPath, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", laddr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen udp %v in %s: %w", laddr, nsPath, err)
	}
	return conn, nil
}
