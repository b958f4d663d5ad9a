// SPDX-License-Identifier: Apache-2.0

package media

import (
	"container/heap"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"
)

// FastPath is a kernel forwarding plane (the XDP program) that takes over a
// stream once its peer is latched and it needs nothing only userspace can do.
// The userspace loop stays the safety net: whatever the kernel does not fully
// understand (another source, STUN, DTLS) still reaches the socket.
type FastPath interface {
	// Offload installs or replaces the rule for packets arriving at r.Local.
	// An error leaves the stream in userspace; it is retried later.
	Offload(r OffloadRule) error
	// Withdraw removes the rule for local: its packets reach the socket again.
	Withdraw(local netip.AddrPort) error
	// Counters reports what the kernel forwarded for local since the stream
	// was first offloaded; rule changes do not reset it.
	Counters(local netip.AddrPort) (KernelCounters, bool)
	// Release forgets local (its stream is gone).
	Release(local netip.AddrPort)
}

// Adopter is a FastPath that may hold rules a previous relayd installed
// and handed over with its calls (its pinned maps were adopted). Such a rule
// belongs to the stream that attaches on its local: it keeps forwarding,
// untouched, while the calls are restored; once they are (EndAdoption) it
// is rewritten from the stream's restored state, or withdrawn when the
// stream cannot be offloaded (its packets then reach the socket, and
// learning starts again there).
type Adopter interface {
	Adopted(local netip.AddrPort) bool
}

// OffloadRule is one direction of a stream as the kernel forwards it: packets
// from Source arriving at Local leave from Egress to Dest.
type OffloadRule struct {
	Local, Source, Egress, Dest netip.AddrPort
	TOS                         int // DSCP/TOS byte of the egress socket, -1 when unset
	RTCP                        bool
}

// KernelCounters are the kernel's per-stream counters.
type KernelCounters struct {
	Packets, Bytes uint64
	LastPacket     time.Time
}

// Retry cadence of a stream whose Offload failed. The usual cause is a next
// hop the kernel has not resolved yet; the userspace send right after the
// latch resolves it, so the first retry comes soon. A stream that keeps
// failing (its address on an interface without the program) backs off to one
// attempt a second, so failures cost in proportion to the failing streams
// only.
const (
	offloadRetryMin = 200 * time.Millisecond
	offloadRetryMax = time.Second
)

// offloader is the single writer of kernel rules: one goroutine makes every
// install and withdraw, so a stream's rule and its reverse never disagree for
// longer than one pass, and nobody else — no worker, no signalling call —
// ever waits for a kernel-rule syscall. It owns its per-stream records
// (Stream.off); the rest of the package only queues streams for it and reads
// what it publishes (Stream.kernel, Stream.feeder).
//
// It is event-driven so that its cost follows what changes, not how many
// streams are installed. A stream's rule (Stream.offloadRule) is a function of
// its own state and of its sink's destination, socket, TOS, stages and
// liveness, so every change of either queues the stream whose state changed,
// and a queued stream is synced together with its sources (the streams whose
// sink it is, whose rules carry its side):
//
//   - attach: queued (registered on its first pass);
//   - latch, handover, and a destination learned before the latch (the
//     source-check stage): queued;
//   - offer/answer (Configure): queued; not latched any more, its rule is
//     withdrawn and the in-kernel sources re-aimed at its new destination;
//   - SetTOS: queued (the sources' rules carry the TOS);
//   - Detach: queued; its rule and the rules sending into it are withdrawn,
//     its stats slot released, and its part of the teardown reported;
//   - a failed Offload: retried on its own backoff.
//
// No other path changes a stream's state or its sink's, so there is no
// periodic pass over all streams. Between an event and its pass the kernel
// keeps the previous rule: a pass follows within microseconds under normal
// load, which is as long as a handover or an offer leaves the reverse
// direction aimed at the old address.
type offloader struct {
	fp   FastPath
	eng  *Engine
	now  func() time.Time // the retry clock; tests drive it
	wake chan struct{}
	// barrier asks for a pass and is answered when it is done: a point
	// after which everything queued before has been synced.
	barrier chan chan struct{}
	// adopting holds adopted rules as they are until endAdopt asks for
	// the pass that syncs them.
	adopting atomic.Bool
	endAdopt chan chan struct{}
	stop     chan struct{}
	done     chan struct{}
	closed   atomic.Bool

	// dirty is a lock-free stack of queued streams linked through
	// Stream.dirtyNext: whoever queues a stream never waits for the
	// offloader, whatever FastPath call it is in.
	dirty atomic.Pointer[Stream]

	// The goroutine's own (flush runs only there, or in close once it has
	// stopped).
	streams map[*Stream]struct{}
	retry   retryQueue // streams whose Offload failed, earliest due first
}

