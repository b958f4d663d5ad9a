// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"fmt"
	"sync/atomic"
)

// Leg is one side of a transcoded stream as SDP negotiated it.
type Leg struct {
	// Format is the audio codec. For the output leg, Fmtp is what the far
	// side declared it receives (Opus: useinbandfec, usedtx,
	// maxaveragebitrate, maxplaybackrate), which the encoder honours.
	Format Format
	// PT is the audio payload type on this leg.
	PT uint8
	// PTime is the packet duration, in ms, sent towards this leg when it is
	// the output (0: 20 ms). An input leg's packets may have any duration.
	PTime int
	// Events is the leg's telephone-event format, nil when it has none.
	Events *EventFormat
	// CN is the leg's RFC 3389 comfort-noise format, nil when it has none.
	CN *CNFormat
}

// EventFormat is a leg's telephone-event (RFC 4733).
type EventFormat struct {
	PT        uint8
	ClockRate int    // 0: the leg's audio clock rate
	Fmtp      string // the event list; "" means 0-15
}

// CNFormat is a leg's comfort-noise payload type (RFC 3389, usually 13).
type CNFormat struct {
	PT uint8
}

// Config describes one direction of a transcoded stream: packets arrive in
// In's codec and leave in Out's.
type Config struct {
	In, Out Leg
	// SSRC, Seq and TS start the produced RTP stream: its own SSRC and
	// random initial sequence number and timestamp (RFC 3550 §5.1), chosen
	// by the caller so this package holds no random source.
	SSRC uint32
	Seq  uint16
	TS   uint32
	// Encoder tunes the output encoder (Opus bit rate, complexity).
	Encoder EncoderOptions
	// DetectDTMF runs the in-band DTMF detector on the input audio and sends
	// the digits it hears as telephone-events (Out.Events is required). The
	// audio itself still passes.
	DetectDTMF bool
	// NoInbandDTMF drops telephone-events the output leg cannot carry
	// instead of playing them into the audio as tones.
	NoInbandDTMF bool
	// Registry resolves the formats; nil uses NewRegistry().
	Registry *Registry
}

