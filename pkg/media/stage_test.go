// SPDX-License-Identifier: Apache-2.0

package media

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
)

// rot13 is a payload transform: it rewrites the payload in place and grows
// it by a trailer, as SRTP adds its authentication tag.
type rot13 struct {
	trailer []byte
	kernel  bool
	n       atomic.Uint64
}

func (r *rot13) Kernel() bool { return r.kernel }

func (r *rot13) Handle(p *Packet) Verdict {
	for i, c := range p.Data {
		switch {
		case c >= 'a' && c <= 'z':
			p.Data[i] = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			p.Data[i] = 'A' + (c-'A'+13)%26
		}
	}
	if len(p.Data)+len(r.trailer) > cap(p.Data) {
		return Drop
	}
	p.Data = append(p.Data, r.trailer...)
	r.n.Add(1)
	return Continue
}

// tap copies what passes, as a recorder would (here into memory).
type tap struct {
	mu     sync.Mutex
	copies [][]byte
}

func (*tap) Kernel() bool { return false }

func (t *tap) Handle(p *Packet) Verdict {
	t.mu.Lock()
	t.copies = append(t.copies, append([]byte(nil), p.Data...))
	t.mu.Unlock()
	return Continue
}

func (t *tap) got() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.copies...)
}

// pinger answers "PING..." on the stream's own socket with "PONG..." and
// consumes it, as a STUN handler answers a connectivity check; "DROP" is
// refused.
type pinger struct{ answered atomic.Uint64 }

func (*pinger) Kernel() bool { return true }

func (h *pinger) Handle(p *Packet) Verdict {
	switch {
	case bytes.HasPrefix(p.Data, []byte("PING")):
		copy(p.Data, "PONG")
		p.Reply(p.Data)
		h.answered.Add(1)
		return Consume
	case bytes.HasPrefix(p.Data, []byte("DROP")):
		return Drop
	}
	return Continue
}

func TestStages(t *testing.T) {
	e := newTestEngine(t, longWindow)
	tr := &rot13{trailer: []byte("+tag")}
	tp := &tap{}
	h := &pinger{}
	egress := &rot13{trailer: []byte("+out")}
	c := newCall(t, e, "127.0.0.1", func(a *StreamConfig) {
		a.Handlers = []Stage{h}
		a.Stages = []Stage{tr, tp}
	}, func(b *StreamConfig) {
		b.Egress = []Stage{egress}
	})

	// A handler answers on A's own relay socket, before any source check,
	// and the packet goes no further.
	c.a.send(c.ra.addr(), []byte("PING 1"))
	c.a.expect([]byte("PONG 1"), c.ra.addr())
	c.b.expectNothing()
	if st := c.ra.s.Stats(); st.In.Packets != 0 || st.Dropped != 0 || st.Confirmed {
		t.Errorf("a consumed packet was counted or learned from: %+v", st)
	}

	// A -> B: transform, tap, then B's egress transform (rot13 twice is the
	// identity), each growing the packet.
	c.a.send(c.ra.addr(), []byte("Hello"))
	c.b.expect([]byte("Hello+gnt+out"), c.rb.addr())
	if got := tp.got(); len(got) != 1 || !bytes.Equal(got[0], []byte("Uryyb+tag")) {
		t.Errorf("tap saw %q, want [\"Uryyb+tag\"]", got)
	}

	// B -> A has none of A's ingress stages, and no egress stage on A.
	c.bToA(t, []byte("plain"))

	// A refused datagram is dropped and counted.
	c.a.send(c.ra.addr(), []byte("DROP"))
	c.b.expectNothing()
	waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Dropped == 1 })

	// Work done off the worker comes back through Deliver (B's egress
	// stage applies) and Send (as it is).
	if !c.rb.s.Deliver([]byte("async")) {
		t.Fatal("Deliver refused")
	}
	c.b.expect([]byte("nflap+out"), c.rb.addr())
	if !c.ra.s.Send([]byte("raw"), c.a.addr) {
		t.Fatal("Send refused")
	}
	c.a.expect([]byte("raw"), c.ra.addr())
	if h.answered.Load() != 1 || tr.n.Load() != 1 || egress.n.Load() != 2 {
		t.Errorf("answered %d, transformed %d, egress %d; want 1, 1, 2", h.answered.Load(), tr.n.Load(), egress.n.Load())
	}
}

// A stream forwarded by a stream of another worker (not in its call's group)
// still runs its egress stages on its own worker.
func TestStagesAcrossWorkers(t *testing.T) {
	e := newTestEngine(t, longWindow)
	if len(e.workers) < 2 {
		t.Fatal("newTestEngine starts two workers")
	}
	egress := &rot13{trailer: []byte("!")}
	a, b := newParty(t, e, "127.0.0.1"), newParty(t, e, "127.0.0.1")
	ra := attachIn(t, e, Group{w: e.workers[0]}, "127.0.0.1")
	rb := attachIn(t, e, Group{w: e.workers[1]}, "127.0.0.1")
	ra.s.Configure(StreamConfig{Sink: rb.s, Peer: a.addr})
	rb.s.Configure(StreamConfig{Sink: ra.s, Peer: b.addr, Egress: []Stage{egress}})
	a.send(ra.addr(), []byte("abc"))
	b.expect([]byte("nop!"), rb.addr())
}

// Whether a stream may go to the kernel follows from its stages.
func TestStagesDecideTheKernel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		modA, modB func(*StreamConfig)
		wantA      bool
	}{
		{"no stages", nil, nil, true},
		{"a stage the kernel can stand in for", func(c *StreamConfig) { c.Handlers = []Stage{&pinger{}} }, nil, true},
		{"a transform", func(c *StreamConfig) { c.Stages = []Stage{&rot13{}} }, nil, false},
		{"a tap", func(c *StreamConfig) { c.Stages = []Stage{&tap{}} }, nil, false},
		{"the sink's egress transform", nil, func(c *StreamConfig) { c.Egress = []Stage{&rot13{}} }, false},
		{"the sink's egress kernel-safe", nil, func(c *StreamConfig) { c.Egress = []Stage{&rot13{kernel: true}} }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOffloadRig(t)
			c := r.call(tc.modA, tc.modB)
			r.send(c.ra, c.a)
			r.send(c.rb, c.b)
			r.o.flush()
			if c.ra.InKernel() != tc.wantA {
				t.Errorf("A in the kernel: %v, want %v", c.ra.InKernel(), tc.wantA)
			}
			r.converged()
		})
	}
}
