// SPDX-License-Identifier: Apache-2.0

package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// tableFastPath keeps rules in a map: the decision logic of the offloader
// (when to install, replace and withdraw) tested without the kernel; the XDP
// datapath itself is proven by the bpf package and the namespace tests.
type tableFastPath struct {
	mu       sync.Mutex
	rules    map[netip.AddrPort]OffloadRule
	counters map[netip.AddrPort]KernelCounters
	released map[netip.AddrPort]bool
	// fail makes Offload for a local address fail with that error.
	fail map[netip.AddrPort]error
	// offloads and withdraws log the calls, in order.
	offloads, withdraws []netip.AddrPort
	// handedOver makes every local come with a rule a previous relayd
	// left (aimed at stale), which Adopted reports until it is touched.
	handedOver bool
	stale      netip.AddrPort
	adopted    map[netip.AddrPort]bool
}

func newTableFastPath() *tableFastPath {
	return &tableFastPath{rules: map[netip.AddrPort]OffloadRule{},
		counters: map[netip.AddrPort]KernelCounters{}, released: map[netip.AddrPort]bool{},
		fail: map[netip.AddrPort]error{}}
}

func (f *tableFastPath) Offload(r OffloadRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offloads = append(f.offloads, r.Local)
	if err := f.fail[r.Local]; err != nil {
		return err
	}
	f.rules[r.Local] = r
	return nil
}

// Adopted implements Adopter: with handedOver, a local asked about for the
// first time has the previous relayd's rule.
func (f *tableFastPath) Adopted(local netip.AddrPort) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.handedOver {
		return false
	}
	if f.adopted == nil {
		f.adopted = map[netip.AddrPort]bool{}
	}
	if _, seen := f.adopted[local]; !seen {
		f.adopted[local] = true
		f.rules[local] = OffloadRule{Local: local, Dest: f.stale}
	}
	return f.adopted[local]
}

func (f *tableFastPath) Withdraw(local netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.withdraws = append(f.withdraws, local)
	delete(f.rules, local)
	return nil
}

func (f *tableFastPath) Counters(local netip.AddrPort) (KernelCounters, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.counters[local]
	return c, ok
}

func (f *tableFastPath) Release(local netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released[local] = true
}

func (f *tableFastPath) rule(local netip.AddrPort) (OffloadRule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rules[local]
	return r, ok
}