// offState is what the offloader keeps about one stream.
type offState struct {
	registered, removed bool
	released            atomic.Bool // the offloader's part of the teardown is done
	// adopted: the fast path held a rule for the stream's local when it
	// attached, which this offloader has neither rewritten nor withdrawn
	// yet (Adopter).
	adopted bool
	// rule is the rule last handed to the fast path: installed while
	// Stream.kernel is set, refused while a retry is planned.
	rule      OffloadRule
	sink      *Stream // the sink rule was made with
	errLogged bool
	refused   bool // the fast path refused rule for good (ErrNoKernelPath)
	// sinkOf is the sink s is recorded under, sources the streams whose sink
	// s is: a change on s must re-sync their rules, which carry s's side.
	sinkOf  *Stream
	sources []*Stream
	// Backoff of a failed Offload; retryIdx is s's place in the retry heap,
	// -1 when no retry is planned.
	retryAt    time.Time
	retryDelay time.Duration
	retryIdx   int
}

func newOffloader(e *Engine, fp FastPath) *offloader {
	o := makeOffloader(e, fp)
	go o.run()
	return o
}

// makeOffloader builds an offloader whose loop is not running yet.
func makeOffloader(e *Engine, fp FastPath) *offloader {
	now := time.Now
	if e != nil && e.now != nil {
		now = e.now
	}
	o := &offloader{fp: fp, eng: e, now: now, wake: make(chan struct{}, 1), barrier: make(chan chan struct{}),
		endAdopt: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), streams: map[*Stream]struct{}{}}
	_, adopter := fp.(Adopter)
	o.adopting.Store(adopter)
	return o
}

// queue asks for s and its sources to be synced soon. It never blocks.
func (o *offloader) queue(s *Stream) {
	if s.queued.CompareAndSwap(false, true) {
		for {
			top := o.dirty.Load()
			s.dirtyNext = top
			if o.dirty.CompareAndSwap(top, s) {
				break
			}
		}
		o.kick()
	}
	if o.closed.Load() && s.detached.Load() {
		// Nobody syncs any more: the teardown must not wait for it.
		o.releaseStream(s)
	}
}

func (o *offloader) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *offloader) run() {
	defer close(o.done)
	retry := time.NewTimer(offloadRetryMax)
	retry.Stop()
	for {
		var answer chan struct{}
		adoptionOver := false
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-retry.C:
		case answer = <-o.barrier:
		case answer = <-o.endAdopt:
			adoptionOver = true
		}
		due := o.flush()
		if adoptionOver {
			// After the flush: streams queued before are registered.
			for s := range o.streams {
				if s.off.adopted {
					o.sync(s)
				}
			}
			due = o.nextRetry()
		}
		if due.IsZero() {
			retry.Stop()
		} else {
			retry.Reset(due.Sub(o.now()))
		}
		if answer != nil {
			close(answer)
		}
	}
}

// settle returns after a pass that began after the call: whatever was queued
// before has been synced with the fast path.
func (o *offloader) settle() {
	answer := make(chan struct{})
	select {
	case o.barrier <- answer:
		<-answer
	case <-o.done:
	}
}

// endAdoption ends the hold on adopted rules: each is rewritten from its
// stream's state now, or withdrawn. It returns once that is done.
func (o *offloader) endAdoption() {
	if !o.adopting.CompareAndSwap(true, false) {
		return
	}
	answer := make(chan struct{})
	select {
	case o.endAdopt <- answer:
		<-answer
	case <-o.done:
	}
}

// nextRetry is when the earliest planned retry is due (zero for none).
func (o *offloader) nextRetry() time.Time {
	if len(o.retry) == 0 {
		return time.Time{}
	}
	return o.retry[0].off.retryAt
}

// flush handles the queued streams and the retries that are due, and returns
// when the next retry is due (zero when none is pending).
func (o *offloader) flush() time.Time {
	for s := o.dirty.Swap(nil); s != nil; {
		next := s.dirtyNext
		s.dirtyNext = nil
		// Before the sync reads the state: a change made from here on
		// queues s again rather than being missed.
		s.queued.Store(false)
		o.update(s)
		s = next
	}
	now := o.now()
	for len(o.retry) > 0 {
		s := o.retry[0]
		if s.off.retryAt.After(now) {
			return s.off.retryAt
		}
		o.sync(heap.Pop(&o.retry).(*Stream))
	}
	return time.Time{}
}

