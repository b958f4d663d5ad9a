// SPDX-License-Identifier: Apache-2.0

package media

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Stream is one local socket facing one party. Its methods are safe for
// concurrent use, except that Configure, SetTOS and Detach of one stream are
// the signalling layer's and are not to race each other.
type Stream struct {
	// First, so that 64-bit atomics are aligned on 32-bit platforms too.
	in, out  rawCounters
	dropped  atomic.Uint64
	rejected atomic.Uint64

	eng   *Engine
	w     *worker // owns the socket: the only reader, and its closer
	idx   uint32  // in the engine's table; the epoll data of its events
	fd    int
	local netip.AddrPort
	ipv6  bool // AF_INET6 socket
	// rawFamily is the family of the worker's raw socket that can send for
	// this stream (afInet or afInet6), 0 for none: the stream is bound to
	// one address (not a wildcard, not IPv6 link-local), which with
	// srcPort is the source the raw path writes. src holds an IPv4 address
	// in its first 4 bytes.
	rawFamily uint16
	src       [16]byte
	srcPort   [2]byte

	state    atomic.Pointer[state]
	detached atomic.Bool

	// ssrcs is created by the worker on the first RTP packet, so RTCP ports and
	// idle streams carry no per-SSRC memory.
	ssrcs atomic.Pointer[ssrcTable]
	// rtcp is made on the first RTCP packet: the SRs and reports of it.
	rtcp atomic.Pointer[rtcpState]

	tos atomic.Int32 // egress DSCP/TOS byte, -1 until SetTOS

	// Fast path, published by the offloader: whether a kernel rule forwards
	// this stream's packets, and the stream whose kernel rule sends into
	// this one (for its Out counters).
	kernel atomic.Bool
	feeder atomic.Pointer[Stream]
	// On the offloader's queue; dirtyNext links it there.
	queued    atomic.Bool
	dirtyNext *Stream
	// off is the offloader's own record of the stream: only the
	// offloader's goroutine touches it.
	off *offState

	// Teardown: the worker closes the socket and the offloader forgets the
	// rule; the last of the two (refs) reports the socket closed.
	refs      atomic.Int32
	fdClosed  atomic.Bool
	closed    func()
	closeNext *Stream // on the worker's close list
}

func newStream(local netip.AddrPort) *Stream {
	s := &Stream{local: local, fd: -1, ipv6: !local.Addr().Is4() && !local.Addr().Is4In6()}
	switch a := local.Addr(); {
	case a.IsUnspecified() || a.Unmap().IsUnspecified() || a.IsLinkLocalUnicast():
	case !s.ipv6:
		s.rawFamily = afInet
		v4 := a.Unmap().As4()
		copy(s.src[:], v4[:])
	default:
		s.rawFamily = afInet6
		s.src = a.As16()
	}
	binary.BigEndian.PutUint16(s.srcPort[:], local.Port())
	s.state.Store(&state{cfg: &streamConfig{v6Socket: s.ipv6, ingress: buildPipeline(nil, nil, nil), egressOK: true}})
	s.tos.Store(-1)
	return s
}

// LocalAddr is the address and port the socket is bound to.
func (s *Stream) LocalAddr() netip.AddrPort { return s.local }

func (s *Stream) clock() time.Time {
	if s.eng != nil {
		return s.eng.now()
	}
	return time.Now()
}

// Configure installs what a signalling event says about this stream and
// restarts endpoint learning (a new window from now). Call it on every offer
// and answer. It never waits for a worker or for the kernel: a kernel rule
// follows within one pass of the fast path's writer.
func (s *Stream) Configure(c StreamConfig) {
	window := defaultLearningWindow
	if s.eng != nil {
		window = s.eng.window
	}
	now := s.clock()
	for {
		prev := s.state.Load()
		if s.state.CompareAndSwap(prev, newConfigState(prev, c, window, now, !s.ipv6)) {
			break
		}
	}
	if o := s.offloader(); o != nil {
		o.queue(s) // learning restarts in userspace: the rule goes until it latches again
	}
	if s.eng != nil && s.eng.log.Enabled(context.Background(), slog.LevelDebug) {
		var sink netip.AddrPort
		if c.Sink != nil {
			sink = c.Sink.local
		}
		s.eng.log.Debug("stream configured", "local", s.local, "peer", c.Peer, "sink", sink,
			"learning", c.Learning, "strict", c.StrictSource, "asymmetric", c.Asymmetric,
			"handover", c.MediaHandover, "rtcp", c.RTCP, "handlers", len(c.Handlers),
			"stages", len(c.Stages), "egress", len(c.Egress))
	}
}