func waitRule(t *testing.T, f *tableFastPath, local netip.AddrPort, want bool) OffloadRule {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r, ok := f.rule(local)
		if ok == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule for %v present=%v, want %v", local, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOffloadLifecycle(t *testing.T) {
	fp := newTableFastPath()
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	if err := c.rb.s.SetTOS(184); err != nil {
		t.Fatal(err)
	}
	// Nothing latched yet: no rule, once the offloader has seen both
	// streams attached and configured.
	e.off.settle()
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Fatal("rule installed before the peer latched")
	}
	// A's packet from its SDP endpoint latches (heuristic, exact match): the
	// A->B direction goes to the kernel, aimed at B's SDP endpoint.
	c.aToB(t, pkt(1))
	r := waitRule(t, fp, c.ra.addr(), true)
	want := OffloadRule{Local: c.ra.addr(), Source: c.a.addr, Egress: c.rb.addr(), Dest: c.b.addr, TOS: 184}
	if r != want {
		t.Errorf("rule %+v, want %+v", r, want)
	}
	// Kernel counters show up in both streams' stats.
	fp.mu.Lock()
	fp.counters[c.ra.addr()] = KernelCounters{Packets: 100, Bytes: 17200, LastPacket: time.Now()}
	fp.mu.Unlock()
	st := c.ra.s.Stats()
	if !st.Kernel || st.In.Packets != 101 {
		t.Errorf("ra stats %+v, want kernel and 1+100 packets in", st)
	}
	waitStats(t, c.rb.s, "rb out = 1 sent + 100 in the kernel", func(s StreamStats) bool { return s.Out.Packets == 101 })
	if in, kern, _ := c.ra.s.Received(); in.Packets != 101 || kern.Packets != 100 {
		t.Errorf("Received %+v, kernel part %+v", in, kern)
	}
	// Every offer/answer takes the stream back to userspace.
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: c.a.addr})
	waitRule(t, fp, c.ra.addr(), false)
	// Re-latched: back in the kernel.
	c.aToB(t, pkt(2))
	waitRule(t, fp, c.ra.addr(), true)
	// B's destination changes (B re-INVITEs elsewhere): A's rule follows.
	moved := netip.MustParseAddrPort("127.0.0.1:9")
	c.rb.s.Configure(StreamConfig{Sink: c.ra.s, Peer: moved, Learning: Off})
	deadline := time.Now().Add(2 * time.Second)
	for {
		if r, ok := fp.rule(c.ra.addr()); ok && r.Dest == moved {
			break
		}
		if time.Now().After(deadline) {
			r, ok := fp.rule(c.ra.addr())
			t.Fatalf("A's rule did not follow B's new endpoint: %+v %v", r, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Detach withdraws and releases, and the socket is reported closed
	// only after both the worker and the offloader are done with it.
	c.ra.s.Detach()
	c.ra.waitClosed(t)
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Error("rule survived Detach")
	}
	fp.mu.Lock()
	released := fp.released[c.ra.addr()]
	fp.mu.Unlock()
	if !released {
		t.Error("counters not released on Detach")
	}
}

// Streams that need userspace never get a rule: IPv4<->IPv6 bridging and
// RTCP demultiplexing.
func TestOffloadRefusals(t *testing.T) {
	fp := newTableFastPath()
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	rtcpSink := attach(t, e, "127.0.0.1")
	c := newCall(t, e, "127.0.0.1", func(s *StreamConfig) { s.RTCPSink = rtcpSink.s }, nil)
	c.aToB(t, pkt(1))
	settle(t, e) // the latch is queued before the packet leaves
	e.off.settle()
	if !c.ra.s.Stats().Confirmed {
		t.Fatal("A did not latch")
	}
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Error("a demultiplexing stream went to the kernel")
	}
}

// offloadRig is an offloader without its goroutine over streams without
// sockets: the test decides when queued streams are synced and what time it
// is, so what a sync touches and when a retry runs are checked exactly
// rather than by waiting.
type offloadRig struct {
	t       testing.TB
	fp      *tableFastPath
	e       *Engine
	o       *offloader
	now     time.Time
	streams []*Stream
}

func newOffloadRig(t testing.TB) *offloadRig {
	r := &offloadRig{t: t, fp: newTableFastPath(), now: time.Unix(1_000_000, 0)}
	r.e = &Engine{log: slog.New(slog.DiscardHandler), window: longWindow, now: time.Now}
	r.o = makeOffloader(r.e, r.fp)
	r.o.now = func() time.Time { return r.now }
	r.e.off = r.o
	return r
}

// stream attaches a new stream: 198.51.100.x, 40000 ports per address.
func (r *offloadRig) stream() *Stream {
	n := len(r.streams)
	s := newStream(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + n/40000)}),
		uint16(20000+n%40000)))
	s.eng = r.e
	s.off = &offState{retryIdx: -1}
	s.refs.Store(2)
	r.o.queue(s)
	r.streams = append(r.streams, s)
	return s
}

// partyOf is the SDP endpoint of the party facing s.
func partyOf(s *Stream) netip.AddrPort {
	a := s.local.Addr().As4()
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, a[3]}), s.local.Port())
}

// peer is an endpoint no party signalled; distinct for every n.
func peer(n uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), n) }

// rigCall is A <-> ra ... rb <-> B.
type rigCall struct {
	ra, rb *Stream
	a, b   netip.AddrPort
}

func (r *offloadRig) call(modA, modB func(*StreamConfig)) rigCall {
	c := rigCall{ra: r.stream(), rb: r.stream()}
	c.a, c.b = partyOf(c.ra), partyOf(c.rb)
	ca := StreamConfig{Sink: c.rb, Peer: c.a}
	cb := StreamConfig{Sink: c.ra, Peer: c.b}
	if modA != nil {
		modA(&ca)
	}
	if modB != nil {
		modB(&cb)
	}
	c.ra.Configure(ca)
	c.rb.Configure(cb)
	return c
}