// update brings s (and the rules sending into it) in line with its state.
func (o *offloader) update(s *Stream) {
	st := s.off
	if st == nil || st.removed {
		return
	}
	if s.detached.Load() {
		o.remove(s)
		return
	}
	if !st.registered {
		st.registered = true
		o.streams[s] = struct{}{}
		if a, ok := o.fp.(Adopter); ok && a.Adopted(s.local) {
			// The previous relayd's rule: forwarding, and from now on
			// this stream's to rewrite or withdraw.
			st.adopted = true
			s.kernel.Store(true)
		}
	}
	o.link(s, s.state.Load().cfg.sink)
	o.sync(s)
	for _, f := range st.sources {
		o.sync(f)
	}
}

func (o *offloader) close() {
	o.closed.Store(true)
	close(o.stop)
	<-o.done
	o.flush() // what was queued before the loop stopped
	keep := o.eng != nil && o.eng.handOver.Load()
	for s := range o.streams {
		if !keep {
			o.withdraw(s)
			o.fp.Release(s.local)
		}
		s.off.removed = true
		o.releaseStream(s)
	}
	o.streams = map[*Stream]struct{}{}
}

// releaseStream reports the offloader's part of s's teardown, once.
func (o *offloader) releaseStream(s *Stream) {
	if s.off != nil && s.off.released.CompareAndSwap(false, true) {
		s.release()
	}
}

// remove takes s out of the kernel for good (Detach), with the rules sending
// out of its socket.
func (o *offloader) remove(s *Stream) {
	st := s.off
	st.removed = true
	if st.registered {
		o.withdraw(s)
		o.fp.Release(s.local)
		delete(o.streams, s)
		o.link(s, nil)
		for _, f := range st.sources {
			o.sync(f) // their sink is detached: withdrawn
		}
	}
	o.releaseStream(s)
}

// link records s as a source of sink (s's rule depends on sink's state), in
// place of whatever sink it had.
func (o *offloader) link(s, sink *Stream) {
	st := s.off
	old := st.sinkOf
	if old == sink {
		return
	}
	if old != nil && old.off != nil {
		src := old.off.sources
		for i, f := range src {
			if f == s {
				last := len(src) - 1
				src[i] = src[last]
				src[last] = nil
				old.off.sources = src[:last]
				break
			}
		}
	}
	st.sinkOf = sink
	if sink != nil && sink.off != nil {
		sink.off.sources = append(sink.off.sources, s)
	}
}

func (o *offloader) withdraw(s *Stream) {
	st := s.off
	o.unschedule(s)
	if !s.kernel.Load() {
		return
	}
	if err := o.fp.Withdraw(s.local); err != nil {
		o.eng.log.Warn("withdraw kernel rule", "local", s.local, "error", err)
	}
	s.kernel.Store(false)
	st.adopted = false
	if k := st.sink; k != nil {
		k.feeder.CompareAndSwap(s, nil)
	}
	st.sink = nil
}

// sync makes s's kernel rule match what it should be now.
func (o *offloader) sync(s *Stream) {
	st := s.off
	if st == nil || !st.registered || st.removed {
		return // not yet seen, or detached (remove withdrew it)
	}
	if st.adopted && o.adopting.Load() {
		// Its call is being restored: the adopted rule forwards as the
		// previous relayd left it until the restore is complete.
		return
	}
	rule, sink, ok := s.offloadRule()
	switch {
	case !ok:
		o.withdraw(s)
	case s.kernel.Load() && st.rule == rule:
	case st.retryIdx >= 0 && st.rule == rule:
		// Failed just like this: its planned retry tries again, so that
		// events around it do not hammer a fast path that refuses it.
	case st.refused && st.rule == rule:
		// Refused for good (ErrNoKernelPath): only another rule, after an
		// offer/answer or a new peer, is worth asking for.
	default:
		if err := o.fp.Offload(rule); err != nil {
			// Stays in userspace; e.g. the next hop is not resolved yet
			// (the userspace send resolves it).
			if s.kernel.Load() {
				o.withdraw(s)
			}
			if !st.errLogged {
				o.eng.log.Debug("stream stays in userspace", "local", s.local, "reason", err)
				st.errLogged = true
			}
			st.rule = rule
			if errors.Is(err, ErrNoKernelPath) {
				st.refused = true
				o.unschedule(s)
				return
			}
			o.schedule(s)
			return
		}
		if old := st.sink; old != nil && old != sink {
			old.feeder.CompareAndSwap(s, nil)
		}
		s.kernel.Store(true)
		st.rule, st.sink, st.adopted = rule, sink, false
		sink.feeder.Store(s)
		st.errLogged, st.refused = false, false
		o.unschedule(s)
	}
}

