// SPDX-License-Identifier: Apache-2.0

package media

import (
	"net/netip"
	"time"
)

// Kind is what a datagram is, told by its first byte the way RFC 7983 §7
// demultiplexes a media port (STUN, ZRTP, DTLS, TURN channels, RTP/RTCP) and
// RTP from RTCP by RFC 5761 §4.
type Kind uint8

const (
	// KindOther is anything else: keepalives, garbage, and RTP/RTCP-looking
	// datagrams whose header does not hold together.
	KindOther Kind = iota
	// KindSTUN is a first byte of 0..3 (STUN, ICE connectivity checks).
	KindSTUN
	// KindDTLS is a first byte of 20..63 (DTLS records).
	KindDTLS
	// KindRTP is a valid RTP version 2 header.
	KindRTP
	// KindRTCP is a valid RTCP version 2 first packet (types 192..223).
	KindRTCP
)

func (k Kind) String() string {
	switch k {
	case KindSTUN:
		return "stun"
	case KindDTLS:
		return "dtls"
	case KindRTP:
		return "rtp"
	case KindRTCP:
		return "rtcp"
	default:
		return "other"
	}
}

// Verdict is what a stage decides for one packet.
type Verdict uint8

const (
	// Continue hands the packet to the next stage; after the last one it is
	// forwarded to Packet.Sink.
	Continue Verdict = iota
	// Drop refuses the packet: it is not forwarded and is counted in the
	// receiving stream's Dropped (the stage counts its own reasons).
	Drop
	// Consume means the stage took the packet (answered it, or handed a
	// copy to work of its own): it is not forwarded and not counted as
	// dropped.
	Consume
)

// Stage is one step of per-packet work on a stream. A stream runs, for each
// datagram its party sends: the demultiplexer (which sets Packet.Kind), its
// Handlers, the source checks and endpoint learning, its Stages, the RTCP
// routing of rtcp-mux demultiplexing; then the sink's Egress stages, then the
// send. See the package documentation.
//
// Handle runs on the worker that owns the stream, for one packet at a time,
// and must not block, allocate in the steady state, or log: it counts.
type Stage interface {
	Handle(p *Packet) Verdict
	// Kernel reports whether the kernel fast path may forward the stream in
	// this stage's place: true only for a stage that does nothing to plain
	// RTP/RTCP which the kernel rule does not do as well. One stage saying
	// false keeps the stream (and, for an Egress stage, the streams sending
	// into it) in userspace.
	Kernel() bool
}

// Packet is one datagram on its way through a stream's stages.
type Packet struct {
	// Data is the datagram. A stage may rewrite it in place and change its
	// length up to cap(Data), which leaves room for an authentication tag.
	Data []byte
	// Source is where the datagram came from.
	Source netip.AddrPort
	Kind   Kind
	// Stream is the stream the datagram arrived on.
	Stream *Stream
	// Sink is the stream it will leave by (towards that stream's party);
	// nil drops it. The stream's configuration sets it; a stage may change
	// it (the RTCP routing does).
	Sink *Stream
	// NowNs is the arrival time of the datagram's batch, Unix nanoseconds
	// of the engine's clock.
	NowNs int64

	scope  uint32    // IPv6 scope id of Source
	monoNs int64     // monotonic arrival, for jitter
	now    time.Time // NowNs as a time, for the learning window
	w      *worker   // nil outside a worker (benchmarks, tests of stages)
}

// Reply sends b out of the receiving stream's own socket back to the
// packet's source, before the worker goes on: how a handler answers a STUN
// check. b may be the packet's own Data. A reply that cannot be sent is
// counted on the stream's Out errors.
func (p *Packet) Reply(b []byte) {
	if p.w == nil || p.Stream == nil {
		return
	}
	p.w.reply(p.Stream, b, p.Source, p.scope)
}

// Now is the arrival time of the packet's batch on the engine's clock.
func (p *Packet) Now() time.Time { return p.now }

// sourceCheck is the stage every stream runs between its Handlers and its
// Stages: the source checks and endpoint learning (see LearningMode), then
// the receive counters and RTP statistics of accepted packets. The kernel
// rule does the same check against the latched source, so it does not keep a
// stream out of the kernel.
type sourceCheck struct{}

func (sourceCheck) Kernel() bool { return true }

func (sourceCheck) Handle(p *Packet) Verdict {
	s := p.Stream
	rtcpType := isRTCPType(p.Data)
	st := s.state.Load()
	var ns *state
	var v verdict
	for {
		ns, v = st.next(p.Source, p.scope, !rtcpType || st.cfg.rtcp, p.now)
		if ns != st && !s.state.CompareAndSwap(st, ns) {
			st = s.state.Load() // a Configure won the race: judge again under it
			continue
		}
		break
	}
	if ns != st {
		s.learned(st, ns)
	}
	if v == reject {
		s.rejected.Add(1)
		return Drop
	}
	p.Sink = ns.cfg.sink
	s.in.add(len(p.Data), p.NowNs)
	if p.Kind == KindRTCP {
		s.readRTCP(p.Data, p.monoNs, p.NowNs, ns.cfg)
	}
	if p.Kind == KindRTP && !ns.cfg.rtcp {
		if h, ok := parseRTP(p.Data); ok {
			t := s.ssrcs.Load()
			if t == nil {
				t = new(ssrcTable)
				s.ssrcs.Store(t)
			}
			t.update(h, clockRate(ns.cfg.rates, h.pt), p.monoNs)
		}
	}
	return Continue
}

// rtcpRoute sends the RTCP that arrives on an rtcp-mux RTP port out of
// another stream (the other party's RTCP socket) when that party does not
// multiplex: rtcp-mux demultiplexing.
type rtcpRoute struct{ to *Stream }

func (rtcpRoute) Kernel() bool { return false }

func (r rtcpRoute) Handle(p *Packet) Verdict {
	if isRTCPType(p.Data) {
		p.Sink = r.to
	}
	return Continue
}

// pipeline is a stream's ordered ingress stages and whether all of them let
// the kernel forward in their place.
type pipeline struct {
	stages []Stage
	kernel bool
}

func buildPipeline(handlers, stages []Stage, rtcpSink *Stream) pipeline {
	all := make([]Stage, 0, len(handlers)+len(stages)+2)
	all = append(all, handlers...)
	all = append(all, sourceCheck{})
	all = append(all, stages...)
	if rtcpSink != nil {
		all = append(all, rtcpRoute{to: rtcpSink})
	}
	return pipeline{stages: all, kernel: allKernel(all)}
}

func allKernel(stages []Stage) bool {
	for _, st := range stages {
		if !st.Kernel() {
			return false
		}
	}
	return true
}

// run passes p through the stages in order.
func (pl *pipeline) run(p *Packet) Verdict {
	for _, st := range pl.stages {
		if v := st.Handle(p); v != Continue {
			return v
		}
	}
	return Continue
}

// runEgress passes p through the egress stages of the stream it leaves by.
func runEgress(stages []Stage, p *Packet) Verdict {
	for _, st := range stages {
		if v := st.Handle(p); v != Continue {
			return v
		}
	}
	return Continue
}