// send runs one packet from src through s's per-packet path, as the worker
// does; latching queues s on the offloader.
func (r *offloadRig) send(s *Stream, src netip.AddrPort) {
	now := time.Now()
	s.receive(pkt(1), src, 0, now.UnixNano(), 0, now)
}

// offloaded is a call with both directions in the kernel.
func (r *offloadRig) offloaded() rigCall {
	c := r.call(nil, nil)
	r.send(c.ra, c.a)
	r.send(c.rb, c.b)
	r.o.flush()
	if !c.ra.InKernel() || !c.rb.InKernel() {
		r.t.Fatalf("call not offloaded after latching both sides")
	}
	return c
}

// advance moves the clock in steps, running the offloader's loop at each.
func (r *offloadRig) advance(d, step time.Duration) {
	for end := r.now.Add(d); r.now.Before(end); {
		r.now = r.now.Add(step)
		r.o.flush()
	}
}

// calls returns and forgets the logged Offload and Withdraw calls.
func (r *offloadRig) calls() (offloads, withdraws []netip.AddrPort) {
	r.fp.mu.Lock()
	defer r.fp.mu.Unlock()
	offloads, withdraws = r.fp.offloads, r.fp.withdraws
	r.fp.offloads, r.fp.withdraws = nil, nil
	return offloads, withdraws
}

// converged checks that every stream's kernel rule is exactly what it should
// be now: with no periodic pass, any change the offloader missed shows here.
func (r *offloadRig) converged() {
	r.t.Helper()
	for _, s := range r.streams {
		want, _, ok := s.offloadRule()
		got, in := r.fp.rule(s.local)
		r.fp.mu.Lock()
		failing := r.fp.fail[s.local] != nil
		r.fp.mu.Unlock()
		switch {
		case failing && in:
			if got != want { // installed before the failures began
				r.t.Errorf("%v: kernel has %+v, should have %+v", s.local, got, want)
			}
		case failing:
			if ok && s.off.retryIdx < 0 && !s.off.refused {
				r.t.Errorf("%v: Offload refused and no retry planned", s.local)
			}
		case ok != in || got != want:
			r.t.Errorf("%v: kernel has %+v (%v), should have %+v (%v)", s.local, got, in, want, ok)
		case s.InKernel() != in:
			r.t.Errorf("%v: InKernel %v, rule installed %v", s.local, s.InKernel(), in)
		}
	}
}