// schedule plans a retry of s's failed Offload, doubling the wait on every
// failure in a row.
func (o *offloader) schedule(s *Stream) {
	st := s.off
	if st.retryIdx >= 0 {
		return // an event synced it early: keep the planned retry
	}
	st.retryDelay = min(max(2*st.retryDelay, offloadRetryMin), offloadRetryMax)
	st.retryAt = o.now().Add(st.retryDelay)
	heap.Push(&o.retry, s)
}

// unschedule forgets s's retry and its backoff.
func (o *offloader) unschedule(s *Stream) {
	st := s.off
	if st.retryIdx >= 0 {
		heap.Remove(&o.retry, st.retryIdx)
	}
	st.retryDelay = 0
}

// retryQueue is a min-heap of streams by retryAt; each stream knows its
// index, so a success or a withdraw takes it out in O(log n).
type retryQueue []*Stream

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].off.retryAt.Before(q[j].off.retryAt) }

func (q retryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].off.retryIdx, q[j].off.retryIdx = i, j
}

func (q *retryQueue) Push(x any) {
	s := x.(*Stream)
	s.off.retryIdx = len(*q)
	*q = append(*q, s)
}

func (q *retryQueue) Pop() any {
	old := *q
	last := len(old) - 1
	s := old[last]
	old[last] = nil
	s.off.retryIdx = -1
	*q = old[:last]
	return s
}

// offloadRule is the kernel rule s would get now, if it may have one: its
// peer is latched, its sink has a destination of the same family, and no
// userspace-only processing (RTCP demultiplexing) is asked for.
func (s *Stream) offloadRule() (OffloadRule, *Stream, bool) {
	if s.detached.Load() {
		return OffloadRule{}, nil, false
	}
	st := s.state.Load()
	cfg := st.cfg
	// A stage the kernel cannot stand in for (rtcp-mux demultiplexing,
	// SRTP, a tap) keeps the stream in userspace.
	if !cfg.configured || !st.latched || cfg.sink == nil || !cfg.ingress.kernel {
		return OffloadRule{}, nil, false
	}
	src := st.src
	if !src.IsValid() {
		src = cfg.peer // learning off: the signalled endpoint is the source
	}
	sink := cfg.sink
	dst := sink.state.Load()
	if !usable(src) || dst.destSA == nil || sink.detached.Load() || !dst.cfg.egressOK {
		return OffloadRule{}, nil, false
	}
	same := func(a, b netip.Addr) bool { return a.Unmap().Is4() == b.Unmap().Is4() }
	if !same(s.local.Addr(), src.Addr()) || !same(sink.local.Addr(), dst.dest.Addr()) ||
		!same(s.local.Addr(), sink.local.Addr()) {
		return OffloadRule{}, nil, false // family bridging stays in userspace
	}
	return OffloadRule{
		Local: s.local, Source: src, Egress: sink.local, Dest: dst.dest,
		TOS: int(sink.tos.Load()), RTCP: cfg.rtcp,
	}, sink, true
}

// kernelCounts adds what the kernel forwarded to a stream's counters: its own
// slot to In (and to kernelIn, when given), and the slot of the stream
// feeding it to Out.
func (s *Stream) kernelCounts(in, out, kernelIn *Counters) bool {
	o := s.offloader()
	if o == nil {
		return false
	}
	if kc, ok := o.fp.Counters(s.local); ok {
		addKernel(in, kc)
		if kernelIn != nil {
			addKernel(kernelIn, kc)
		}
	}
	if f := s.feeder.Load(); f != nil {
		if kc, ok := o.fp.Counters(f.local); ok && out != nil {
			out.Packets += kc.Packets
			out.Bytes += kc.Bytes
		}
	}
	return s.kernel.Load()
}

func addKernel(c *Counters, kc KernelCounters) {
	c.Packets += kc.Packets
	c.Bytes += kc.Bytes
	if kc.LastPacket.After(c.LastPacket) {
		c.LastPacket = kc.LastPacket
	}
}

func (s *Stream) offloader() *offloader {
	if s.eng == nil {
		return nil
	}
	return s.eng.off
}

// InKernel reports whether the fast path forwards the stream's packets now.
func (s *Stream) InKernel() bool { return s.kernel.Load() }