// Transcoder turns the RTP packets of one stream direction from one codec
// into another: its own SSRC and sequence numbers, timestamps rescaled
// between the two clocks, markers kept, packets re-cut when the ptimes
// differ, losses concealed, telephone-events translated (or played as tones),
// comfort noise and DTX carried across.
//
// All its state belongs to one goroutine: Process is not safe for concurrent
// use (Stats is). After construction it allocates nothing per packet.
//
// # Timing
//
// The transcoder keeps a map from the input timeline to the output one:
// audio contiguous in input timestamps stays contiguous in output
// timestamps, and a gap (silence suppression, DTX, a paused sender) maps to a
// gap of the same duration, so receivers' jitter buffers see the sender's
// timing. A gap that follows lost packets (a sequence gap, or a packet that
// did not decode) and is at most 120 ms is concealed instead: Opus decodes
// the next packet's in-band FEC when it has one and conceals the rest with
// its PLC; G.711 and G.722 repeat the last pitch period, fading out. When the
// output is cut at a discontinuity (the end of a talkspurt before a gap,
// a new SSRC) a partly filled packet is padded with silence and sent. A new
// input SSRC, a sequence jump of more than 3000 or a timestamp that runs
// backwards by more than a second re-bases the map (the output stays one
// stream, one packet's time later, marker set); duplicates and reordered
// packets are dropped, since a transcoder without a jitter buffer cannot use
// them.
//
// # Comfort noise and DTX
//
// An Opus DTX frame (2 bytes or less: what a libopus sender emits every
// 400 ms of silence) becomes one RFC 3389 CN packet when the output leg has
// CN, at the level of the comfort noise it decodes to; without CN it is
// transcoded like any frame. Between DTX frames nothing is sent (a
// timestamp gap, as the Opus sender left). An incoming CN packet is
// forwarded as CN when the output leg has CN; otherwise it becomes one
// packet of white noise at its level, and nothing is generated until the
// next packet (no timer: the transcoder is driven by arrivals). Towards an
// Opus receiver that asked for usedtx=1 the encoder runs DTX and frames it
// marks as not needing transmission are not sent. The first packet after
// any of these gaps carries the marker bit.
//
// # DTMF
//
// With telephone-event on both legs, each event packet is translated: payload
// type mapped, timestamp mapped once per event onto the output timeline,
// duration rescaled between the two event clocks (100 ms: 4800 at 48 kHz,
// 800 at 8 kHz), E bit, volume and marker kept, every packet (so the end
// packet's repeats) forwarded; a duration beyond 16 bits after rescaling
// continues as a new segment (RFC 4733 §2.5.1.3). Events outside the output
// leg's event list are dropped. When only the input leg has telephone-event
// the digits are played into the output audio (DTMFTone at the event's
// volume) and the sender's audio during the tone is dropped.
type Transcoder struct {
	dec      Decoder
	enc      Encoder
	conc     Concealer
	fec      FECDecoder
	rs       Resampler
	opusIn   bool
	det      *DTMFDetector
	detPos   int64 // samples fed to det
	rd, re   int   // PCM rates of the decoder and the encoder
	inClock  int
	outClock int
	frame    int    // output samples per packet, at re
	frameTS  uint32 // output timestamp units per packet
	maxPay   int
	maxConc  int32 // the longest gap concealed, input clock units

	inPT, outPT       uint8
	inEv, outEv       *EventFormat
	inEvClk, outEvClk int
	outEvSet          EventSet
	inCN, outCN       *CNFormat
	inband            bool

	// Input tracking.
	started     bool
	ssrc        uint32
	lastSeq     uint16
	lossPending bool

	// Timeline: expIn (input clock) corresponds to the end of the audio
	// buffered so far, outTS (output clock) to its first sample.
	timeline bool
	expIn    uint32
	outTS    uint32
	markNext bool

	dpcm []int16 // decoded audio, at rd
	rpcm []int16 // resampled audio, at re
	tone []int16 // generated audio (tones, noise), at re
	buf  []int16 // audio waiting to be encoded, at re: buf[head:tail]
	head int
	tail int

	// Output.
	ssrcOut uint32
	seq     uint16
	arena   []byte
	used    int
	out     [][]byte

	ev  eventState // translated telephone-event
	gen toneState  // telephone-event played as a tone
	dev detState   // detected tone sent as telephone-event
	rng uint32

	st [nCounters]atomic.Uint64
}

type eventState struct {
	active bool
	inTS   uint32
	outTS  uint32
}

type toneState struct {
	active bool
	ended  bool
	inTS   uint32
	done   uint32 // input clock units played so far
	code   uint8
	volume uint8
}

type detState struct {
	active bool
	sent   bool // the first packet (with the marker) went out
	code   uint8
	volume uint8
	inTS   uint32
	outTS  uint32
}