// A latch syncs the latched stream and the streams sending into it, and
// nothing else: bystanders are neither re-offloaded nor retried.
func TestOffloadLatchScope(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failing bystanders: their Offload fails, so a full pass would
		// retry them.
		failing bool
		setup   func(r *offloadRig) rigCall
		act     func(r *offloadRig, c rigCall)
		// want is the Offload calls the act causes, in order.
		want func(c rigCall) []*Stream
	}{{
		name:  "first direction latches",
		setup: func(r *offloadRig) rigCall { return r.call(nil, nil) },
		act:   func(r *offloadRig, c rigCall) { r.send(c.ra, c.a) },
		want:  func(c rigCall) []*Stream { return []*Stream{c.ra} },
	}, {
		name:    "first direction latches, bystanders failing",
		failing: true,
		setup:   func(r *offloadRig) rigCall { return r.call(nil, nil) },
		act:     func(r *offloadRig, c rigCall) { r.send(c.ra, c.a) },
		want:    func(c rigCall) []*Stream { return []*Stream{c.ra} },
	}, {
		name: "second direction latches, the first keeps its rule",
		setup: func(r *offloadRig) rigCall {
			c := r.call(nil, nil)
			r.send(c.ra, c.a)
			return c
		},
		act:  func(r *offloadRig, c rigCall) { r.send(c.rb, c.b) },
		want: func(c rigCall) []*Stream { return []*Stream{c.rb} },
	}, {
		// B is on hold (no destination): A's latched direction waits in
		// userspace until B's first packet gives B a destination, which
		// must bring A's rule in although A itself did not change.
		name: "the sink learns a destination: its feeder goes to the kernel",
		setup: func(r *offloadRig) rigCall {
			c := r.call(nil, func(cb *StreamConfig) { cb.Peer = netip.MustParseAddrPort("0.0.0.0:0") })
			r.send(c.ra, c.a)
			return c
		},
		act:  func(r *offloadRig, c rigCall) { r.send(c.rb, c.b) },
		want: func(c rigCall) []*Stream { return []*Stream{c.ra} },
	}, {
		// The packet path makes no kernel-rule call: the handover is the
		// offloader's, which replaces B's own rule (new source) and re-aims
		// A's at B's new address in one pass.
		name: "handover: both rules follow on the offloader's next pass",
		setup: func(r *offloadRig) rigCall {
			c := r.call(nil, func(cb *StreamConfig) { cb.MediaHandover = true })
			r.send(c.ra, c.a)
			r.send(c.rb, c.b)
			return c
		},
		act:  func(r *offloadRig, c rigCall) { r.send(c.rb, peer(1)) },
		want: func(c rigCall) []*Stream { return []*Stream{c.rb, c.ra} },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOffloadRig(t)
			var bystanders []*Stream
			for range 20 {
				b := r.offloaded()
				bystanders = append(bystanders, b.ra, b.rb)
			}
			if tc.failing {
				for _, b := range bystanders {
					r.fp.fail[b.local] = errors.New("no next hop")
					b.Configure(StreamConfig{Sink: b.off.sinkOf, Peer: partyOf(b)})
					r.send(b, partyOf(b))
				}
			}
			c := tc.setup(r)
			r.o.flush()
			r.converged()
			r.calls()
			// A probe: change the bystanders behind the offloader's back.
			// Any sync of theirs now shows as an Offload call.
			for _, b := range bystanders {
				b.tos.Store(46)
			}

			tc.act(r, c)
			offloads, withdraws := r.calls()
			if len(offloads)+len(withdraws) != 0 {
				t.Errorf("kernel-rule calls from the packet path: Offload %v, Withdraw %v", offloads, withdraws)
			}
			r.o.flush()
			more, moreW := r.calls()
			offloads, withdraws = append(offloads, more...), append(withdraws, moreW...)
			if got := locals(tc.want(c)); !slices.Equal(offloads, got) {
				t.Errorf("Offload calls %v, want %v", offloads, got)
			}
			for _, w := range withdraws {
				if w != c.ra.local && w != c.rb.local {
					t.Errorf("bystander %v withdrawn", w)
				}
			}
			for _, b := range bystanders {
				b.tos.Store(-1)
			}
			r.converged()
		})
	}
}

func locals(ss []*Stream) []netip.AddrPort {
	out := []netip.AddrPort{}
	for _, s := range ss {
		out = append(out, s.local)
	}
	return out
}

