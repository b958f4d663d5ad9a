// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/media"
)

// BridgeSide is one party of a transcoded stream and the relay's streams
// facing it.
type BridgeSide struct {
	// Leg is what this party speaks: Format (its Fmtp = what it declared it
	// receives), PT, PTime, Events, CN. The relay receives this from the
	// party and sends this to it.
	Leg Leg
	// RTP is the relay's stream facing this party: it receives its RTP and
	// sends RTP to it.
	RTP *media.Stream
	// RTCP is the stream carrying RTCP to and from it (nil or == RTP when
	// it multiplexes).
	RTCP *media.Stream
	// Bitrate is the encoder bit rate towards this party, bits/s (0: the
	// codec's default; Opus only).
	Bitrate int
}

// BridgeConfig describes one transcoded media stream between two parties.
type BridgeConfig struct {
	Sides [2]BridgeSide
	// DetectDTMF turns in-band digits heard in one party's audio into
	// telephone-events towards the other, when the other has
	// telephone-event and the speaking party has not (a party that
	// negotiated telephone-event sends its digits as events; detecting
	// its audio too would send each digit twice).
	DetectDTMF bool
	CallID     string // for logs
}

// Bridge transcodes one media stream between two parties, side 0 and side
// 1: what each sends is decoded and re-encoded for the other (a Transcoder
// per direction), and each gets RTCP from the relay about the stream it
// receives and the stream it sends (RTCP is never forwarded across: see
// rtcp.go).
//
// Its stages go in the media streams' StreamConfig.Stages; they hand the
// packets to the bridge's pool worker and consume them, and the worker sends
// the results with the other side's Stream.Deliver, through that stream's
// Egress stages (SRTP protection on a secure leg). Close, Stats and the
// stage accessors are safe from any goroutine.
type Bridge struct {
	p      *Pool
	w      *worker
	callID string
	closed atomic.Bool
	sides  [2]side
	rtpSt  [2]rtpStage
	rtcpSt [2]rtcpStage
	// work is the worker's state of the bridge; the worker drops it (nil)
	// when the bridge is closed, after copying the transcoders' counters
	// into final.
	work  atomic.Pointer[bridgeWork]
	final [2]Stats
}

// side is one party's fixed configuration and counters.
type side struct {
	rtp, rtcp *media.Stream
	codec     string // canonical "name/rate[/channels]"
	pt        uint8
	evPT      int16 // -1: no telephone-event
	cnPT      int16 // -1: no CN
	clock     int   // the audio RTP clock rate
	ssrcOut   uint32
	cname     string
	cnt       counters
	rep       partyReport
}

// partyReport is what the party's latest report block said about the
// relay's stream, written by the worker.
type partyReport struct {
	fraction atomic.Uint32
	cumLost  atomic.Int32
	jitter   atomic.Uint32
	rttNs    atomic.Int64
	at       atomic.Int64
}

// bridgeWork is the pool worker's state of a bridge.
type bridgeWork struct {
	tr    [2]*Transcoder // tr[s] transcodes what side s sends, for side 1-s
	rx    [2]rxStats     // what side s sends
	tx    [2]txStats     // what the relay sends side s
	sr    [2]partySR     // the latest SR side s sent
	timed [2]bool        // side s's report timer runs
}

