// SPDX-License-Identifier: Apache-2.0

package media

// Reconfigure installs c like Configure, for a change that is not an offer or
// answer: when c leaves the stream's sink, peer and learning rules as they
// are and only its stages differ (a recording tap added or removed), the
// stream keeps what endpoint learning knows — the latched source, the
// destination and the learning window — so no packet is judged anew and
// nobody gets a learning window to take the stream over. Otherwise it is
// Configure.
//
// The kernel fast path follows as after Configure: a stream whose new stages
// keep it in userspace leaves the kernel at the offloader's next pass, and a
// latched stream whose stages all allow the kernel again goes back at once,
// without waiting for a packet to latch it.
func (s *Stream) Reconfigure(c StreamConfig) {
	window := defaultLearningWindow
	if s.eng != nil {
		window = s.eng.window
	}
	now := s.clock()
	for {
		prev := s.state.Load()
		ns := newConfigState(prev, c, window, now, !s.ipv6)
		if sameRules(prev.cfg, ns.cfg) {
			ns.cfg.windowEnd = prev.cfg.windowEnd
			ns.dest, ns.destSA = prev.dest, prev.destSA
			ns.src, ns.rank, ns.latched = prev.src, prev.rank, prev.latched
		}
		if s.state.CompareAndSwap(prev, ns) {
			break
		}
	}
	if o := s.offloader(); o != nil {
		o.queue(s)
	}
}

// sameRules reports whether two configurations forward to the same place
// under the same learning and source rules (their stages aside).
func sameRules(a, b *streamConfig) bool {
	return a.configured && b.configured && a.sink == b.sink && a.peer == b.peer && a.mode == b.mode &&
		a.strict == b.strict && a.asym == b.asym && a.handover == b.handover && a.rtcp == b.rtcp &&
		a.v6Socket == b.v6Socket
}
