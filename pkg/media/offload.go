// SPDX-License-Identifier: Apache-2.0

package media

import (
	"net/netip"
	"sync"
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

// offloadSweep is how often streams are checked for (re)offloading besides
// the latch events the workers send.
const offloadSweep = 200 * time.Millisecond

// offloader is the single writer of kernel rules: every install and withdraw
// happens under its lock, so a stream's rule and its reverse never disagree
// for longer than one sweep.
type offloader struct {
	fp   FastPath
	eng  *Engine
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	streams map[*Stream]struct{}
}

func newOffloader(e *Engine, fp FastPath) *offloader {
	o := &offloader{fp: fp, eng: e, wake: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{}), streams: map[*Stream]struct{}{}}
	go o.run()
	return o
}

// poke asks for a sweep soon; never blocks (a worker calls it when a stream
// latches).
func (o *offloader) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *offloader) run() {
	defer close(o.done)
	t := time.NewTicker(offloadSweep)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		case <-o.wake:
		}
		o.sweep()
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

// remove takes s out of the kernel for good (Detach).
func (o *offloader) remove(s *Stream) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.streams[s]; !ok {
		return
	}
	o.withdraw(s)
	o.fp.Release(s.local)
	delete(o.streams, s)
}

// reconfigure runs fn (the state swap of a Configure) with s out of the
// kernel, so learning restarts in userspace as on every offer/answer.
func (o *offloader) reconfigure(s *Stream, fn func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.withdraw(s)
	fn()
}

func (o *offloader) withdraw(s *Stream) {
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

func (o *offloader) sweep() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for s := range o.streams {
		o.sync(s)
	}
}

// sync makes s's kernel rule match what it should be now; o.mu is held.
func (o *offloader) sync(s *Stream) {
	rule, sink, ok := s.offloadRule()
	switch {
	case !ok:
		o.withdraw(s)
	case s.kernel.Load() && s.kernelRule == rule:
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
			return
		}
		if old := s.kernelSink; old != nil && old != sink {
			old.feeder.CompareAndSwap(s, nil)
		}
		s.kernel.Store(true)
		s.kernelRule, s.kernelSink = rule, sink
		sink.feeder.Store(s)
		s.offloadErrLogged = false
	}
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
	if f := s.feeder.Load(); f != nil {
		o.sync(f)
	}
	o.poke() // s itself returns to the kernel with its new source
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
