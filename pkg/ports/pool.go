// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
)

// Pool hands out ports of one local address. Slots are even base ports: a pair
// uses base and base+1, a single port uses base alone (its odd neighbour stays
// reserved with it, so pairs never straddle an allocation).
type Pool struct {
	addr     netip.Addr
	min, max int

	mu    sync.Mutex
	free  []int // even bases, shuffled at start; freed ones go to the tail
	head  int   // free[head:] are the free slots (a ring would save nothing here)
	inUse int
	total int
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
	return &Pool{addr: addr, min: min, max: max, free: bases, total: len(bases)}, nil
}

// Addr is the local address the pool binds to.
func (p *Pool) Addr() netip.Addr { return p.addr }

// Allocation is one bound slot: one or two sockets on consecutive ports.
type Allocation struct {
	Conns []*net.UDPConn
	Port  int // the first (even) port
	pool  *Pool
	once  sync.Once
}

// Release closes the sockets and returns the slot to the pool; safe to call twice.
func (a *Allocation) Release() {
	a.once.Do(func() {
		for _, c := range a.Conns {
			_ = c.Close()
		}
		a.pool.put(a.Port)
	})
}

// Allocate binds n (1 or 2) sockets on a free slot. Ports that are busy in the
// system (bound by another process) are skipped and retried later.
func (p *Pool) Allocate(n int) (*Allocation, error) {
	if n < 1 || n > 2 {
		return nil, fmt.Errorf("allocate %d ports: only 1 or 2 supported", n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tries := len(p.free) - p.head
	for i := 0; i < tries; i++ {
		base := p.free[p.head]
		p.head++
		conns, err := p.bind(base, n)
		if err == nil {
			p.inUse++
			p.compact()
			return &Allocation{Conns: conns, Port: base, pool: p}, nil
		}
		if errors.Is(err, ErrNoDescriptors) {
			p.head--
			return nil, err
		}
		// Busy elsewhere in the system: back to the tail, try the next one.
		p.free = append(p.free, base)
	}
	p.compact()
	return nil, fmt.Errorf("%s: %w", p.addr, ErrNoPorts)
}

func (p *Pool) put(base int) {
	p.mu.Lock()
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

func (p *Pool) bind(base, n int) ([]*net.UDPConn, error) {
	network := "udp4"
	if p.addr.Is6() {
		network = "udp6"
	}
	conns := make([]*net.UDPConn, 0, n)
	for i := 0; i < n; i++ {
		addr := net.JoinHostPort(p.addr.String(), strconv.Itoa(base+i))
		pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), network, addr)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				return nil, fmt.Errorf("bind %s: %w", addr, ErrNoDescriptors)
			}
			return nil, fmt.Errorf("bind %s: %w", addr, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	return conns, nil
}
