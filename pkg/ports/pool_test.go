// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/test/testenv"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestAllocatePairsAreEvenOddAndBound(t *testing.T) {
	p, err := NewPool(loopback, 21000, 21009)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	var allocs []*Allocation
	for i := 0; i < 5; i++ {
		a, err := p.Allocate(2)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		allocs = append(allocs, a)
		if a.Port%2 != 0 {
			t.Errorf("RTP port %d is odd", a.Port)
		}
		for j, s := range a.Sockets {
			got := boundAddr(t, s.FD)
			if int(got.Port()) != a.Port+j || got.Addr() != loopback || s.Local != got {
				t.Errorf("socket %d bound to %v (says %v), want 127.0.0.1:%d", j, got, s.Local, a.Port+j)
			}
			if seen[int(got.Port())] {
				t.Errorf("port %d handed out twice", got.Port())
			}
			seen[int(got.Port())] = true
		}
	}
	if _, err := p.Allocate(2); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted pool: got %v, want ErrNoPorts", err)
	}
	if used, total := p.Stats(); used != 5 || total != 5 {
		t.Errorf("stats used=%d total=%d, want 5/5", used, total)
	}
	allocs[2].Close()
	allocs[2].Close() // idempotent
	a, err := p.Allocate(1)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if a.Port != allocs[2].Port || len(a.Sockets) != 1 {
		t.Errorf("got port %d with %d sockets, want the released %d with 1", a.Port, len(a.Sockets), allocs[2].Port)
	}
	for _, a := range append(allocs, a) {
		a.Close()
	}
	if used, _ := p.Stats(); used != 0 {
		t.Errorf("used=%d after releasing all", used)
	}
}

func TestAllocateSkipsPortsBusyElsewhere(t *testing.T) {
	p, err := NewPool(loopback, 21100, 21103)
	if err != nil {
		t.Fatal(err)
	}
	// Occupy 21100 with a foreign socket: only 21102 can be handed out.
	busy, err := net.ListenPacket("udp4", "127.0.0.1:21100")
	if err != nil {
		testenv.Unavailable(t, "port 21100 not free on this host: %v", err)
	}
	defer busy.Close()
	a, err := p.Allocate(2)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Port != 21102 {
		t.Errorf("got %d, want 21102", a.Port)
	}
	if _, err := p.Allocate(2); !errors.Is(err, ErrNoPorts) {
		t.Errorf("got %v, want ErrNoPorts", err)
	}
}

func TestAllocationOrderIsRandom(t *testing.T) {
	orders := map[string]bool{}
	for i := 0; i < 5; i++ {
		p, err := NewPool(loopback, 21500, 21999)
		if err != nil {
			t.Fatal(err)
		}
		a, err := p.Allocate(2)
		if err != nil {
			t.Fatal(err)
		}
		orders[strconv.Itoa(a.Port)] = true
		a.Close()
	}
	if len(orders) < 2 {
		t.Errorf("5 fresh pools all started at the same port: %v", orders)
	}
}

func TestIPv6(t *testing.T) {
	p, err := NewPool(netip.IPv6Loopback(), 21200, 21201)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Allocate(2)
	if err != nil {
		testenv.Unavailable(t, "no IPv6 loopback here: %v", err)
	}
	defer a.Close()
	if got := boundAddr(t, a.Sockets[0].FD).String(); got != "[::1]:21200" {
		t.Errorf("bound to %s", got)
	}
}

func TestBadRange(t *testing.T) {
	for _, r := range [][2]int{{41301, 41301}, {41300, 41300}, {41310, 41300}} {
		if _, err := NewPool(loopback, r[0], r[1]); !errors.Is(err, ErrBadRange) {
			t.Errorf("range %v: got %v, want ErrBadRange", r, err)
		}
	}
}

// Running out of descriptors is an error like running out of ports, and the
// slot is not lost.
func TestOutOfDescriptors(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(loopback, 21400, 21403)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the descriptor table up to a low soft limit.
	var hold []*net.UDPConn
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	lim := old
	lim.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		testenv.Unavailable(t, "cannot lower RLIMIT_NOFILE: %v", err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	for {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			break
		}
		hold = append(hold, c)
	}
	if _, err := p.Allocate(2); !errors.Is(err, ErrNoDescriptors) {
		t.Fatalf("got %v, want ErrNoDescriptors", err)
	}
	for _, c := range hold {
		c.Close()
	}
	hold = nil
	a, err := p.Allocate(2)
	if err != nil {
		t.Fatalf("after freeing descriptors: %v", err)
	}
	a.Close()
	if used, total := p.Stats(); used != 0 || total != 2 {
		t.Errorf("used=%d total=%d", used, total)
	}
}

