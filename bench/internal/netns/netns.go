// SPDX-License-Identifier: Apache-2.0

package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Path is where `ip netns add NAME` makes a namespace reachable.
func Path(name string) string { return "/run/netns/" + name }

// Do runs fn on an OS thread that has joined the network namespace at path.
// Sockets fn creates stay in that namespace for their whole life, whatever
// thread later uses them. An empty path runs fn in the caller's namespace.
//
// The thread returns to its own namespace afterwards instead of being thrown
// away: a thread's exit fires the parent-death signal of every child it
// happened to fork, and the relay runner relies on that signal.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			// A thread stuck in the other namespace must never run another
			// goroutine; staying locked makes the runtime discard it.
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			restored = true
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			restored = true
			errc <- fmt.Errorf("open netns: %w", err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			restored = true
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("return from %s: %w", path, err))
			return
		}
		restored = true
		errc <- fnErr
	}()
	return <-errc
}

// ReadFile reads a per-namespace file such as /proc/thread-self/net/snmp as
// seen from inside the namespace at path.
func ReadFile(path, file string) ([]byte, error) {
	var data []byte
	err := Do(path, func() error {
		var err error
		data, err = os.ReadFile(file)
		return err
	})
	return data, err
}