// NewBridge builds both directions' transcoders (their SSRCs, first
// sequence numbers and timestamps from crypto/rand) and pins the bridge to
// the least busy worker. An error wraps ErrUnknownCodec or
// ErrCodecUnavailable naming the codec a build cannot run, ErrBadParams or
// ErrBadConfig for legs that do not fit together, ErrPoolClosed after
// Close.
func (p *Pool) NewBridge(cfg BridgeConfig) (*Bridge, error) {
	if p.closed.Load() {
		return nil, ErrPoolClosed
	}
	for i := range cfg.Sides {
		if cfg.Sides[i].RTP == nil {
			return nil, fmt.Errorf("%w: side %d has no RTP stream", ErrBadConfig, i)
		}
	}
	var rnd [2]struct {
		ssrc uint32
		seq  uint16
		ts   uint32
		cn   string
	}
	for i := range rnd {
		var r [22]byte
		_, _ = crand.Read(r[:])
		rnd[i].ssrc = binary.BigEndian.Uint32(r[0:])
		rnd[i].seq = binary.BigEndian.Uint16(r[4:])
		rnd[i].ts = binary.BigEndian.Uint32(r[6:])
		rnd[i].cn = base64.RawURLEncoding.EncodeToString(r[10:22])
	}
	if rnd[1].ssrc == rnd[0].ssrc {
		rnd[1].ssrc = ^rnd[0].ssrc
	}

	b := &Bridge{p: p, callID: cfg.CallID}
	wk := new(bridgeWork)
	now := p.nowNs()
	for s := range 2 {
		o := 1 - s
		in, out := &cfg.Sides[s], &cfg.Sides[o]
		tr, err := NewTranscoder(Config{
			In: in.Leg, Out: out.Leg,
			SSRC: rnd[o].ssrc, Seq: rnd[o].seq, TS: rnd[o].ts,
			Encoder:    EncoderOptions{Bitrate: out.Bitrate},
			DetectDTMF: cfg.DetectDTMF && out.Leg.Events != nil && in.Leg.Events == nil,
			Registry:   p.reg,
		})
		if err != nil {
			return nil, fmt.Errorf("side %d to side %d: %w", s, o, err)
		}
		wk.tr[s] = tr
	}
	for i := range 2 {
		c, err := p.reg.Lookup(cfg.Sides[i].Leg.Format)
		if err != nil { // NewTranscoder found it
			return nil, err
		}
		sc := &cfg.Sides[i]
		sd := &b.sides[i]
		sd.rtp, sd.rtcp = sc.RTP, sc.RTCP
		if sd.rtcp == nil {
			sd.rtcp = sd.rtp
		}
		sd.codec = Format{Name: c.Name, ClockRate: c.ClockRate, Channels: c.Channels}.String()
		sd.pt, sd.evPT, sd.cnPT = sc.Leg.PT, -1, -1
		if sc.Leg.Events != nil {
			sd.evPT = int16(sc.Leg.Events.PT)
		}
		if sc.Leg.CN != nil {
			sd.cnPT = int16(sc.Leg.CN.PT)
		}
		sd.clock = c.ClockRate
		sd.ssrcOut = rnd[i].ssrc
		sd.cname = rnd[i].cn
		wk.tx[i] = txStats{ssrc: rnd[i].ssrc, clock: c.ClockRate, lastTS: rnd[i].ts, lastNs: now}
		b.rtpSt[i] = rtpStage{b: b, side: uint8(i)}
		b.rtcpSt[i] = rtcpStage{b: b, side: uint8(i)}
	}

	w := p.pick()
	w.q.alloc(p.qlen)
	b.w = w
	b.work.Store(wk)
	w.bridges.Add(1)
	p.open.Add(1)
	p.created.Add(1)
	p.log.Debug("transcoding bridge", "call-id", cfg.CallID, "worker", w.id,
		"side0", b.sides[0].codec, "side1", b.sides[1].codec,
		"detect-dtmf", cfg.DetectDTMF)
	return b, nil
}

// RTPStage goes in StreamConfig.Stages of the stream facing that side's
// party. It takes the party's RTP to the bridge (and its RTCP, when it
// arrives there: rtcp-mux) and consumes it; it drops what is neither
// (counted as NotMedia: nothing unknown crosses a transcoder) and lets STUN
// and DTLS go on.
func (b *Bridge) RTPStage(side int) media.Stage { return &b.rtpSt[side] }

// RTCPStage goes in StreamConfig.Stages of that side's RTCP stream (not
// needed when RTCP == RTP: RTPStage then handles RTCP too). It takes the
// party's RTCP to the bridge and drops anything else but STUN and DTLS.
func (b *Bridge) RTCPStage(side int) media.Stage { return &b.rtcpSt[side] }

// Close ends the bridge: from its return the stages drop every packet, and
// the worker drops the bridge's codecs and state when it next runs. It never
// waits for the worker. Idempotent.
func (b *Bridge) Close() {
	if !b.closed.CompareAndSwap(false, true) {
		return
	}
	b.p.open.Add(-1)
	b.w.bridges.Add(-1)
	b.w.request(&op{b: b})
	b.p.log.Debug("transcoding bridge closed", "call-id", b.callID)
}

// drop frees the worker's state of a closed bridge; the worker's call.
func (b *Bridge) drop() {
	wk := b.work.Load()
	if wk == nil {
		return
	}
	for i, tr := range wk.tr {
		b.final[i] = tr.Stats()
	}
	b.work.Store(nil)
}

// BridgeStats are a bridge's counters, per side, for the ng query.
type BridgeStats struct {
	CallID string
	Closed bool
	Sides  [2]SideStats
}