// NewTranscoder validates cfg and builds the codecs and buffers of one stream
// direction. An error wraps ErrUnknownCodec or ErrCodecUnavailable (naming the
// codec) when a format cannot be transcoded in this build, ErrBadParams or
// ErrBadConfig when the legs do not fit together.
func NewTranscoder(cfg Config) (*Transcoder, error) {
	reg := cfg.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	inC, err := reg.Lookup(cfg.In.Format)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	outC, err := reg.Lookup(cfg.Out.Format)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	for _, c := range []*Codec{inC, outC} {
		if err := c.Available(); err != nil {
			return nil, err
		}
	}
	inP, err := ParseFmtp(inC.Name, cfg.In.Format.Fmtp)
	if err != nil {
		return nil, err
	}
	outP, err := ParseFmtp(outC.Name, cfg.Out.Format.Fmtp)
	if err != nil {
		return nil, err
	}
	if err := checkPTs(cfg.In); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if err := checkPTs(cfg.Out); err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	ptime := cfg.Out.PTime
	if ptime == 0 {
		ptime = 20
	}
	if !containsInt(outC.PTimes, ptime) {
		return nil, fmt.Errorf("%w: %s cannot send %d ms packets (%v)", ErrBadParams, outC.Name, ptime, outC.PTimes)
	}

	// Decode at the rate the output needs when the input codec can (libopus
	// can), else at its own; encode at the decoded rate when the output
	// codec can, else at its own and resample.
	rd := inC.NativeRate()
	if inC.SupportsRate(outC.NativeRate()) {
		rd = outC.NativeRate()
	}
	re := outC.NativeRate()
	if outC.SupportsRate(rd) {
		re = rd
	}
	rs, err := NewResampler(rd, re)
	if err != nil {
		return nil, err
	}
	dec, err := inC.NewDecoder(inP, rd)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", inC.Name, err)
	}
	enc, err := outC.NewEncoder(outP, re, cfg.Encoder)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", outC.Name, err)
	}

	t := &Transcoder{
		dec: dec, enc: enc, rs: rs, opusIn: inC.Name == "opus",
		rd: rd, re: re, inClock: inC.ClockRate, outClock: outC.ClockRate,
		frame: re * ptime / 1000, frameTS: uint32(outC.ClockRate * ptime / 1000),
		maxPay:  outC.MaxPayload(ptime),
		maxConc: int32(inC.ClockRate * maxPacketMs / 1000),
		inPT:    cfg.In.PT, outPT: cfg.Out.PT,
		inEv: cfg.In.Events, outEv: cfg.Out.Events,
		inCN: cfg.In.CN, outCN: cfg.Out.CN,
		ssrcOut: cfg.SSRC, seq: cfg.Seq, outTS: cfg.TS,
		rng: cfg.SSRC ^ 0x2545f491,
	}
	t.conc, _ = dec.(Concealer)
	t.fec, _ = dec.(FECDecoder)
	if t.inEv != nil {
		t.inEvClk = eventClock(t.inEv, t.inClock)
	}
	if t.outEv != nil {
		t.outEvClk = eventClock(t.outEv, t.outClock)
		p, err := ParseFmtp("telephone-event", t.outEv.Fmtp)
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		t.outEvSet = p.Events
	}
	t.inband = t.inEv != nil && t.outEv == nil && !cfg.NoInbandDTMF
	if cfg.DetectDTMF {
		if t.outEv == nil {
			return nil, fmt.Errorf("%w: DTMF detection needs telephone-event on the output leg", ErrBadConfig)
		}
		if t.det, err = NewDTMFDetector(rd); err != nil {
			return nil, fmt.Errorf("%w: no DTMF detector at %d Hz", ErrBadConfig, rd)
		}
	}

	chunkD := rd * maxPacketMs / 1000
	chunkE := re*maxPacketMs/1000 + 2
	t.dpcm = make([]int16, chunkD)
	t.rpcm = make([]int16, chunkE)
	t.tone = make([]int16, chunkE)
	t.buf = make([]int16, t.frame+chunkE)
	// Per input packet at most: 120 ms concealed, 120 ms decoded, a padded
	// partial packet, and a few event or CN packets.
	slots := 2*maxPacketMs/ptime + 6
	t.arena = make([]byte, slots*(rtpHeaderLen+max(t.maxPay, 64)))
	return t, nil
}