// learned tells the fast path's writer about a learning step that changed
// what a kernel rule would hold: a latch, a handover, a destination learned
// before the latch (which moves the rules sending into s).
func (s *Stream) learned(prev, next *state) {
	o := s.offloader()
	if o == nil {
		return
	}
	if prev.latched != next.latched || prev.src != next.src || prev.destSA != next.destSA {
		o.queue(s)
	}
}

// Detach stops forwarding on the stream: from its return no packet received
// on the socket is forwarded, packets other streams forward to it are
// dropped, and a kernel rule of it or into it goes with the fast path's
// writer's next pass. The owning worker closes the socket, then the engine
// calls the closed function Attach was given. Detach never waits for either.
// Idempotent.
func (s *Stream) Detach() {
	if !s.detached.CompareAndSwap(false, true) {
		return
	}
	if o := s.offloader(); o != nil {
		o.queue(s)
	}
	if s.w != nil {
		s.w.closeLater(s)
	}
}

// closeSocket closes the socket once, on the owning worker or when the engine
// is closed, and drops the worker's part of the teardown.
func (s *Stream) closeSocket() {
	if !s.fdClosed.CompareAndSwap(false, true) {
		return
	}
	s.detached.Store(true)
	if s.w != nil {
		s.w.unwatch(s)
	}
	if s.eng != nil {
		s.eng.table.remove(s.idx)
	}
	s.release()
}

// release drops one part of the teardown; the last one reports the socket
// closed (its port may be bound again).
func (s *Stream) release() {
	if s.refs.Add(-1) == 0 && s.closed != nil {
		s.closed()
	}
}

// SetTOS sets the IPv4 TOS / IPv6 traffic class of packets sent from this
// stream's socket (DSCP of the media sent to its party). The owning worker
// applies it to the socket; kernel rules carry it from the writer's next pass.
func (s *Stream) SetTOS(tos int) error {
	if tos < 0 || tos > 255 {
		return fmt.Errorf("tos %d: %w", tos, ErrBadTOS)
	}
	if s.detached.Load() {
		return ErrDetached
	}
	if s.tos.Swap(int32(tos)) == int32(tos) {
		return nil
	}
	if s.w != nil {
		s.w.setTOSLater(s)
	}
	if o := s.offloader(); o != nil {
		o.queue(s) // the rules sending from this socket carry its TOS
	}
	return nil
}

// Received returns the counters of packets from this stream's party (with the
// kernel's part of them) and how many were dropped, without the per-SSRC snapshot: cheap enough for the
// once-a-second liveness and totals walks over every socket.
func (s *Stream) Received() (in, kernel Counters, dropped uint64) {
	in = s.in.snapshot()
	s.kernelCounts(&in, nil, &kernel)
	return in, kernel, s.dropped.Load()
}

// Stats returns a snapshot; safe while packets are being forwarded.
func (s *Stream) Stats() StreamStats {
	st := s.state.Load()
	out := StreamStats{
		In:        s.in.snapshot(),
		Out:       s.out.snapshot(),
		Dropped:   s.dropped.Load(),
		Rejected:  s.rejected.Load(),
		Confirmed: st.latched,
	}
	if st.destSA != nil {
		out.Endpoint = st.dest
	}
	out.Kernel = s.kernelCounts(&out.In, &out.Out, &out.KernelIn)
	if t := s.ssrcs.Load(); t != nil {
		out.SSRCs = t.snapshot()
	}
	if r := s.rtcp.Load(); r != nil {
		out.Reports = r.snapshot()
	}
	return out
}

