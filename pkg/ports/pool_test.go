// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
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
		for j, c := range a.Conns {
			got := c.LocalAddr().(*net.UDPAddr)
			if got.Port != a.Port+j || !got.IP.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("socket %d bound to %v, want 127.0.0.1:%d", j, got, a.Port+j)
			}
			if seen[got.Port] {
				t.Errorf("port %d handed out twice", got.Port)
			}
			seen[got.Port] = true
		}
	}
	if _, err := p.Allocate(2); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted pool: got %v, want ErrNoPorts", err)
	}
	if used, total := p.Stats(); used != 5 || total != 5 {
		t.Errorf("stats used=%d total=%d, want 5/5", used, total)
	}
	allocs[2].Release()
	allocs[2].Release() // idempotent
	a, err := p.Allocate(1)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if a.Port != allocs[2].Port || len(a.Conns) != 1 {
		t.Errorf("got port %d with %d sockets, want the released %d with 1", a.Port, len(a.Conns), allocs[2].Port)
	}
	for _, a := range append(allocs, a) {
		a.Release()
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
		t.Skipf("port 21100 not free on this host: %v", err)
	}
	defer busy.Close()
	a, err := p.Allocate(2)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
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
		a.Release()
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
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	defer a.Release()
	if got := a.Conns[0].LocalAddr().String(); got != "[::1]:21200" {
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
		t.Skipf("cannot lower RLIMIT_NOFILE: %v", err)
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
	a.Release()
	if used, total := p.Stats(); used != 0 || total != 2 {
		t.Errorf("used=%d total=%d", used, total)
	}
}
