// SPDX-License-Identifier: Apache-2.0

package media

import (
	"container/heap"
	"errors"
	"net/netip"
	"sync"
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

// offloader is the single writer of kernel rules: every install and withdraw
// happens under its lock, so a stream's rule and its reverse never disagree
// for longer than one sync.
//
// It is event-driven so that its cost follows what changes, not how many
// streams are installed. A stream's rule (Stream.offloadRule) is a function of
// its own state and of its sink's destination, socket, TOS and liveness, so
// every change of either queues the stream whose state changed, and a queued
// stream is synced together with its sources (the streams whose sink it is,
// whose rules carry its side):
//
//   - latch, and a destination learned before the latch (receive): queue;
//   - handover of a latched stream (follow): its own rule withdrawn and the
//     rules sending into it re-aimed synchronously, then queued;
//   - offer/answer (reconfigure): withdrawn, the in-kernel sources re-aimed
//     synchronously (its destination may have moved), then queued;
//   - SetTOS: queued (the sources' rules carry the TOS);
//   - Detach (remove): withdrawn, the in-kernel sources withdrawn
//     synchronously;
//   - a failed Offload: retried on its own backoff (retry).
//
// No other path changes a stream's state or its sink's, so there is no
// periodic pass over all streams.
type offloader struct {
	fp   FastPath
	eng  *Engine
	now  func() time.Time // the retry clock; tests drive it
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	// dirty is a lock-free stack of queued streams linked through
	// Stream.dirtyNext: a worker queuing a stream in the packet path never
	// waits for the offloader, whatever FastPath call that is in.
	dirty atomic.Pointer[Stream]

	mu      sync.Mutex
	streams map[*Stream]struct{}
	retry   retryQueue // streams whose Offload failed, earliest due first
}

func newOffloader(e *Engine, fp FastPath) *offloader {
	o := makeOffloader(e, fp)
	go o.run()
	return o
}

// makeOffloader builds an offloader whose loop is not running yet.
func makeOffloader(e *Engine, fp FastPath) *offloader {
	return &offloader{fp: fp, eng: e, now: time.Now, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), streams: map[*Stream]struct{}{}}
}

// queue asks for s and its sources to be synced soon. It never blocks: the
// workers call it when a stream latches.
func (o *offloader) queue(s *Stream) {
	if !s.queued.CompareAndSwap(false, true) {
		return // still queued: its sync reads the state as it is then
	}
	for {
		top := o.dirty.Load()
		s.dirtyNext = top
		if o.dirty.CompareAndSwap(top, s) {
			break
		}
	}
	o.kick()
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
		select {
		case <-o.stop:
			return
		case <-o.wake:
		case <-retry.C:
		}
		if due := o.flush(); due.IsZero() {
			retry.Stop()
		} else {
			retry.Reset(due.Sub(o.now()))
		}
	}
}

// flush syncs the queued streams and the retries that are due, and returns
// when the next retry is due (zero when none is pending). The lock is taken
// per stream, so a worker's follow waits for one sync, never for a batch.
func (o *offloader) flush() time.Time {
	for s := o.dirty.Swap(nil); s != nil; {
		next := s.dirtyNext
		s.dirtyNext = nil
		// Before the sync reads the state: a change made from here on
		// queues s again rather than being missed.
		s.queued.Store(false)
		o.mu.Lock()
		o.sync(s)
		for _, f := range s.sources {
			o.sync(f)
		}
		o.mu.Unlock()
		s = next
	}
	now := o.now()
	for {
		o.mu.Lock()
		if len(o.retry) == 0 {
			o.mu.Unlock()
			return time.Time{}
		}
		if s := o.retry[0]; s.retryAt.After(now) {
			o.mu.Unlock()
			return s.retryAt
		}
		o.sync(heap.Pop(&o.retry).(*Stream))
		o.mu.Unlock()
	}
}

func (o *offloader) close() {
	close(o.stop)
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.streams {
		o.withdraw(s)
		o.fp.Release(s.local)
	}
	o.streams = nil
}

func (o *offloader) add(s *Stream) {
	o.mu.Lock()
	if o.streams != nil { // nil once closed
		o.streams[s] = struct{}{}
	}
	o.mu.Unlock()
}

// remove takes s out of the kernel for good (Detach). s.detached is already
// set, so the rules sending out of its socket go too, now rather than at a
// later sync: Detach promises that nothing is forwarded to it any more.
func (o *offloader) remove(s *Stream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.streams[s]; !ok {
		return
	}
	o.withdraw(s)
	o.fp.Release(s.local)
	delete(o.streams, s)
	o.link(s, nil)
	o.reaim(s)
}

// reconfigure runs fn (the state swap of a Configure) with s out of the
// kernel, so learning restarts in userspace as on every offer/answer.
func (o *offloader) reconfigure(s *Stream, fn func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.withdraw(s)
	fn()
	if _, ok := o.streams[s]; !ok {
		return // detached: nobody may send into it again
	}
	o.link(s, s.state.Load().cfg.sink)
	// The new SDP may have moved s's destination: the rules in the kernel
	// must not keep sending to the old one. Sources still in userspace may
	// be able to go to the kernel now (s had no destination before).
	o.reaim(s)
	o.queue(s)
}

// follow runs on the worker when a latched stream's peer moves
// (media-handover): before the packet that moved it is forwarded, the rule
// sending into it is re-aimed at the new peer and its own rule (checking the
// old source) is withdrawn, so no later packet can reach the old peer.
func (o *offloader) follow(s *Stream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.streams[s]; !ok {
		return
	}
	o.withdraw(s)
	o.reaim(s)
	o.queue(s) // s itself returns to the kernel with its new source
}