// A failed Offload leaves the stream in userspace and is retried, on its own
// backoff, until it succeeds; then the retries stop.
func TestOffloadRetry(t *testing.T) {
	const step = 50 * time.Millisecond
	for _, tc := range []struct {
		name     string
		failures int // Offload attempts that fail
		// installed: the stream is in the kernel when its rule must change
		// (its sink moves) and the replacement fails.
		installed bool
		// permanent: the fast path refuses with ErrNoKernelPath.
		permanent bool
		// want is when Offload is attempted, from the event.
		want []time.Duration
	}{
		{name: "next hop resolved by the first retry", failures: 1,
			want: []time.Duration{0, 200 * time.Millisecond}},
		{name: "backs off while failing", failures: 5,
			want: []time.Duration{0, 200 * time.Millisecond, 600 * time.Millisecond,
				1400 * time.Millisecond, 2400 * time.Millisecond, 3400 * time.Millisecond}},
		{name: "replacing an installed rule fails: withdrawn, then retried", failures: 1, installed: true,
			want: []time.Duration{0, 200 * time.Millisecond}},
		{name: "refused for good: never retried", failures: 1000, permanent: true,
			want: []time.Duration{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOffloadRig(t)
			r.offloaded() // a bystander that must never be retried
			c := r.call(nil, nil)
			if tc.installed {
				r.send(c.ra, c.a)
				r.o.flush()
				if !c.ra.InKernel() {
					t.Fatal("not offloaded")
				}
			}
			r.calls()
			left := tc.failures
			r.fp.fail[c.ra.local] = errors.New("next hop of 192.0.2.1: not resolved")
			if tc.permanent {
				r.fp.fail[c.ra.local] = fmt.Errorf("interface without the program: %w", ErrNoKernelPath)
			}
			start := r.now
			var at []time.Duration
			record := func() {
				offloads, _ := r.calls()
				for _, l := range offloads {
					if l != c.ra.local {
						t.Errorf("Offload of %v, only %v is due", l, c.ra.local)
						continue
					}
					at = append(at, r.now.Sub(start))
					if left--; left == 0 {
						delete(r.fp.fail, c.ra.local)
					}
				}
			}
			if tc.installed {
				c.rb.Configure(StreamConfig{Sink: c.ra, Peer: peer(2), Learning: Off})
			} else {
				r.send(c.ra, c.a)
			}
			r.o.flush()
			if tc.installed && c.ra.InKernel() {
				t.Error("a rule that could not be replaced stayed installed")
			}
			record()
			for r.now.Sub(start) < 6*time.Second {
				r.advance(step, step)
				record()
			}
			if !slices.Equal(at, tc.want) {
				t.Errorf("Offload attempted at %v, want %v", at, tc.want)
			}
			if c.ra.InKernel() == tc.permanent {
				t.Errorf("in the kernel: %v", c.ra.InKernel())
			}
			if n := len(r.o.retry); n != 0 {
				t.Errorf("%d retries still planned", n)
			}
			r.converged()
		})
	}
}

// The retry runs on the engine's own loop, with nothing else happening.
func TestOffloadRetryEngine(t *testing.T) {
	fp := newTableFastPath()
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	fp.mu.Lock()
	fp.fail[c.ra.addr()] = errors.New("next hop not resolved")
	fp.mu.Unlock()
	c.aToB(t, pkt(1))
	deadline := time.Now().Add(2 * time.Second)
	for {
		fp.mu.Lock()
		tried := len(fp.offloads) > 0
		fp.mu.Unlock()
		if tried {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no Offload attempt after the latch")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Fatal("rule installed although Offload fails")
	}
	fp.mu.Lock()
	delete(fp.fail, c.ra.addr())
	fp.mu.Unlock()
	waitRule(t, fp, c.ra.addr(), true)
}

// An offer/answer takes a stream back to userspace and Detach removes it for
// good; the rule sending into it follows in the same pass of the offloader.
func TestOffloadWithdraw(t *testing.T) {
	hold := netip.MustParseAddrPort("0.0.0.0:0")
	for _, tc := range []struct {
		name string
		act  func(r *offloadRig, c rigCall)
		// After act and one pass of the offloader.
		raNow, rbNow bool
		rbDest       netip.AddrPort // when rbNow: where B's rule sends
		// After the loop ran and A sent again.
		raLater bool
	}{{
		name:    "offer/answer: back to userspace, returns after latching",
		act:     func(r *offloadRig, c rigCall) { c.ra.Configure(StreamConfig{Sink: c.rb, Peer: c.a}) },
		rbNow:   true,
		rbDest:  netip.AddrPort{}, // unchanged
		raLater: true,
	}, {
		name: "offer/answer moves A: B's rule re-aimed at once",
		act: func(r *offloadRig, c rigCall) {
			c.ra.Configure(StreamConfig{Sink: c.rb, Peer: peer(3), Learning: Off})
		},
		rbNow:  true,
		rbDest: peer(3),
		// Learning off: only the new SDP address is a source; A's packet
		// from its old one is refused and A stays in userspace.
		raLater: false,
	}, {
		name: "A on hold: B's rule withdrawn at once",
		act:  func(r *offloadRig, c rigCall) { c.ra.Configure(StreamConfig{Sink: c.rb, Peer: hold}) },
		// A's packet from its old address is a candidate under a hold
		// SDP, not latched (the window is open); B's rule comes back aimed
		// at it (converged checks).
	}, {
		name: "rtcp-mux demultiplexing: stays in userspace",
		act: func(r *offloadRig, c rigCall) {
			c.ra.Configure(StreamConfig{Sink: c.rb, Peer: c.a, RTCPSink: r.stream()})
		},
		rbNow:  true,
		rbDest: netip.AddrPort{},
	}, {
		name: "Detach: withdrawn, released, and nothing sends into it",
		act:  func(r *offloadRig, c rigCall) { c.ra.Detach() },
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newOffloadRig(t)
			r.offloaded()
			c := r.offloaded()
			before, _ := r.fp.rule(c.rb.local)
			tc.act(r, c)
			r.o.flush()
			if c.ra.InKernel() {
				t.Error("A still in the kernel")
			}
			if _, ok := r.fp.rule(c.ra.local); ok {
				t.Error("A's rule still installed")
			}
			rb, ok := r.fp.rule(c.rb.local)
			if ok != tc.rbNow || c.rb.InKernel() != tc.rbNow {
				t.Errorf("B's rule installed %v (InKernel %v), want %v", ok, c.rb.InKernel(), tc.rbNow)
			}
			if want := tc.rbDest; ok && want.IsValid() && rb.Dest != want {
				t.Errorf("B's rule sends to %v, want %v", rb.Dest, want)
			} else if ok && !want.IsValid() && rb != before {
				t.Errorf("B's rule changed to %+v from %+v", rb, before)
			}
			r.o.flush()
			r.send(c.ra, c.a)
			r.o.flush()
			if c.ra.InKernel() != tc.raLater {
				t.Errorf("A in the kernel after latching again: %v, want %v", c.ra.InKernel(), tc.raLater)
			}
			if c.ra.detached.Load() {
				r.fp.mu.Lock()
				released := r.fp.released[c.ra.local]
				r.fp.mu.Unlock()
				if !released {
					t.Error("A's counters not released")
				}
			}
			r.converged()
		})
	}
}

