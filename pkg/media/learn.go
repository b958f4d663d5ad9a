// SPDX-License-Identifier: Apache-2.0

package media

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// LearningMode is how a stream learns where its party really sends from
// (rtpengine's endpoint-learning).
type LearningMode uint8

const (
	// Heuristic ranks the sources seen during the learning window: exact SDP
	// address and port > same address > same port > anything. An exact match
	// latches at once; otherwise the first packet after the window latches the
	// best candidate.
	Heuristic LearningMode = iota
	// Delayed lets the latest source win during the window; the first packet
	// after the window latches it.
	Delayed
	// Immediate latches the first source.
	Immediate
	// Off never learns: packets go to the SDP endpoint.
	Off
)

func (m LearningMode) String() string {
	switch m {
	case Heuristic:
		return "heuristic"
	case Delayed:
		return "delayed"
	case Immediate:
		return "immediate"
	case Off:
		return "off"
	}
	return "LearningMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseLearningMode reads the ng protocol's endpoint-learning values
// ("heuristic", "delayed", "immediate", "off"); "" is Heuristic.
func ParseLearningMode(s string) (LearningMode, error) {
	switch s {
	case "", "heuristic":
		return Heuristic, nil
	case "delayed":
		return Delayed, nil
	case "immediate":
		return Immediate, nil
	case "off":
		return Off, nil
	}
	return Heuristic, fmt.Errorf("%q: %w", s, ErrUnknownLearningMode)
}

// StreamConfig is what one signalling event says about a stream.
type StreamConfig struct {
	// Sink is where packets received here are forwarded; nil drops (and counts).
	Sink *Stream
	// Peer is the party's endpoint from SDP (or received-from / media-address).
	// A zero or unspecified address (hold with 0.0.0.0) or port 0 means nothing
	// to send to until a source is learned.
	Peer netip.AddrPort
	// RTCPSink, when set, receives the RTCP packets (by packet type) that
	// arrive on this RTP port — rtcp-mux towards a party that does not
	// multiplex: its RTCP must leave by the other side's RTCP socket.
	RTCPSink     *Stream
	Learning     LearningMode // unknown values act as Heuristic
	StrictSource bool         // drop sources worse than the best/latched one
	Asymmetric   bool         // never send to a learned source, only to Peer
	// MediaHandover lets a new source take over a latched stream at once.
	MediaHandover bool
	// RTCP marks a non-mux RTCP port; on any other port RTCP never latches.
	RTCP bool
	// ClockRates maps RTP payload types to clock rates (from a=rtpmap) for
	// jitter; static payload types default to RFC 3551.
	ClockRates map[uint8]uint32

	// Handlers run first on every datagram from the party, before the
	// source checks: stages that answer on the stream's own socket or
	// authenticate packets themselves (STUN, DTLS, SRTP authentication).
	Handlers []Stage
	// Stages run after the source checks on accepted datagrams, in order:
	// transforms that rewrite the payload (SRTP, transcoding) and taps that
	// copy it (recording).
	Stages []Stage
	// Egress run on every datagram leaving this stream's socket towards its
	// party, after the sending stream's stages (SRTP protection).
	Egress []Stage
}

// Source ranks of the heuristic mode.
const (
	rankNone     uint8 = iota
	rankAny            // neither address nor port match the SDP
	rankSamePort       // same port, other address
	rankSameAddr       // same address, other port
	rankExact          // the SDP endpoint
)

// streamConfig is one Configure's immutable view.
type streamConfig struct {
	configured bool
	sink       *Stream
	rtcpSink   *Stream        // nil: RTCP follows sink
	peer       netip.AddrPort // address unmapped, zone dropped
	mode       LearningMode
	strict     bool
	asym       bool
	handover   bool
	rtcp       bool
	rates      []ptRate // from ClockRates; a handful, scanned per packet
	windowEnd  time.Time
	v6Socket   bool // the stream's socket is AF_INET6: IPv4 peers are v4-mapped
	ingress    pipeline
	egress     []Stage
	egressOK   bool // every Egress stage lets the kernel forward into this stream
}

// state is a stream's forwarding rule: replaced, never mutated, so that readers
// on other goroutines (the opposite direction's forwarding, Stats, a kernel
// fast-path sync) always see one consistent value. dest/destSA are where the
// party's packets go; src/rank/latched are the source checks (what an XDP rule
// would carry as the expected source).
type state struct {
	cfg      *streamConfig
	dest     netip.AddrPort
	destSA   *rawAddr // the kernel's sockaddr form of dest, built once per endpoint change; nil: nowhere to send
	src      netip.AddrPort
	srcScope uint32 // the IPv6 scope src arrived with
	rank     uint8
	latched  bool
	// proven is a source latched before this Configure, with the same
	// signalled endpoint (a re-INVITE): it stays trusted while learning
	// runs again, so a party behind NAT has no gap.
	proven netip.AddrPort
	// checked are the latest sources a handler authenticated without
	// latching them (ICE checks of pairs other than the nominated one):
	// their packets are accepted, but nothing is sent to them. An ICE
	// agent may move its media to another valid pair before it nominates
	// that pair, and the packets in between are the party's. A ring, so
	// that a state copy stays flat and needs no allocation.
	checked  [maxChecked]netip.AddrPort
	nChecked uint8 // the next slot of checked to overwrite
}

// maxChecked bounds the authenticated sources a stream accepts besides the
// latched one: a browser checks a handful of pairs per component.
const maxChecked = 4

// isChecked reports whether a handler authenticated src (Stream.Accept).
func (st *state) isChecked(src netip.AddrPort) bool {
	for _, c := range st.checked {
		if c.IsValid() && sameEndpoint(c, src) {
			return true
		}
	}
	return false
}

// check returns st with src among its checked sources.
func (st *state) check(src netip.AddrPort) *state {
	if st.isChecked(src) {
		return st
	}
	ns := st.clone()
	ns.checked[ns.nChecked%maxChecked] = src
	ns.nChecked = (ns.nChecked + 1) % maxChecked
	return ns
}

// verdict is the source check's answer for one packet.
type verdict uint8

const (
	accept verdict = iota
	reject
)

func plainAddr(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func sameEndpoint(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && plainAddr(a.Addr()) == plainAddr(b.Addr())
}

// usable reports whether packets can be sent to ap.
func usable(ap netip.AddrPort) bool {
	return ap.Addr().IsValid() && !ap.Addr().IsUnspecified() && ap.Port() != 0
}

func rankOf(src, peer netip.AddrPort) uint8 {
	sa, pa := plainAddr(src.Addr()), plainAddr(peer.Addr())
	sameAddr := pa.IsValid() && !pa.IsUnspecified() && sa == pa
	samePort := peer.Port() != 0 && src.Port() == peer.Port()
	switch {
	case sameAddr && samePort:
		return rankExact
	case sameAddr:
		return rankSameAddr
	case samePort:
		return rankSamePort
	}
	return rankAny
}

// newConfigState builds the state a Configure installs over prev. If the SDP
// endpoint did not change and a learned destination exists, packets keep going
// there while learning restarts, so a re-INVITE behind NAT causes no gap.
// v4Socket marks an AF_INET socket, which cannot send to an IPv6 peer.
func newConfigState(prev *state, c StreamConfig, window time.Duration, now time.Time, v4Socket bool) *state {
	cfg := &streamConfig{
		configured: true,
		sink:       c.Sink,
		rtcpSink:   c.RTCPSink,
		peer:       netip.AddrPortFrom(plainAddr(c.Peer.Addr()), c.Peer.Port()),
		mode:       c.Learning,
		strict:     c.StrictSource,
		asym:       c.Asymmetric,
		handover:   c.MediaHandover,
		rtcp:       c.RTCP,
		windowEnd:  now.Add(window),
		v6Socket:   !v4Socket,
		ingress:    buildPipeline(c.Handlers, c.Stages, c.RTCPSink),
		egress:     c.Egress,
		egressOK:   allKernel(c.Egress),
	}
	if cfg.mode > Off {
		cfg.mode = Heuristic
	}
	if len(c.ClockRates) > 0 {
		cfg.rates = make([]ptRate, 0, len(c.ClockRates))
		for pt, r := range c.ClockRates {
			cfg.rates = append(cfg.rates, ptRate{pt, r})
		}
	}
	ns := &state{cfg: cfg}
	keep := prev != nil && prev.cfg.configured && prev.cfg.peer == cfg.peer &&
		usable(prev.dest) && !cfg.asym && cfg.mode != Off
	if keep {
		ns.dest, ns.destSA = prev.dest, prev.destSA
	} else if usable(cfg.peer) && (!v4Socket || cfg.peer.Addr().Is4()) {
		ns.setDest(c.Peer, 0)
	}
	if prev != nil && prev.cfg.configured && prev.cfg.peer == cfg.peer && cfg.mode != Off {
		switch {
		case prev.latched:
			ns.proven = prev.src
		case prev.proven.IsValid():
			ns.proven = prev.proven // a re-INVITE inside the window
		}
	}
	return ns
}

// signalled tells whether src's address is one the signalling named: the
// SDP (or received-from, media-address) address, any port — or any address
// at all when the signalling named none (hold, 0.0.0.0), or a source proven
// before a re-INVITE. Until a source has proven itself by the learning rules
// nothing is forwarded from or sent to any other address: an attacker who
// sends first is neither relayed nor answered.
func (st *state) signalled(src netip.AddrPort) bool {
	peer := st.cfg.peer.Addr()
	if !peer.IsValid() || peer.IsUnspecified() {
		return true
	}
	return plainAddr(src.Addr()) == peer || (st.proven.IsValid() && sameEndpoint(src, st.proven))
}

func (st *state) clone() *state {
	ns := *st
	return &ns
}

// setDest points the party's packets at ap; scope is the IPv6 scope id a
// link-local source arrived with.
func (st *state) setDest(ap netip.AddrPort, scope uint32) {
	if st.dest == ap && st.destSA != nil {
		return
	}
	st.dest = ap
	st.destSA = nil
	if !usable(ap) {
		return
	}
	st.destSA = encodeAddr(ap, scope, st.cfg.v6Socket)
}

// learn makes src the best candidate (or the latched source). A candidate
// from an address the signalling did not name is only noted: packets keep
// going where they went until it latches.
func (st *state) learn(src netip.AddrPort, scope uint32, rank uint8, latched bool) *state {
	if st.src == src && st.rank == rank && st.latched == latched {
		return st
	}
	ns := st.clone()
	ns.src, ns.srcScope, ns.rank, ns.latched = src, scope, rank, latched
	if !ns.cfg.asym && (latched || st.signalled(src)) {
		ns.setDest(src, scope)
	}
	return ns
}

// latchCandidate latches the best candidate, as the window closes.
func (st *state) latchCandidate() *state { return st.learn(st.src, st.srcScope, st.rank, true) }

// judge is the verdict for a packet that latched nothing: forwarded only if
// its address is one the signalling named.
func (st *state) judge(src netip.AddrPort) verdict {
	if st.signalled(src) || st.isChecked(src) {
		return accept
	}
	return reject
}

// next applies the learning and source rules to one packet from src that
// arrived at now. canLatch is false for stray RTCP on an RTP port, which may be
// forwarded but must never confirm a source. It returns the state to install
// (st itself when nothing changed, so the steady state allocates nothing).
func (st *state) next(src netip.AddrPort, scope uint32, canLatch bool, now time.Time) (*state, verdict) {
	cfg := st.cfg
	if !cfg.configured {
		return st, accept // counted and dropped: no sink yet
	}
	if cfg.mode == Off {
		// Nothing is ever learned, so nothing from another address is
		// ever proven.
		if (cfg.strict && !sameEndpoint(src, cfg.peer)) || !st.signalled(src) {
			return st, reject
		}
		if !st.latched && canLatch {
			// Nothing to learn; record that the fixed rule is now in use.
			ns := st.clone()
			ns.latched = true
			return ns, accept
		}
		return st, accept
	}
	if st.latched {
		if sameEndpoint(src, st.src) || st.isChecked(src) {
			return st, accept
		}
		if cfg.handover && canLatch {
			return st.learn(src, scope, rankOf(src, cfg.peer), true), accept
		}
		return st, reject
	}
	r := rankOf(src, cfg.peer)
	have := st.src.IsValid()
	// strict-source: until a source latches, only the signalled address may be
	// forwarded or learned (the reference's post-CVE-2025-53399 rule). A party
	// behind NAT is then expected through SIP-source-address or media-address.
	// Once the window is over, a refused packet still latches the best
	// candidate, so that refusals cannot stretch learning out.
	if cfg.strict && r < rankSameAddr {
		if have && canLatch && !now.Before(cfg.windowEnd) {
			return st.latchCandidate(), reject
		}
		return st, reject
	}
	if cfg.mode == Immediate {
		if !canLatch {
			return st, st.judge(src)
		}
		return st.learn(src, scope, r, true), accept // the first packet proves itself
	}
	if now.Before(cfg.windowEnd) {
		// Inside the window a source from an address the signalling did not
		// name is a candidate only: it is neither forwarded nor sent to
		// until it latches when the window closes.
		if !canLatch {
			if cfg.strict && cfg.mode == Heuristic && have && r < st.rank {
				return st, reject
			}
			return st, st.judge(src)
		}
		if cfg.mode == Delayed {
			return st.learn(src, scope, r, false), st.judge(src)
		}
		switch {
		case r == rankExact:
			return st.learn(src, scope, r, true), accept
		case !have || r > st.rank:
			return st.learn(src, scope, r, false), st.judge(src)
		case sameEndpoint(src, st.src):
			return st, st.judge(src)
		case cfg.strict && r < st.rank:
			return st, reject
		}
		return st, st.judge(src)
	}
	// After the window: the first packet latches the best candidate, or itself
	// if nobody sent during the window.
	if !canLatch {
		if cfg.strict && have && !sameEndpoint(src, st.src) {
			return st, reject
		}
		return st, st.judge(src)
	}
	if !have {
		return st.learn(src, scope, r, true), accept
	}
	ns := st.latchCandidate()
	if sameEndpoint(src, ns.src) {
		return ns, accept
	}
	if cfg.handover {
		return ns.learn(src, scope, r, true), accept
	}
	return ns, reject
}
