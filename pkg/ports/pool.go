// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Pool hands out ports of one local address. Slots are even base ports: a pair
// uses base and base+1, a single port uses base alone (its odd neighbour stays
// reserved with it, so pairs never straddle an allocation).
//
// The lock guards the free list only: binding happens outside it, so one
// offer's bind never holds up another's allocation.
type Pool struct {
	addr     netip.Addr
	min, max int
	// freeBind binds to the address even while it is not on this host: a
	// standby holds the ports of a floating address (VRRP) before the
	// address moves to it.
	freeBind atomic.Bool

	mu    sync.Mutex
	free  []int // even bases, shuffled at start; freed ones go to the tail
	head  int   // free[head:] are the free slots (a ring would save nothing here)
	inUse int
	total int
	// claimed are bases taken by Claim that may still sit in free: take
	// skips them there.
	claimed map[int]bool
}

// NewPool builds the pool of addr for ports min..max. The free list is shuffled
// so that port numbers cannot be predicted (RTP Bleed mitigation).
func NewPool(addr netip.Addr, min, max int) (*Pool, error) {
	first := min + min%2
	var bases []int
	for p := first; p+1 <= max; p += 2 {
		bases = append(bases, p)
	}
	if len(bases) == 0 {
		return nil, fmt.Errorf("%s %d-%d: %w", addr, min, max, ErrBadRange)
	}
	rand.Shuffle(len(bases), func(i, j int) { bases[i], bases[j] = bases[j], bases[i] })
	return &Pool{addr: addr.Unmap(), min: min, max: max, free: bases, total: len(bases)}, nil
}

// Addr is the local address the pool binds to.
func (p *Pool) Addr() netip.Addr { return p.addr }

// SetFreeBind makes the pool's next binds succeed for an address that is not
// (yet) on any of this host's interfaces (IP_FREEBIND), as a standby relay
// needs for a floating address that moves to it on takeover; packets reach
// the sockets from the moment the address arrives, with no rebind. Off, a
// bind to an address the host does not have fails, which catches a mistyped
// interface address at the first offer.
func (p *Pool) SetFreeBind(on bool) { p.freeBind.Store(on) }

// Socket is one bound, non-blocking UDP socket: a plain descriptor that no Go
// runtime poller knows, so that whoever takes it (the media plane's workers)
// is the only one waiting on it.
type Socket struct {
	FD    int
	Local netip.AddrPort
}

// Allocation is one bound slot: one or two sockets on consecutive ports.
//
// The slot returns to the pool when every socket is done: Close closes the
// sockets nobody took over; a socket handed to the media plane is closed
// there, which reports it with SocketClosed. Until then the port cannot be
// handed out again, so a new call never binds a port an old one's socket (or
// kernel rule) still uses.
type Allocation struct {
	Sockets []Socket
	Port    int // the first (even) port
	pool    *Pool
	open    atomic.Int32 // sockets not yet closed
	owned   []atomic.Bool
}

// Close closes the sockets of the allocation that were not handed over with
// HandOver, and reports them done. Safe to call more than once.
func (a *Allocation) Close() {
	for i := range a.Sockets {
		if a.owned[i].CompareAndSwap(false, true) {
			_ = unix.Close(a.Sockets[i].FD)
			a.SocketClosed()
		}
	}
}

// HandOver marks socket i as owned by someone else from now on: Close leaves
// it alone, and its new owner calls SocketClosed once it has closed it. It
// reports false if the socket was already closed or handed over.
func (a *Allocation) HandOver(i int) bool {
	return a.owned[i].CompareAndSwap(false, true)
}

// SocketClosed reports one socket of the allocation closed; the last one
// returns the slot to the pool.
func (a *Allocation) SocketClosed() {
	if a.open.Add(-1) == 0 {
		a.pool.put(a.Port)
	}
}

// Allocate binds n (1 or 2) sockets on a free slot. Ports that are busy in the
// system (bound by another process) are skipped and retried later.
func (p *Pool) Allocate(n int) (*Allocation, error) {
	if n < 1 || n > 2 {
		return nil, fmt.Errorf("allocate %d ports: only 1 or 2 supported", n)
	}
	p.mu.Lock()
	tries := len(p.free) - p.head
	p.mu.Unlock()
	for range tries {
		base, ok := p.take()
		if !ok {
			break
		}
		socks, err := p.bind(base, n)
		if err == nil {
			a := &Allocation{Sockets: socks, Port: base, pool: p, owned: make([]atomic.Bool, n)}
			a.open.Store(int32(n))
			return a, nil
		}
		if errors.Is(err, ErrNoDescriptors) {
			p.put(base)
			return nil, err
		}
		// Busy elsewhere in the system: back to the tail, try the next one.
		p.put(base)
	}
	return nil, fmt.Errorf("%s: %w", p.addr, ErrNoPorts)
}