// Random signalling and packets over a few calls: after every event and one
// run of the offloader, every rule is what it should be. There is no
// periodic pass to hide an event the offloader does not hear about.
func TestOffloadConverges(t *testing.T) {
	r := newOffloadRig(t)
	rng := rand.New(rand.NewPCG(1, 2))
	var calls []rigCall
	for range 4 {
		calls = append(calls, r.call(nil, nil))
	}
	peers := []netip.AddrPort{peer(1), peer(2), peer(3), netip.MustParseAddrPort("0.0.0.0:0")}
	for i := range 5000 {
		c := calls[rng.IntN(len(calls))]
		s, other := c.ra, c.rb
		if rng.IntN(2) == 0 {
			s, other = other, s
		}
		switch n := rng.IntN(100); {
		case n < 60:
			r.send(s, peers[rng.IntN(len(peers)-1)])
		case n < 90:
			cfg := StreamConfig{Sink: other, Peer: peers[rng.IntN(len(peers))],
				Learning: LearningMode(rng.IntN(4)), MediaHandover: rng.IntN(3) == 0,
				Asymmetric: rng.IntN(5) == 0, StrictSource: rng.IntN(3) == 0}
			if rng.IntN(10) == 0 {
				cfg.RTCPSink = other
			}
			if rng.IntN(10) == 0 {
				cfg.Sink = calls[rng.IntN(len(calls))].ra // a fork
			}
			s.Configure(cfg)
		case n < 95:
			s.tos.Store(int32(rng.IntN(256))) // what SetTOS does past the socket
			r.o.queue(s)
		case n < 97:
			if i > 4000 {
				s.Detach()
			}
		case n < 99:
			if r.fp.fail[s.local] == nil {
				r.fp.fail[s.local] = errors.New("no next hop")
				break
			}
			// Resolved: the planned retry brings the stream in.
			delete(r.fp.fail, s.local)
			r.now = r.now.Add(offloadRetryMax)
		default:
			r.now = r.now.Add(time.Duration(rng.IntN(2000)) * time.Millisecond)
		}
		r.o.flush()
		r.converged()
		if t.Failed() {
			t.Fatalf("diverged after event %d", i)
		}
	}
}

