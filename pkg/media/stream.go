// SPDX-License-Identifier: Apache-2.0

package media

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// batchWriter is the sendmmsg side of ipv4.PacketConn and ipv6.PacketConn (both
// take the same socket.Message type).
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// Stream is one local socket facing one party. Its methods are safe for
// concurrent use.
type Stream struct {
	// First, so that 64-bit atomics are aligned on 32-bit platforms too.
	in, out  rawCounters
	dropped  atomic.Uint64
	rejected atomic.Uint64

	eng   *Engine
	w     *worker
	id    uint64
	rc    syscall.RawConn
	bw    batchWriter
	local netip.AddrPort
	ipv6  bool // AF_INET6 socket

	state      atomic.Pointer[state]
	detached   atomic.Bool
	detachOnce sync.Once

	// ssrcs is created by the worker on the first RTP packet, so RTCP ports and
	// idle streams carry no per-SSRC memory.
	ssrcs atomic.Pointer[ssrcTable]

	tos atomic.Int32 // egress DSCP/TOS byte, -1 until SetTOS

	// Fast path: whether a kernel rule forwards this stream's packets, and the
	// stream whose kernel rule sends into this one (for its Out counters).
	kernel atomic.Bool
	feeder atomic.Pointer[Stream]
	// On the offloader's queue; dirtyNext links it there.
	queued    atomic.Bool
	dirtyNext *Stream
	// Guarded by the offloader's lock. kernelRule is the rule last handed
	// to the fast path: installed while kernel is set, refused while a
	// retry is planned.
	kernelRule       OffloadRule
	kernelSink       *Stream
	offloadErrLogged bool
	offloadRefused   bool // the fast path refused kernelRule for good (ErrNoKernelPath)
	// sinkOf is the sink s is recorded under, sources the streams whose sink
	// s is: a change on s must re-sync their rules, which carry s's side.
	sinkOf  *Stream
	sources []*Stream
	// Backoff of a failed Offload; retryIdx is s's place in the offloader's
	// retry heap, -1 when no retry is planned.
	retryAt    time.Time
	retryDelay time.Duration
	retryIdx   int
}

func newStream(local netip.AddrPort) *Stream {
	s := &Stream{local: local, ipv6: local.Addr().Is6() && !local.Addr().Is4In6()}
	s.state.Store(&state{cfg: &streamConfig{}})
	s.tos.Store(-1)
	s.retryIdx = -1
	return s
}

// LocalAddr is the address and port the socket is bound to.
func (s *Stream) LocalAddr() netip.AddrPort { return s.local }

// Configure installs what a signalling event says about this stream and
// restarts endpoint learning (a new window from now). Call it on every offer
// and answer.
func (s *Stream) Configure(c StreamConfig) {
	window := defaultLearningWindow
	if s.eng != nil {
		window = s.eng.window
	}
	now := time.Now()
	swap := func() {
		for {
			prev := s.state.Load()
			if s.state.CompareAndSwap(prev, newConfigState(prev, c, window, now, !s.ipv6)) {
				break
			}
		}
	}
	if o := s.off(); o != nil {
		o.reconfigure(s, swap)
	} else {
		swap()
	}
	if s.eng != nil && s.eng.log.Enabled(context.Background(), slog.LevelDebug) {
		var sink netip.AddrPort
		if c.Sink != nil {
			sink = c.Sink.local
		}
		s.eng.log.Debug("stream configured", "local", s.local, "peer", c.Peer, "sink", sink,
			"learning", c.Learning, "strict", c.StrictSource, "asymmetric", c.Asymmetric,
			"handover", c.MediaHandover, "rtcp", c.RTCP)
	}
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
	if st.destUDP != nil {
		out.Endpoint = st.dest
	}
	out.Kernel = s.kernelCounts(&out.In, &out.Out, &out.KernelIn)
	if t := s.ssrcs.Load(); t != nil {
		out.SSRCs = t.snapshot()
	}
	return out
}

// receive is the per-packet path for one datagram received on s from src:
// source checks and learning, counters, RTP statistics. It returns the socket
// to send from and the destination, or a nil sink to drop. It never allocates
// unless the learning state changes.
func (s *Stream) receive(pkt []byte, src netip.AddrPort, scope uint32, nowNs, monoNs int64, now time.Time) (*Stream, *net.UDPAddr) {
	rtcpType := isRTCPType(pkt)
	st := s.state.Load()
	for {
		ns, v := st.next(src, scope, !rtcpType || st.cfg.rtcp, now)
		if ns != st && !s.state.CompareAndSwap(st, ns) {
			st = s.state.Load() // a Configure won the race: judge again under it
			continue
		}
		if o := s.off(); o != nil && ns != st {
			switch {
			case st.latched && ns.latched && (ns.src != st.src || ns.dest != st.dest):
				o.follow(s) // media-handover: rules follow before this packet leaves
			case ns.latched != st.latched || ns.destUDP != st.destUDP:
				// A latched stream may go to the kernel now; a destination
				// learned before the latch moves the rules sending into s.
				o.queue(s)
			}
		}
		if v == reject {
			s.rejected.Add(1)
			s.dropped.Add(1)
			return nil, nil
		}
		st = ns
		break
	}
	s.in.add(len(pkt), nowNs)
	if !rtcpType && !st.cfg.rtcp {
		if h, ok := parseRTP(pkt); ok {
			t := s.ssrcs.Load()
			if t == nil {
				t = new(ssrcTable)
				s.ssrcs.Store(t)
			}
			t.update(h, clockRate(st.cfg.rates, h.pt), monoNs)
		}
	}
	sink := st.cfg.sink
	if rtcpType && st.cfg.rtcpSink != nil {
		sink = st.cfg.rtcpSink
	}
	if sink == nil || sink.detached.Load() {
		s.dropped.Add(1)
		return nil, nil
	}
	dst := sink.state.Load().destUDP
	if dst == nil {
		s.dropped.Add(1)
		return nil, nil
	}
	return sink, dst
}
