// SPDX-License-Identifier: Apache-2.0

package media

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/test/testenv"
)

const recvTimeout = 2 * time.Second

// testClock is an engine clock that only moves when a test says so: learning
// windows end when the test advances it, not after a real wait that a slow
// machine or the race detector could stretch.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newTestEngine starts an engine of two workers on a testClock.
func newTestEngine(t *testing.T, window time.Duration) *Engine {
	t.Helper()
	clk := &testClock{now: time.Now()}
	e, err := NewEngine(Config{Workers: 2, LearningWindow: window, Now: clk.Now})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	engineClocks.Store(e, clk)
	t.Cleanup(func() {
		_ = e.Close()
		engineClocks.Delete(e)
	})
	return e
}

// engineClocks finds the testClock of an engine made by newTestEngine.
var engineClocks sync.Map // *Engine -> *testClock

// pastWindow moves e's clock past the learning window of every Configure so
// far.
func pastWindow(t *testing.T, e *Engine) {
	t.Helper()
	clk, ok := engineClocks.Load(e)
	if !ok {
		t.Fatal("pastWindow needs an engine from newTestEngine")
	}
	clk.(*testClock).advance(e.window + time.Millisecond)
}

// listen binds a UDP socket on ip with a kernel-chosen port.
func listen(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		testenv.Unavailable(t, "cannot bind %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// party is a phone: a plain socket that sends to and receives from the relay
// of engine e.
type party struct {
	t    *testing.T
	e    *Engine
	conn *net.UDPConn
	addr netip.AddrPort
}

func newParty(t *testing.T, e *Engine, ip string) *party {
	t.Helper()
	c := listen(t, ip)
	return &party{t: t, e: e, conn: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (p *party) send(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatalf("send from %s to %s: %v", p.addr, to, err)
	}
}

// expect waits for want, which must come from the relay socket from.
func (p *party) expect(want []byte, from netip.AddrPort) {
	p.t.Helper()
	buf := make([]byte, 70000)
	_ = p.conn.SetReadDeadline(time.Now().Add(recvTimeout))
	n, src, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("%s: waiting for % x from %s: %v", p.addr, head(want), from, err)
	}
	if !bytes.Equal(buf[:n], want) {
		p.t.Fatalf("%s: got % x, want % x", p.addr, head(buf[:n]), head(want))
	}
	if !sameEndpoint(src, from) {
		p.t.Fatalf("%s: packet came from %s, want the relay socket %s", p.addr, src, from)
	}
}

// expectNothing checks that nothing reached p: once the engine has handled
// every datagram sent to it so far (settle), whatever it forwarded is already
// queued on p's socket (loopback delivers within the send), so an empty queue
// proves nothing was forwarded — no waiting for a quiet period.
func (p *party) expectNothing() {
	p.t.Helper()
	settle(p.t, p.e)
	buf := make([]byte, 70000)
	_ = p.conn.SetReadDeadline(time.Now())
	n, src, err := p.conn.ReadFromUDPAddrPort(buf)
	if err == nil {
		p.t.Fatalf("%s: got % x from %s, want nothing", p.addr, head(buf[:n]), src)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		p.t.Fatalf("%s: read: %v", p.addr, err)
	}
}

// settle returns once e has read every datagram queued on its sockets and
// finished handling it, sends included: each socket's queue is empty, then
// every worker has finished two loop passes (a datagram handed to another
// worker is sent on that worker's next pass).
func settle(t testing.TB, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(recvTimeout)
	var one [1]byte
	e.table.each(func(s *Stream) {
		for !s.fdClosed.Load() {
			_, _, err := unix.Recvfrom(s.fd, one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EBADF) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: datagrams still queued on the socket", s.local)
			}
			time.Sleep(100 * time.Microsecond)
		}
	})
	for range 2 {
		if e.closed.Load() {
			return // no worker runs any more
		}
		for _, w := range e.workers {
			for p := w.passes.Load(); w.passes.Load() <= p; {
				if time.Now().After(deadline) {
					t.Fatalf("worker %d never finished a pass", w.idx)
				}
				w.kick()
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// leg is a relay socket attached to the engine; closed is closed once the
// engine reports the socket closed.
type leg struct {
	s      *Stream
	fd     int
	closed chan struct{}
}

// bindSocket opens a non-blocking UDP socket on ip with a kernel-chosen port,
// the way the port pools hand them to the engine.
func bindSocket(tb testing.TB, ip string) Socket {
	tb.Helper()
	a := netip.MustParseAddr(ip)
	var fam int
	var sa unix.Sockaddr
	if a.Is4() {
		fam, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: a.As4()}
	} else {
		fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: a.As16()}
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("socket: %v", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		testenv.Unavailable(tb, "cannot bind %s: %v", ip, err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		tb.Fatalf("getsockname: %v", err)
	}
	var port int
	switch g := got.(type) {
	case *unix.SockaddrInet4:
		port = g.Port
	case *unix.SockaddrInet6:
		port = g.Port
	}
	return Socket{FD: fd, Local: netip.AddrPortFrom(a, uint16(port))}
}

func attach(t *testing.T, e *Engine, ip string) *leg {
	t.Helper()
	return attachIn(t, e, Group{}, ip)
}

func attachIn(t *testing.T, e *Engine, g Group, ip string) *leg {
	t.Helper()
	sock := bindSocket(t, ip)
	l := &leg{fd: sock.FD, closed: make(chan struct{})}
	s, err := e.Attach(g, sock, func() { close(l.closed) })
	if err != nil {
		_ = unix.Close(sock.FD)
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(s.Detach)
	l.s = s
	return l
}

func (l *leg) addr() netip.AddrPort { return l.s.LocalAddr() }

// call is two parties, each facing its own relay socket, cross-wired.
type call struct {
	a, b   *party
	ra, rb *leg
}

// newCall wires A <-> ra ... rb <-> B with both SDP endpoints set to the
// parties' sockets; mod may change each side's StreamConfig.
func newCall(t *testing.T, e *Engine, ip string, modA, modB func(*StreamConfig)) *call {
	t.Helper()
	g := e.NewGroup()
	c := &call{a: newParty(t, e, ip), b: newParty(t, e, ip), ra: attachIn(t, e, g, ip), rb: attachIn(t, e, g, ip)}
	ca := StreamConfig{Sink: c.rb.s, Peer: c.a.addr}
	cb := StreamConfig{Sink: c.ra.s, Peer: c.b.addr}
	if modA != nil {
		modA(&ca)
	}
	if modB != nil {
		modB(&cb)
	}
	c.ra.s.Configure(ca)
	c.rb.s.Configure(cb)
	return c
}

// aToB sends from A and checks B gets it from rb.
func (c *call) aToB(t *testing.T, pkt []byte) {
	t.Helper()
	c.a.send(c.ra.addr(), pkt)
	c.b.expect(pkt, c.rb.addr())
}

// bToA sends from B and checks A gets it from ra.
func (c *call) bToA(t *testing.T, pkt []byte) {
	t.Helper()
	c.b.send(c.rb.addr(), pkt)
	c.a.expect(pkt, c.ra.addr())
}

// waitClosed waits until the engine reports l's socket closed.
func (l *leg) waitClosed(t *testing.T) {
	t.Helper()
	select {
	case <-l.closed:
	case <-time.After(recvTimeout):
		t.Fatalf("%v: socket never reported closed", l.addr())
	}
}

// waitStats polls until cond holds for s's stats (the worker counts after the
// packet left, so a reader may be a little ahead).
func waitStats(t *testing.T, s *Stream, what string, cond func(StreamStats) bool) StreamStats {
	t.Helper()
	deadline := time.Now().Add(recvTimeout)
	for {
		st := s.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats never matched: %+v", what, st)
		}
		time.Sleep(time.Millisecond)
	}
}