// SideStats are one party's view of a bridge: what it sent the relay and
// what the relay sent it.
type SideStats struct {
	// CodecReceived is the codec of what the party sends, CodecSent of
	// what the relay sends it, as "name/rate[/channels]" ("opus/48000/2",
	// "PCMU/8000"): both its Leg's.
	CodecReceived string
	CodecSent     string

	In        uint64 // RTP packets from the party transcoded
	Out       uint64 // RTP packets sent to the party
	Lost      uint64 // packets of the party's stream that never came
	Concealed uint64 // gaps in the party's stream filled (PLC, Opus FEC)
	// Events are the party's DTMF digits: telephone-events translated,
	// played as tones, or detected in its audio.
	Events  uint64
	RTCPIn  uint64 // RTCP packets from the party (never forwarded)
	RTCPOut uint64 // RTCP packets the relay sent it
	// Errors are the party's packets refused or dropped, encoder failures
	// on the audio for it, and packets for it the media plane refused.
	Errors ErrorCounts
	// Transcoder is every counter of the direction from this party.
	Transcoder Stats
	// Report is what the party's RTCP said about the stream the relay
	// sends it; zero before its first report block.
	Report PartyReport
}

// PartyReport is a party's latest RTCP report block about the relay's
// stream.
type PartyReport struct {
	FractionLost   float64 // 0..1
	CumulativeLost int32
	JitterMs       float64
	RTTMs          float64 // the party's leg's round trip; 0 when unknown
	At             time.Time
}

// Stats returns the bridge's counters; safe from any goroutine, also after
// Close.
func (b *Bridge) Stats() BridgeStats {
	st := BridgeStats{CallID: b.callID, Closed: b.closed.Load()}
	var trs [2]Stats
	if wk := b.work.Load(); wk != nil {
		for i, tr := range wk.tr {
			trs[i] = tr.Stats()
		}
	} else {
		trs = b.final
	}
	for i := range st.Sides {
		sd := &b.sides[i]
		t := trs[i]
		ss := SideStats{
			CodecReceived: sd.codec, CodecSent: sd.codec,
			In: sd.cnt[kIn].Load(), Out: sd.cnt[kOut].Load(),
			Lost: t.Lost, Concealed: t.Concealed + t.Recovered,
			Events:  t.Events + t.Tones + t.Detected,
			RTCPIn:  sd.cnt[kRTCPIn].Load(),
			RTCPOut: sd.cnt[kRTCPOut].Load(),
			Errors:  sd.cnt.errors(),
			// The transcoder's own refusals are counted by the worker
			// (Errors.NotRTP...); its encoder's failures only by it.
			Transcoder: t,
		}
		ss.Errors.EncodeErrors = trs[1-i].EncodeErrors
		if at := sd.rep.at.Load(); at != 0 {
			ss.Report = PartyReport{
				FractionLost:   float64(sd.rep.fraction.Load()) / 256,
				CumulativeLost: sd.rep.cumLost.Load(),
				JitterMs:       float64(sd.rep.jitter.Load()) * 1000 / float64(sd.clock),
				RTTMs:          float64(sd.rep.rttNs.Load()) / 1e6,
				At:             time.Unix(0, at),
			}
		}
		st.Sides[i] = ss
	}
	return st
}

// classify tells a payload type of the party: known (negotiated on its
// leg) and audio (its timestamps are sampling instants of the audio clock).
func (sd *side) classify(pt uint8) (audio, known bool) {
	if pt == sd.pt {
		return true, true
	}
	return false, int16(pt) == sd.evPT || int16(pt) == sd.cnPT
}

// timed reports whether a packet of payload type pt sent to the party
// carries a sampling instant (audio, CN), not an event's start.
func (sd *side) timed(pt uint8) bool { return pt == sd.pt || int16(pt) == sd.cnPT }

// rtpStage is RTPStage: one side's RTP stream.
type rtpStage struct {
	b    *Bridge
	side uint8
}

// Kernel is false: the kernel cannot transcode.
func (*rtpStage) Kernel() bool { return false }

func (s *rtpStage) Handle(p *media.Packet) media.Verdict {
	switch p.Kind {
	case media.KindRTP:
		return s.b.enqueue(s.side, itemRTP, p)
	case media.KindRTCP:
		return s.b.enqueue(s.side, itemRTCP, p)
	case media.KindOther:
		return s.b.refuse(s.side)
	}
	return media.Continue
}

// rtcpStage is RTCPStage: one side's RTCP stream.
type rtcpStage struct {
	b    *Bridge
	side uint8
}

// Kernel is false: RTCP across a transcoder is the bridge's own.
func (*rtcpStage) Kernel() bool { return false }

func (s *rtcpStage) Handle(p *media.Packet) media.Verdict {
	switch p.Kind {
	case media.KindRTCP:
		return s.b.enqueue(s.side, itemRTCP, p)
	case media.KindRTP, media.KindOther:
		return s.b.refuse(s.side)
	}
	return media.Continue
}