// boundAddr asks the kernel what fd is bound to.
func boundAddr(t *testing.T, fd int) netip.AddrPort {
	t.Helper()
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	t.Fatalf("unexpected sockaddr %T", sa)
	return netip.AddrPort{}
}

// A socket handed over stays open when the allocation is closed, and the slot
// comes back only once its new owner reports it closed.
func TestHandOver(t *testing.T) {
	p, err := NewPool(loopback, 21600, 21601)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Allocate(2)
	if err != nil {
		t.Fatal(err)
	}
	if !a.HandOver(0) || a.HandOver(0) {
		t.Fatal("HandOver: want true once, then false")
	}
	a.Close()
	if _, err := unix.Getsockname(a.Sockets[0].FD); err != nil {
		t.Fatalf("handed-over socket closed by Close: %v", err)
	}
	if used, _ := p.Stats(); used != 1 {
		t.Fatalf("used=%d while the handed-over socket is open, want 1", used)
	}
	if _, err := p.Allocate(2); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("slot handed out again while a socket is open: %v", err)
	}
	_ = unix.Close(a.Sockets[0].FD)
	a.SocketClosed()
	if used, _ := p.Stats(); used != 0 {
		t.Fatalf("used=%d after the last socket closed, want 0", used)
	}
	b, err := p.Allocate(2)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Close()
}

// Binding runs outside the pool's lock: allocations from many goroutines
// never hand out one slot twice.
func TestConcurrentAllocate(t *testing.T) {
	p, err := NewPool(loopback, 21700, 21799)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int]bool{}
	var allocs []*Allocation
	defer func() {
		for _, a := range allocs {
			a.Close()
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				a, err := p.Allocate(2)
				if err != nil {
					t.Errorf("allocate: %v", err)
					return
				}
				mu.Lock()
				if seen[a.Port] {
					t.Errorf("port %d handed out twice", a.Port)
				}
				seen[a.Port] = true
				allocs = append(allocs, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if used, _ := p.Stats(); used != 40 {
		t.Errorf("used=%d, want 40", used)
	}
}

// Claim takes the exact slot a restarted relay had; Allocate never hands it
// out meanwhile, and it returns to the pool when released.
func TestClaim(t *testing.T) {
	p, err := NewPool(loopback, 21800, 21805)
	if err != nil {
		t.Fatal(err)
	}
	a, err := p.Claim(21802, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := boundAddr(t, a.Sockets[1].FD); got.Port() != 21803 {
		t.Errorf("claimed RTCP socket on %v", got)
	}
	if _, err := p.Claim(21802, 2); !errors.Is(err, ErrInUse) {
		t.Errorf("second claim: %v, want ErrInUse", err)
	}
	if _, err := p.Claim(21803, 1); !errors.Is(err, ErrBadRange) {
		t.Errorf("odd claim: %v, want ErrBadRange", err)
	}
	var others []*Allocation
	for {
		b, err := p.Allocate(2)
		if err != nil {
			break
		}
		if b.Port == 21802 {
			t.Fatal("Allocate handed out the claimed slot")
		}
		others = append(others, b)
	}
	if len(others) != 2 {
		t.Errorf("%d other slots, want 2", len(others))
	}
	a.Close()
	if used, _ := p.Stats(); used != 2 {
		t.Errorf("used=%d after releasing the claim, want 2", used)
	}
	b, err := p.Allocate(2)
	if err != nil || b.Port != 21802 {
		t.Fatalf("after release: %v, %v", b, err)
	}
	for _, x := range append(others, b) {
		x.Close()
	}
}

// A standby binds the ports of a floating address it does not have yet;
// without free binding the same bind fails.
func TestFreeBindHoldsAnAbsentAddress(t *testing.T) {
	absent := netip.MustParseAddr("192.0.2.77") // TEST-NET-1: on no interface here
	p, err := NewPool(absent, 21800, 21803)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := p.Claim(21800, 2); err == nil {
		a.Close()
		t.Skip("192.0.2.77 is bindable here (net.ipv4.ip_nonlocal_bind set?)")
	}
	p.SetFreeBind(true)
	a, err := p.Claim(21800, 2)
	if err != nil {
		t.Fatalf("claim with free binding: %v", err)
	}
	defer a.Close()
	if got := a.Sockets[1].Local; got != netip.MustParseAddrPort("192.0.2.77:21801") {
		t.Errorf("second socket on %v", got)
	}
	b, err := p.Allocate(1)
	if err != nil {
		t.Fatalf("allocate with free binding: %v", err)
	}
	b.Close()
}