// reaim syncs the kernel rules that send into s at once, not at the next
// flush, so that none keeps forwarding to where s's party no longer is (or
// out of a detached socket); o.mu is held.
func (o *offloader) reaim(s *Stream) {
	for _, f := range s.sources {
		if f.kernel.Load() {
			o.sync(f)
		}
	}
}

// link records s as a source of sink (s's rule depends on sink's state), in
// place of whatever sink it had; o.mu is held.
func (o *offloader) link(s, sink *Stream) {
	old := s.sinkOf
	if old == sink {
		return
	}
	if old != nil {
		for i, f := range old.sources {
			if f == s {
				last := len(old.sources) - 1
				old.sources[i] = old.sources[last]
				old.sources[last] = nil
				old.sources = old.sources[:last]
				break
			}
		}
	}
	s.sinkOf = sink
	if sink != nil {
		sink.sources = append(sink.sources, s)
	}
}

func (o *offloader) withdraw(s *Stream) {
	o.unschedule(s)
	if !s.kernel.Load() {
		return
	}
	if err := o.fp.Withdraw(s.local); err != nil {
		o.eng.log.Warn("withdraw kernel rule", "local", s.local, "error", err)
	}
	s.kernel.Store(false)
	if k := s.kernelSink; k != nil {
		k.feeder.CompareAndSwap(s, nil)
	}
	s.kernelSink = nil
}

// sync makes s's kernel rule match what it should be now; o.mu is held.
func (o *offloader) sync(s *Stream) {
	if _, ok := o.streams[s]; !ok {
		return // detached (remove withdrew it) or the engine is closed
	}
	rule, sink, ok := s.offloadRule()
	switch {
	case !ok:
		o.withdraw(s)
	case s.kernel.Load() && s.kernelRule == rule:
	case s.retryIdx >= 0 && s.kernelRule == rule:
		// Failed just like this: its planned retry tries again, so that
		// events around it do not hammer a fast path that refuses it.
	case s.offloadRefused && s.kernelRule == rule:
		// Refused for good (ErrNoKernelPath): only another rule, after an
		// offer/answer or a new peer, is worth asking for.
	default:
		if err := o.fp.Offload(rule); err != nil {
			// Stays in userspace; e.g. the next hop is not resolved yet
			// (the userspace send resolves it).
			if s.kernel.Load() {
				o.withdraw(s)
			}
			if !s.offloadErrLogged {
				o.eng.log.Debug("stream stays in userspace", "local", s.local, "reason", err)
				s.offloadErrLogged = true
			}
			s.kernelRule = rule
			if errors.Is(err, ErrNoKernelPath) {
				s.offloadRefused = true
				o.unschedule(s)
				return
			}
			o.schedule(s)
			return
		}
		if old := s.kernelSink; old != nil && old != sink {
			old.feeder.CompareAndSwap(s, nil)
		}
		s.kernel.Store(true)
		s.kernelRule, s.kernelSink = rule, sink
		sink.feeder.Store(s)
		s.offloadErrLogged, s.offloadRefused = false, false
		o.unschedule(s)
	}
}

// schedule plans a retry of s's failed Offload, doubling the wait on every
// failure in a row; o.mu is held.
func (o *offloader) schedule(s *Stream) {
	if s.retryIdx >= 0 {
		return // an event synced it early: keep the planned retry
	}
	s.retryDelay = min(max(2*s.retryDelay, offloadRetryMin), offloadRetryMax)
	s.retryAt = o.now().Add(s.retryDelay)
	heap.Push(&o.retry, s)
	o.kick() // the loop's timer may be set later than this, or not at all
}

// unschedule forgets s's retry and its backoff; o.mu is held.
func (o *offloader) unschedule(s *Stream) {
	if s.retryIdx >= 0 {
		heap.Remove(&o.retry, s.retryIdx)
	}
	s.retryDelay = 0
}

// retryQueue is a min-heap of streams by retryAt; each stream knows its
// index, so a success or a withdraw takes it out in O(log n).
type retryQueue []*Stream

func (q retryQueue) Len() int           { return len(q) }
func (q retryQueue) Less(i, j int) bool { return q[i].retryAt.Before(q[j].retryAt) }

func (q retryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].retryIdx, q[j].retryIdx = i, j
}

func (q *retryQueue) Push(x any) {
	s := x.(*Stream)
	s.retryIdx = len(*q)
	*q = append(*q, s)
}

func (q *retryQueue) Pop() any {
	old := *q
	last := len(old) - 1
	s := old[last]
	old[last] = nil
	s.retryIdx = -1
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
	if !cfg.configured || !st.latched || cfg.sink == nil || cfg.rtcpSink != nil {
		return OffloadRule{}, nil, false
	}
	src := st.src
	if !src.IsValid() {
		src = cfg.peer // learning off: the signalled endpoint is the source
	}
	sink := cfg.sink
	dst := sink.state.Load()
	if !usable(src) || dst.destUDP == nil || sink.detached.Load() {
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
	o := s.off()
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

func (s *Stream) off() *offloader {
	if s.eng == nil {
		return nil
	}
	return s.eng.off
}

// InKernel reports whether the fast path forwards the stream's packets now.
func (s *Stream) InKernel() bool { return s.kernel.Load() }