// enqueue copies a packet into the worker's queue; on the media worker.
func (b *Bridge) enqueue(sd uint8, kind uint8, p *media.Packet) media.Verdict {
	if b.closed.Load() || b.p.closed.Load() {
		return media.Drop // counted by the stream
	}
	w := b.w
	if len(p.Data) > slotSize {
		b.sides[sd].cnt[kOversize].Add(1)
		w.cnt[kOversize].Add(1)
		return media.Drop
	}
	at := p.NowNs
	if kind == itemRTCP || at == 0 {
		at = b.p.nowNs() // LSR/DLSR are on the pool's clock
	}
	if !w.q.put(b, sd, kind, at, p.Data) {
		b.sides[sd].cnt[kQueueFull].Add(1)
		w.cnt[kQueueFull].Add(1)
		return media.Drop
	}
	w.signal()
	return media.Consume
}

func (b *Bridge) refuse(sd uint8) media.Verdict {
	if !b.closed.Load() {
		b.sides[sd].cnt[kNotMedia].Add(1)
		b.w.cnt[kNotMedia].Add(1)
	}
	return media.Drop
}

// rtp transcodes one packet side s sent and delivers the result to the
// other side; on the pool worker.
func (w *worker) rtp(b *Bridge, wk *bridgeWork, s int, data []byte, at int64) {
	from, to := &b.sides[s], &b.sides[1-s]
	w.cnt[kIn].Add(1)
	from.cnt[kIn].Add(1)
	if h, ok := parseRTP(data); ok {
		if audio, known := from.classify(h.pt); known {
			wk.rx[s].update(h, at, from.clock, audio)
			w.startReports(b, wk, s)
		}
	}
	out, err := wk.tr[s].Process(data, w.out[:0])
	if err != nil {
		r := reasonOf(err)
		w.cnt[r].Add(1)
		from.cnt[r].Add(1)
	}
	if len(out) > 0 {
		now := w.p.nowNs()
		tx := &wk.tx[1-s]
		sent := false
		for _, pkt := range out {
			if !to.rtp.Deliver(pkt) {
				w.cnt[kDeliverFailed].Add(1)
				to.cnt[kDeliverFailed].Add(1)
				continue
			}
			w.cnt[kOut].Add(1)
			to.cnt[kOut].Add(1)
			tx.sent(pkt, now, to.timed(pkt[1]&0x7f))
			sent = true
		}
		if sent {
			w.startReports(b, wk, 1-s)
		}
	}
	w.out = out[:0]
}

// startReports starts side s's RTCP once there is media to report on.
func (w *worker) startReports(b *Bridge, wk *bridgeWork, s int) {
	if wk.timed[s] {
		return
	}
	wk.timed[s] = true
	w.timers.push(timer{due: w.p.nowNs() + w.jittered(rtcpFirst), b: b, side: uint8(s)})
}

// rtcpIn reads an RTCP packet side s sent; it goes no further.
func (w *worker) rtcpIn(b *Bridge, wk *bridgeWork, s int, data []byte, at int64) {
	sd := &b.sides[s]
	w.cnt[kRTCPIn].Add(1)
	sd.cnt[kRTCPIn].Add(1)
	in, ok := parseRTCP(data, sd.ssrcOut)
	if !ok {
		w.cnt[kBadRTCP].Add(1)
		sd.cnt[kBadRTCP].Add(1)
	}
	if in.sr {
		wk.sr[s] = partySR{ssrc: in.srSSRC, mid: in.ntpMid, at: at}
	}
	if in.report {
		sd.rep.fraction.Store(uint32(in.fraction))
		sd.rep.cumLost.Store(in.cumLost)
		sd.rep.jitter.Store(in.jitter)
		if rtt := wk.tx[s].rtt(in.lsr, in.dlsr, at); rtt > 0 {
			sd.rep.rttNs.Store(rtt)
		}
		sd.rep.at.Store(at)
	}
}

// report sends side s its compound RTCP packet.
func (w *worker) report(b *Bridge, wk *bridgeWork, s int, now int64) {
	sd := &b.sides[s]
	n := rtcpReport(w.rtcp, &wk.tx[s], &wk.rx[s], &wk.sr[s], sd.cname, now)
	if sd.rtcp.Deliver(w.rtcp[:n]) {
		w.cnt[kRTCPOut].Add(1)
		sd.cnt[kRTCPOut].Add(1)
	} else {
		w.cnt[kDeliverFailed].Add(1)
		sd.cnt[kDeliverFailed].Add(1)
	}
}