// take removes the next free slot from the list and counts it in use.
func (p *Pool) take() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head < len(p.free) {
		base := p.free[p.head]
		p.head++
		if p.claimed[base] {
			delete(p.claimed, base) // in use by a Claim: not free after all
			continue
		}
		p.inUse++
		p.compact()
		return base, true
	}
	return 0, false
}

// Claim binds n sockets on the slot of base exactly: what a restarted relay
// does to take its calls' ports back. The slot must be free (in the range,
// and not handed out by Allocate or Claim).
func (p *Pool) Claim(base, n int) (*Allocation, error) {
	if n < 1 || n > 2 {
		return nil, fmt.Errorf("claim %d ports: only 1 or 2 supported", n)
	}
	if base%2 != 0 || base < p.min+p.min%2 || base+1 > p.max {
		return nil, fmt.Errorf("claim %s:%d: %w", p.addr, base, ErrBadRange)
	}
	p.mu.Lock()
	if p.claimed == nil {
		p.claimed = map[int]bool{}
	}
	if p.claimed[base] || !slices.Contains(p.free[p.head:], base) {
		p.mu.Unlock()
		return nil, fmt.Errorf("claim %s:%d: %w", p.addr, base, ErrInUse)
	}
	p.claimed[base] = true
	p.inUse++
	p.mu.Unlock()
	socks, err := p.bind(base, n)
	if err != nil {
		p.mu.Lock()
		delete(p.claimed, base)
		p.inUse--
		p.mu.Unlock()
		return nil, err
	}
	a := &Allocation{Sockets: socks, Port: base, pool: p, owned: make([]atomic.Bool, n)}
	a.open.Store(int32(n))
	return a, nil
}

func (p *Pool) put(base int) {
	p.mu.Lock()
	if p.claimed[base] {
		// A claimed slot still in the free list: it is free again where it
		// stands.
		delete(p.claimed, base)
		p.inUse--
		p.mu.Unlock()
		return
	}
	p.free = append(p.free, base)
	p.inUse--
	p.compact()
	p.mu.Unlock()
}

// compact drops the consumed head once it dominates the slice, keeping memory bounded.
func (p *Pool) compact() {
	if p.head > 1024 && p.head > len(p.free)/2 {
		p.free = append(p.free[:0:0], p.free[p.head:]...)
		p.head = 0
	}
}

// Stats returns the number of slots in use and in total.
func (p *Pool) Stats() (used, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse, p.total
}

func (p *Pool) bind(base, n int) ([]Socket, error) {
	socks := make([]Socket, 0, n)
	for i := range n {
		local := netip.AddrPortFrom(p.addr, uint16(base+i))
		fd, err := bind(local, p.freeBind.Load())
		if err != nil {
			for _, s := range socks {
				_ = unix.Close(s.FD)
			}
			return nil, err
		}
		socks = append(socks, Socket{FD: fd, Local: local})
	}
	return socks, nil
}

// Bind opens a non-blocking, close-on-exec UDP socket bound to local. Running
// out of descriptors is ErrNoDescriptors.
func Bind(local netip.AddrPort) (int, error) { return bind(local, false) }

func bind(local netip.AddrPort, freeBind bool) (int, error) {
	fam := unix.AF_INET
	if !local.Addr().Is4() {
		fam = unix.AF_INET6
	}
	fd, err := unix.Socket(fam, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		if errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) {
			return -1, fmt.Errorf("socket for %s: %w", local, ErrNoDescriptors)
		}
		return -1, fmt.Errorf("socket for %s: %w", local, err)
	}
	var sa unix.Sockaddr
	if fam == unix.AF_INET {
		sa = &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()}
	} else {
		// A socket on an IPv6 address carries IPv6 only: the pools of IPv4
		// addresses own the IPv4 side.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		sa6 := &unix.SockaddrInet6{Port: int(local.Port()), Addr: local.Addr().As16()}
		if z := local.Addr().Zone(); z != "" {
			if id, err := zoneIndex(z); err == nil {
				sa6.ZoneId = id
			}
		}
		sa = sa6
	}
	if freeBind {
		level, opt := unix.IPPROTO_IP, unix.IP_FREEBIND
		if fam == unix.AF_INET6 {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_FREEBIND
		}
		if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
			_ = unix.Close(fd)
			return -1, fmt.Errorf("IP_FREEBIND for %s: %w", local, err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", local, err)
	}
	return fd, nil
}