func eventClock(e *EventFormat, audio int) int {
	if e.ClockRate > 0 {
		return e.ClockRate
	}
	return audio
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkPTs refuses a leg whose payload types collide.
func checkPTs(l Leg) error {
	if l.PT > 127 {
		return fmt.Errorf("%w: payload type %d", ErrBadConfig, l.PT)
	}
	if l.Events != nil && (l.Events.PT == l.PT || l.Events.PT > 127) {
		return fmt.Errorf("%w: telephone-event payload type %d", ErrBadConfig, l.Events.PT)
	}
	if l.CN != nil && (l.CN.PT == l.PT || l.CN.PT > 127 || l.Events != nil && l.CN.PT == l.Events.PT) {
		return fmt.Errorf("%w: CN payload type %d", ErrBadConfig, l.CN.PT)
	}
	return nil
}

// SampleRates are the PCM rates the transcoder decodes to and encodes from
// (equal unless it resamples 2:1 or 1:2).
func (t *Transcoder) SampleRates() (decode, encode int) { return t.rd, t.re }

// Process takes one datagram of the input leg and appends the RTP packets it
// produces for the output leg to out (often one, none while a longer output
// packet fills or when the input is dropped, several when the input packet is
// longer than the output's or a loss was concealed). The packets point into
// the transcoder's own buffer and are valid until the next call. A non-nil
// error says why the datagram was refused (a sentinel such as ErrNotRTP or
// ErrDecode; it is also counted); packets appended before the error are still
// valid.
func (t *Transcoder) Process(pkt []byte, out [][]byte) ([][]byte, error) {
	t.used, t.out = 0, out
	err := t.process(pkt)
	out, t.out = t.out, nil
	return out, err
}

func (t *Transcoder) process(pkt []byte) error {
	t.count(cIn)
	h, ok := parseRTP(pkt)
	if !ok {
		return t.fail(cNotRTP, ErrNotRTP)
	}
	var kind int
	switch {
	case h.pt == t.inPT:
		kind = kindAudio
	case t.inEv != nil && h.pt == t.inEv.PT:
		kind = kindEvent
	case t.inCN != nil && h.pt == t.inCN.PT:
		kind = kindCN
	default:
		return t.fail(cUnknownPT, ErrUnknownPayloadType)
	}
	lost, ok := t.sequence(h)
	if !ok {
		return nil
	}
	if !t.timeline {
		t.timeline, t.expIn, t.markNext = true, h.ts, true
	}
	switch kind {
	case kindAudio:
		return t.audio(h, lost)
	case kindEvent:
		return t.event(h)
	default:
		return t.cnPacket(h)
	}
}

const (
	kindAudio = iota
	kindEvent
	kindCN
)

// sequence follows the input's sequence numbers (shared by audio, events and
// CN): it reports how many packets were lost before this one, and false for
// a duplicate or reordered packet, which is dropped.
func (t *Transcoder) sequence(h rtpHeader) (lost int, ok bool) {
	const maxDropout, maxMisorder = 3000, 100 // RFC 3550 Appendix A.1
	if !t.started {
		t.started, t.ssrc, t.lastSeq = true, h.ssrc, h.seq
		return 0, true
	}
	if h.ssrc != t.ssrc {
		t.count(cSSRCChanges)
		t.ssrc, t.lastSeq = h.ssrc, h.seq
		t.dec.Reset()
		if t.det != nil {
			t.det.Reset()
		}
		t.rebase(h.ts)
		return 0, true
	}
	switch d := int16(h.seq - t.lastSeq); {
	case d == 1:
	case d > 1 && d <= maxDropout:
		lost = int(d) - 1
		t.st[cLost].Add(uint64(lost))
	case d <= 0 && d > -maxMisorder:
		t.count(cLate)
		return 0, false
	default:
		t.count(cResyncs)
		t.rebase(h.ts)
	}
	t.lastSeq = h.seq
	return lost, true
}

// rebase restarts the input→output map at input timestamp ts: a new source,
// or one whose numbering jumped.
func (t *Transcoder) rebase(ts uint32) {
	if t.timeline {
		t.flushPartial()
		t.outTS += t.frameTS
	}
	t.timeline, t.expIn, t.markNext, t.lossPending = true, ts, true, false
	t.ev, t.gen, t.dev = eventState{}, toneState{}, detState{}
}

// outPos is the output timestamp just past the audio buffered so far, which
// corresponds to the input timestamp expIn.
func (t *Transcoder) outPos() uint32 {
	return t.outTS + uint32((t.tail-t.head)*t.outClock/t.re)
}

// scaleTS converts an input timestamp difference to output clock units.
func (t *Transcoder) scaleTS(d int32) uint32 {
	return uint32(int64(d) * int64(t.outClock) / int64(t.inClock))
}

// mapTS is the output timestamp of input timestamp ts.
func (t *Transcoder) mapTS(ts uint32) uint32 {
	return t.outPos() + t.scaleTS(int32(ts-t.expIn))
}

func (t *Transcoder) audio(h rtpHeader, lost int) error {
	p := h.payload
	if len(p) == 0 {
		return t.fail(cMalformed, ErrEmptyPayload)
	}
	if t.toneHolds(h.ts) {
		t.count(cToneMuted)
		return nil
	}
	d := int32(h.ts - t.expIn)
	if d < 0 {
		if d > -int32(t.inClock) {
			t.count(cLate) // overlaps audio already sent
			return nil
		}
		t.count(cResyncs)
		t.rebase(h.ts)
		d = 0
	}
	if d > 0 {
		if (lost > 0 || t.lossPending) && d <= t.maxConc {
			t.conceal(h.ts, d, p)
		} else {
			t.gap(h.ts, d)
		}
	}
	t.lossPending = false
	n, err := t.dec.Decode(p, t.dpcm)
	if err != nil {
		t.lossPending = true // conceal its time when the next packet comes
		if err == ErrPayloadTooLong {
			return t.fail(cMalformed, err)
		}
		return t.fail(cUndecodable, ErrDecode)
	}
	if h.marker {
		t.markNext = true
	}
	if t.opusIn && opusIsDTX(p) {
		t.count(cDTXIn)
		if t.outCN != nil {
			lvl := CNLevel(t.dpcm[:n])
			t.flushPartial()
			t.emitCN(t.outTS, []byte{lvl})
			dur := uint32(n * t.inClock / t.rd)
			t.expIn = h.ts + dur
			t.outTS += t.scaleTS(int32(dur))
			t.markNext = true
			return nil
		}
	}
	if t.det != nil {
		t.detect(h.ts, t.dpcm[:n])
	}
	t.push(t.dpcm[:n], h.ts)
	t.drain()
	return nil
}

// conceal fills the d input clock units before the packet at ts (whose
// payload next may carry FEC for them) and leaves the timeline at ts.
func (t *Transcoder) conceal(ts uint32, d int32, next []byte) {
	n := min(int(int64(d)*int64(t.rd)/int64(t.inClock)), len(t.dpcm))
	pcm := t.dpcm[:n]
	got, err := 0, ErrDecode
	if t.fec != nil {
		if got, err = t.fec.DecodeFEC(next, pcm); err == nil {
			t.count(cRecovered)
		}
	}
	if err != nil {
		if t.conc != nil {
			got, err = t.conc.Conceal(pcm)
		}
		if err != nil {
			clear(pcm)
			got = n
		}
		t.count(cConcealed)
	}
	t.push(pcm[:got], t.expIn)
	t.expIn = ts
	t.drain()
}

// gap carries a timestamp gap without loss (silence, DTX, a paused sender)
// to the output: the packet being filled is sent, padded, and the output
// resumes the same time later, marked.
func (t *Transcoder) gap(ts uint32, d int32) {
	target := t.outPos() + t.scaleTS(d)
	t.flushPartial()
	if int32(target-t.outTS) > 0 {
		t.outTS = target
	}
	t.expIn, t.markNext = ts, true
	t.count(cGaps)
}

// push appends decoded audio (at rd) that starts at input timestamp ts.
func (t *Transcoder) push(pcm []int16, ts uint32) {
	src := pcm
	if t.rs != nil {
		src = t.rpcm[:t.rs.Process(t.rpcm, pcm)]
	}
	t.append(src)
	t.expIn = ts + uint32(len(pcm)*t.inClock/t.rd)
}

// append adds audio at re to the buffer; there is always room for one
// packet's worth (120 ms) after drain.
func (t *Transcoder) append(pcm []int16) {
	if t.tail+len(pcm) > len(t.buf) {
		t.tail = copy(t.buf, t.buf[t.head:t.tail])
		t.head = 0
	}
	t.tail += copy(t.buf[t.tail:], pcm)
}

// drain encodes and emits every whole packet buffered.
func (t *Transcoder) drain() {
	for t.tail-t.head >= t.frame {
		t.encode(t.buf[t.head : t.head+t.frame])
		t.head += t.frame
	}
	if t.head == t.tail {
		t.head, t.tail = 0, 0
	}
}

// flushPartial sends a partly filled packet, padded with silence.
func (t *Transcoder) flushPartial() {
	if t.tail == t.head {
		return
	}
	if t.head+t.frame > len(t.buf) {
		t.tail = copy(t.buf, t.buf[t.head:t.tail])
		t.head = 0
	}
	clear(t.buf[t.tail : t.head+t.frame])
	t.tail = t.head + t.frame
	t.drain()
}

func (t *Transcoder) slot(n int) []byte {
	if t.used+n > len(t.arena) {
		return nil
	}
	return t.arena[t.used : t.used+n]
}

func (t *Transcoder) send(b []byte) {
	t.used += len(b)
	t.out = append(t.out, b)
	t.seq++
	t.count(cOut)
}

// encode encodes one packet of audio and emits it at outTS.
func (t *Transcoder) encode(pcm []int16) {
	ts := t.outTS
	t.outTS += t.frameTS
	b := t.slot(rtpHeaderLen + t.maxPay)
	if b == nil {
		t.count(cOverflow)
		return
	}
	n, err := t.enc.Encode(pcm, b[rtpHeaderLen:])
	if err != nil {
		t.count(cEncodeErrors)
		return
	}
	if n == 0 {
		t.count(cDTXOut) // the encoder's DTX: nothing to send for this frame
		t.markNext = true
		return
	}
	putRTP(b, t.markNext, t.outPT, t.seq, ts, t.ssrcOut)
	t.markNext = false
	t.send(b[:rtpHeaderLen+n])
}

func (t *Transcoder) emitCN(ts uint32, payload []byte) {
	b := t.slot(rtpHeaderLen + len(payload))
	if b == nil {
		t.count(cOverflow)
		return
	}
	putRTP(b, false, t.outCN.PT, t.seq, ts, t.ssrcOut)
	copy(b[rtpHeaderLen:], payload)
	t.count(cCNOut)
	t.send(b)
}

// cnPacket handles an incoming RFC 3389 packet.
func (t *Transcoder) cnPacket(h rtpHeader) error {
	p := h.payload
	if len(p) == 0 {
		return t.fail(cMalformed, ErrEmptyPayload)
	}
	t.count(cCNIn)
	if t.outCN != nil {
		ts := t.mapTS(h.ts)
		t.flushPartial()
		if int32(ts-t.outTS) < 0 {
			ts = t.outTS
		}
		t.emitCN(ts, p[:min(len(p), 64)])
		t.markNext = true
		return nil
	}
	d := int32(h.ts - t.expIn)
	if d < 0 {
		return nil // inside audio already sent
	}
	if d > 0 {
		t.gap(h.ts, d)
	}
	noise := t.tone[:t.frame]
	comfortNoise(noise, p[0], &t.rng)
	t.append(noise)
	t.expIn = h.ts + uint32(t.frame*t.inClock/t.re)
	t.drain()
	return nil
}

func (t *Transcoder) event(h rtpHeader) error {
	e, err := ParseEvent(h.payload)
	if err != nil {
		return t.fail(cMalformed, err)
	}
	switch {
	case t.outEv != nil:
		t.translate(h, e)
	case t.inband:
		t.playTone(h, e)
	default:
		t.count(cEventsDropped)
	}
	return nil
}

// translate forwards one telephone-event packet to the output leg.
func (t *Transcoder) translate(h rtpHeader, e Event) {
	if !t.outEvSet.Has(e.Code) {
		t.count(cEventsDropped)
		return
	}
	if !t.ev.active || h.ts != t.ev.inTS {
		t.ev = eventState{active: true, inTS: h.ts, outTS: t.mapTS(h.ts)}
		t.count(cEvents)
	}
	dur := uint32(uint64(e.Duration) * uint64(t.outEvClk) / uint64(t.inEvClk))
	t.sendEvent(t.ev.outTS, h.marker, e, dur)
}

// sendEvent emits one event packet of duration dur (output event clock units)
// for the event starting at output timestamp start, splitting a duration
// beyond 16 bits into segments (RFC 4733 §2.5.1.3).
func (t *Transcoder) sendEvent(start uint32, marker bool, e Event, dur uint32) {
	ts := start
	if dur > 0xffff {
		k := (dur - 1) / 0xffff
		dur -= k * 0xffff
		ts += uint32(uint64(k) * 0xffff * uint64(t.outClock) / uint64(t.outEvClk))
		marker = false
	}
	b := t.slot(rtpHeaderLen + EventLen)
	if b == nil {
		t.count(cOverflow)
		return
	}
	putRTP(b, marker, t.outEv.PT, t.seq, ts, t.ssrcOut)
	e.Duration = uint16(dur)
	e.Put(b[rtpHeaderLen:])
	t.count(cEventPackets)
	t.send(b)
}

// playTone plays a telephone-event into the output audio.
func (t *Transcoder) playTone(h rtpHeader, e Event) {
	g := &t.gen
	if !g.active || h.ts != g.inTS {
		if _, _, ok := dtmfFreqs(e.Code); !ok {
			t.count(cEventsDropped)
			return
		}
		*g = toneState{active: true, inTS: h.ts, code: e.Code, volume: e.Volume}
		if d := int32(h.ts - t.expIn); d < 0 {
			g.done = uint32(-d) // the sender's audio already covered the start
		} else if d > 0 {
			t.gap(h.ts, d)
		}
		t.count(cTones)
	}
	if g.ended {
		return // the end packet's repeats
	}
	target := uint32(uint64(e.Duration) * uint64(t.inClock) / uint64(t.inEvClk))
	maxChunk := uint32(t.inClock * maxPacketMs / 1000)
	// One packet plays at most 120 ms more: a duration that leaps ahead
	// (a lost stretch, a hostile sender) cannot make one call emit seconds.
	target = min(target, g.done+maxChunk)
	for g.done < target {
		chunk := min(target-g.done, maxChunk)
		n := int(uint64(chunk) * uint64(t.re) / uint64(t.inClock))
		start := int(uint64(g.done) * uint64(t.re) / uint64(t.inClock))
		DTMFTone(t.tone[:n], g.code, g.volume, t.re, start)
		t.append(t.tone[:n])
		g.done += chunk
		t.expIn = g.inTS + g.done
		t.drain()
	}
	if e.End {
		g.ended = true
	}
}

// toneHolds reports whether audio at input timestamp ts falls in a tone
// being played in its place (and ends a tone whose end packets were lost
// once the sender's audio has clearly moved past it).
func (t *Transcoder) toneHolds(ts uint32) bool {
	g := &t.gen
	if !g.active {
		return false
	}
	end := g.inTS + g.done
	if g.ended {
		if int32(ts-end) < 0 {
			return true
		}
		g.active = false
		return false
	}
	margin := uint32(t.inClock * maxPacketMs / 1000)
	if int32(ts-(end+margin)) < 0 {
		return true
	}
	g.active = false
	return false
}

// detect runs the DTMF detector over decoded audio that starts at input
// timestamp ts, and sends what it hears as telephone-events.
func (t *Transcoder) detect(ts uint32, pcm []int16) {
	base := t.detPos
	t.detPos += int64(len(pcm))
	tsOf := func(sample int64) uint32 {
		return ts + uint32((sample-base)*int64(t.inClock)/int64(t.rd))
	}
	endTS := ts + uint32(len(pcm)*t.inClock/t.rd)
	evs := t.det.Feed(pcm)
	for _, e := range evs {
		if e.Start {
			start := tsOf(e.Sample)
			t.dev = detState{active: true, code: e.Code, volume: e.Volume, inTS: start, outTS: t.mapTS(start)}
			t.count(cDetected)
			if !t.outEvSet.Has(e.Code) {
				t.dev.active = false
				t.count(cEventsDropped)
			}
			continue
		}
		if !t.dev.active || e.Code != t.dev.code {
			continue
		}
		dur := t.evDur(tsOf(e.Sample) - t.dev.inTS)
		for range 3 { // RFC 4733 §2.5.1.4: the final packet, three times
			t.sendEvent(t.dev.outTS, false, Event{Code: t.dev.code, End: true, Volume: t.dev.volume}, dur)
		}
		t.dev.active = false
	}
	if t.dev.active {
		t.sendEvent(t.dev.outTS, !t.dev.sent, Event{Code: t.dev.code, Volume: t.dev.volume}, t.evDur(endTS-t.dev.inTS))
		t.dev.sent = true
	}
}

// evDur converts an input-clock duration to output event clock units.
func (t *Transcoder) evDur(d uint32) uint32 {
	return uint32(uint64(d) * uint64(t.outEvClk) / uint64(t.inClock))
}