// receive runs one datagram from src through the stream's ingress stages as
// a worker does, without sending: it returns the stream to send from and the
// destination, or a nil sink for a packet not forwarded (dropped ones are
// counted). The benchmarks and the tests of the learning rules use it.
func (s *Stream) receive(pkt []byte, src netip.AddrPort, scope uint32, nowNs, monoNs int64, now time.Time) (*Stream, *rawAddr) {
	p := Packet{Data: pkt, Source: src, Kind: classify(pkt), Stream: s, NowNs: nowNs,
		scope: scope, monoNs: monoNs, now: now}
	sink, dst, v := s.ingress(&p)
	if v != Continue {
		return nil, nil
	}
	return sink, dst
}

// ingress runs the stream's stages on p and finds where it goes: the sink
// and its destination, with Continue, or the verdict that stopped it
// (Drop is counted here).
func (s *Stream) ingress(p *Packet) (*Stream, *rawAddr, Verdict) {
	st := s.state.Load()
	p.Sink = st.cfg.sink
	switch st.cfg.ingress.run(p) {
	case Drop:
		s.dropped.Add(1)
		return nil, nil, Drop
	case Consume:
		return nil, nil, Consume
	}
	sink := p.Sink
	if sink == nil || sink.detached.Load() {
		s.dropped.Add(1)
		return nil, nil, Drop
	}
	dst := sink.state.Load().destSA
	if dst == nil {
		s.dropped.Add(1)
		return nil, nil, Drop
	}
	return sink, dst, Continue
}

// Send queues b to be sent out of this stream's socket to dst as it is (no
// stages): how a stage's own goroutine (a DTLS handshake) writes. It copies b
// and never blocks; false means the worker's queue was full (counted on the
// stream's Out errors).
func (s *Stream) Send(b []byte, dst netip.AddrPort) bool {
	if s.w == nil || s.detached.Load() {
		return false
	}
	if !s.w.inject.put(s, b, dst, false) {
		s.out.addError()
		return false
	}
	s.w.kick()
	return true
}

// Deliver queues b to be sent to this stream's party as if forwarded to it:
// through its Egress stages, to its current destination. Work done off the
// workers (transcoding) hands its output back this way. It copies b and never
// blocks; false means the queue was full (counted on the stream's Out errors).
func (s *Stream) Deliver(b []byte) bool {
	if s.w == nil || s.detached.Load() {
		return false
	}
	if !s.w.inject.put(s, b, netip.AddrPort{}, true) {
		s.out.addError()
		return false
	}
	s.w.kick()
	return true
}

// Destination is where packets to the stream's party go now.
func (s *Stream) Destination() (netip.AddrPort, bool) {
	st := s.state.Load()
	return st.dest, st.destSA != nil
}

// Accept lets the packets of src in without moving where the party's
// packets go, as a handler that authenticated src knows it is the party's
// but not the address the party chose to receive on: an ICE check of a pair
// that is not (or not yet) nominated. A peer may send on any pair its checks
// validated, and switches before its next nomination reaches the relay (or
// back to a pair it nominated before, after the relay latched another).
// The latest few such sources are kept until the next Configure. It runs on
// the stream's worker, from a stage.
func (s *Stream) Accept(src netip.AddrPort) {
	for {
		st := s.state.Load()
		ns := st.check(src)
		if ns == st || s.state.CompareAndSwap(st, ns) {
			return
		}
	}
}

// LatchIfUnlatched latches src unless a source is latched already: a packet
// that authenticated itself proves its source, but does not move a stream
// that an earlier proof (an ICE nomination) has latched.
func (s *Stream) LatchIfUnlatched(src netip.AddrPort) {
	if s.state.Load().latched {
		return
	}
	s.Latch(src)
}

// Latch makes src the stream's confirmed source and destination now, as a
// handler that authenticated src itself (an ICE check, an SRTP packet) knows
// it is the party. It runs on the stream's worker, from a stage.
func (s *Stream) Latch(src netip.AddrPort) {
	for {
		st := s.state.Load()
		if st.latched && st.src == src {
			return
		}
		ns := st.learn(src, 0, rankOf(src, st.cfg.peer), true)
		if s.state.CompareAndSwap(st, ns) {
			s.learned(st, ns)
			return
		}
	}
}
