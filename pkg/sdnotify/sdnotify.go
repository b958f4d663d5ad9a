// SPDX-License-Identifier: Apache-2.0

// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3)): newline-separated VAR=value lines in one datagram to the
// AF_UNIX socket named by $NOTIFY_SOCKET. It is a few dozen lines, so relayd
// implements it rather than pulling in a library; with no socket in the
// environment (not started by systemd with Type=notify) every call is a no-op.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notifier sends state lines to the service manager.
type Notifier struct {
	addr *net.UnixAddr // nil: not supervised
}

// FromEnv reads $NOTIFY_SOCKET: a path, or "@name" for the abstract
// namespace.
func FromEnv() *Notifier {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return &Notifier{}
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}
}

// Enabled reports whether a service manager listens.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends state, e.g. "READY=1" or "STOPPING=1\nSTATUS=stopping".
func (n *Notifier) Send(state string) error {
	if !n.Enabled() {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready tells the manager start-up is complete.
func (n *Notifier) Ready(status string) error {
	return n.Send(fmt.Sprintf("READY=1\nMAINPID=%d\nSTATUS=%s", os.Getpid(), status))
}

// Stopping tells the manager shutdown has begun.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1\nSTATUS=stopping") }

// Watchdog is one keep-alive ping.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

// WatchdogInterval is WatchdogSec= as systemd passes it ($WATCHDOG_USEC,
// for this process when $WATCHDOG_PID is set); ok is false when the
// watchdog is off. Keep-alives should come at half this interval.
func WatchdogInterval() (time.Duration, bool, error) {
	us := os.Getenv("WATCHDOG_USEC")
	if us == "" {
		return 0, false, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, false, fmt.Errorf("WATCHDOG_PID=%q: %w", pid, err)
		}
		if p != os.Getpid() {
			return 0, false, nil // meant for another process
		}
	}
	n, err := strconv.ParseUint(us, 10, 63)
	if err != nil || n == 0 {
		return 0, false, errors.Join(fmt.Errorf("WATCHDOG_USEC=%q is not a positive number", us), err)
	}
	return time.Duration(n) * time.Microsecond, true, nil
}