// BenchmarkOffloadLatch is one stream latching (the per-packet path's
// learning step) and the offloader syncing it, with n idle streams in the
// kernel. The fake fast path is a map, so what is measured is the offloader's
// own work, which must not grow with n. The streams that latch are taken back
// to userspace (an offer/answer) outside the timer, a batch at a time.
func BenchmarkOffloadLatch(b *testing.B) {
	const batch = 100
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("installed=%d", n), func(b *testing.B) {
			r := newOffloadRig(b)
			latching := make([]*Stream, 0, n/2)
			for range n / 2 {
				c := r.call(nil, nil)
				r.send(c.ra, c.a)
				r.send(c.rb, c.b)
				latching = append(latching, c.ra)
			}
			r.o.flush()
			r.fp.mu.Lock()
			installed := len(r.fp.rules)
			r.fp.mu.Unlock()
			if installed != n {
				b.Fatalf("%d rules installed, want %d", installed, n)
			}
			next := 0
			round := make([]*Stream, 0, batch)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if i%batch == 0 {
					b.StopTimer()
					round = round[:0]
					for range batch {
						s := latching[next%len(latching)]
						next++
						s.Configure(StreamConfig{Sink: s.off.sinkOf, Peer: partyOf(s)})
						round = append(round, s)
					}
					r.o.flush()
					r.calls()
					b.StartTimer()
				}
				s := round[i%batch]
				r.send(s, partyOf(s))
				r.o.flush()
				if !s.InKernel() {
					b.Fatal("not offloaded after latching")
				}
			}
		})
	}
}

// Rules a previous relayd handed over keep forwarding untouched while the
// calls are restored, whatever happens to their streams meanwhile; then
// each stream owns its rule: rewritten from its state where it can go to
// the kernel, withdrawn where it cannot (its packets reach the socket and
// learning starts again).
func TestOffloadAdoptedRules(t *testing.T) {
	fp := newTableFastPath()
	fp.handedOver, fp.stale = true, netip.MustParseAddrPort("192.0.2.99:4000")
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1)) // A latches; B does not
	e.off.settle()
	fp.mu.Lock()
	touched := len(fp.offloads) + len(fp.withdraws)
	fp.mu.Unlock()
	if touched != 0 {
		t.Fatalf("during the restore the offloader touched adopted rules: offloads %v, withdraws %v", fp.offloads, fp.withdraws)
	}
	for _, s := range []*Stream{c.ra.s, c.rb.s} {
		if r, ok := fp.rule(s.local); !ok || r.Dest != fp.stale || !s.InKernel() {
			t.Errorf("%v during the restore: rule %+v (%v), in kernel %v; want the adopted rule, in the kernel", s.local, r, ok, s.InKernel())
		}
	}

	e.EndAdoption()
	want := OffloadRule{Local: c.ra.addr(), Source: c.a.addr, Egress: c.rb.addr(), Dest: c.b.addr, TOS: -1}
	if r, ok := fp.rule(c.ra.addr()); !ok || r != want || !c.ra.s.InKernel() {
		t.Errorf("latched stream after the restore: rule %+v (%v), in kernel %v; want %+v rewritten", r, ok, c.ra.s.InKernel(), want)
	}
	if _, ok := fp.rule(c.rb.addr()); ok || c.rb.s.InKernel() {
		t.Errorf("unlatched stream after the restore: rule present %v, in kernel %v; want it withdrawn", ok, c.rb.s.InKernel())
	}
	// The withdrawn stream learns in userspace and goes to the kernel
	// as any other.
	c.bToA(t, pkt(2))
	waitRule(t, fp, c.rb.addr(), true)
	e.EndAdoption() // again: nothing more to do
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if n := len(fp.withdraws); n != 1 {
		t.Errorf("%d withdraws, want 1: %v", n, fp.withdraws)
	}
}
