// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/test/testenv"
)

// relaySocket attaches a relay socket on 127.0.0.1 to e, configured by cfg
// (whose Sink may be nil: packets that get through the stages are then
// dropped and counted).
func relaySocket(t *testing.T, e *media.Engine, g media.Group) *media.Stream {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		_ = unix.Close(fd)
		testenv.Unavailable(t, "cannot bind 127.0.0.1: %v", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	local := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	s, err := e.Attach(g, media.Socket{FD: fd, Local: local}, nil)
	if err != nil {
		_ = unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(s.Detach)
	return s
}

func newEngine(t *testing.T) *media.Engine {
	t.Helper()
	e, err := media.NewEngine(media.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// peerSocket is the far end: a browser's or a phone's UDP socket.
func peerSocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		testenv.Unavailable(t, "cannot bind 127.0.0.1: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// read waits for one datagram on c.
func read(t *testing.T, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("read on %v: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(25 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(time.Millisecond)
	}
}
