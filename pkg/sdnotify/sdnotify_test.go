// SPDX-License-Identifier: Apache-2.0

package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func recv(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSendPathAndAbstract(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	n := FromEnv()
	if !n.Enabled() {
		t.Fatal("not enabled with NOTIFY_SOCKET set")
	}
	if err := n.Ready("up"); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, conn), "READY=1\nMAINPID="+strconv.Itoa(os.Getpid())+"\nSTATUS=up"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	abstract := "relayd-sdnotify-test-" + strconv.Itoa(os.Getpid())
	aconn := listen(t, "\x00"+abstract)
	t.Setenv("NOTIFY_SOCKET", "@"+abstract)
	if err := FromEnv().Stopping(); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, aconn); got != "STOPPING=1\nSTATUS=stopping" {
		t.Errorf("abstract socket got %q", got)
	}
}

func TestNoSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := FromEnv()
	if n.Enabled() || n.Watchdog() != nil {
		t.Error("no socket: want a silent no-op")
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		usec, pid string
		want      time.Duration
		ok, err   bool
	}{
		{"", "", 0, false, false},
		{"30000000", "", 30 * time.Second, true, false},
		{"30000000", pid, 30 * time.Second, true, false},
		{"30000000", "1", 0, false, false},
		{"abc", "", 0, false, true},
		{"0", "", 0, false, true},
	} {
		t.Setenv("WATCHDOG_USEC", c.usec)
		t.Setenv("WATCHDOG_PID", c.pid)
		d, ok, err := WatchdogInterval()
		if d != c.want || ok != c.ok || (err != nil) != c.err {
			t.Errorf("USEC=%q PID=%q: %v %v %v", c.usec, c.pid, d, ok, err)
		}
	}
}
