// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"testing"
)

var (
	fPCMU = Format{Name: "PCMU", ClockRate: 8000}
	fPCMA = Format{Name: "PCMA", ClockRate: 8000}
	fG722 = Format{Name: "G722", ClockRate: 8000}
	fOpus = Format{Name: "opus", ClockRate: 48000, Channels: 2}
)

// staticPT is the payload type a leg uses for f in these tests.
func staticPT(f Format) uint8 {
	switch f.Name {
	case "PCMU":
		return 0
	case "PCMA":
		return 8
	case "G722":
		return 9
	}
	return 111
}

// needOpus skips a test that needs libopus in a build without it, after
// checking the build says so with ErrCodecUnavailable; when the Makefile
// built with libopus (RELAYD_WANT_OPUS set) a missing Opus is a failure.
func needOpus(t testing.TB) {
	t.Helper()
	if opusBuilt {
		return
	}
	err := NewRegistry().Check(fOpus)
	if !errors.Is(err, ErrCodecUnavailable) {
		t.Fatalf("no libopus in this build, yet Check(opus) = %v", err)
	}
	if os.Getenv("RELAYD_WANT_OPUS") != "" {
		t.Fatalf("RELAYD_WANT_OPUS is set but %v", err)
	}
	t.Skipf("codec missing: %v", err)
}

func hasOpus(fs ...Format) bool {
	for _, f := range fs {
		if f.Name == "opus" {
			return true
		}
	}
	return false
}

// sender makes the RTP stream a far end would send: codec, payload type,
// packet duration, its own sequence numbers and timestamps.
type sender struct {
	t     testing.TB
	enc   Encoder
	pt    uint8
	clock int
	rate  int
	ptime int
	seq   uint16
	ts    uint32
	ssrc  uint32
	// sendDTX sends the first frame of each DTX period as a TOC-only Opus
	// packet, as WebRTC does, instead of nothing.
	sendDTX bool
	inDTX   bool
}

func newSender(t testing.TB, f Format, fmtp string, ptime, rate int) *sender {
	t.Helper()
	c, err := NewRegistry().Lookup(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseFmtp(c.Name, fmtp)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.NewEncoder(p, rate, EncoderOptions{LossPerc: 20})
	if err != nil {
		t.Fatal(err)
	}
	return &sender{t: t, enc: enc, pt: staticPT(f), clock: c.ClockRate, rate: enc.SampleRate(),
		ptime: ptime, seq: 1000, ts: 123456, ssrc: 0x5eed}
}

// frame is the sender's samples per packet.
func (s *sender) frame() int { return s.rate * s.ptime / 1000 }

// rtp builds a packet and advances the sequence number (not the timestamp).
func (s *sender) rtp(pt uint8, marker bool, ts uint32, payload []byte) []byte {
	b := make([]byte, rtpHeaderLen+len(payload))
	putRTP(b, marker, pt, s.seq, ts, s.ssrc)
	copy(b[rtpHeaderLen:], payload)
	s.seq++
	return b
}

// audio encodes pcm into packets, one per ptime, advancing the timestamp; a
// frame the encoder's DTX leaves unsent is skipped (timestamp still moves).
func (s *sender) audio(pcm []int16) [][]byte {
	var pkts [][]byte
	buf := make([]byte, 1500)
	for i := 0; i+s.frame() <= len(pcm); i += s.frame() {
		n, err := s.enc.Encode(pcm[i:i+s.frame()], buf)
		if err != nil {
			s.t.Fatal(err)
		}
		switch {
		case n > 0:
			pkts = append(pkts, s.rtp(s.pt, i == 0, s.ts, buf[:n]))
			s.inDTX = false
		case s.sendDTX && !s.inDTX:
			pkts = append(pkts, s.rtp(s.pt, false, s.ts, []byte{0x08})) // SILK NB 20 ms, no frame
			s.inDTX = true
		}
		s.ts += uint32(s.clock * s.ptime / 1000)
	}
	return pkts
}

// rxPacket is one packet the transcoder produced, copied.
type rxPacket struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte
}

// receiver collects a transcoder's output and decodes its audio.
type receiver struct {
	t    testing.TB
	dec  Decoder
	pt   uint8
	pkts []rxPacket
	pcm  []int16
	buf  []int16
}

func newReceiver(t testing.TB, f Format, rate int) *receiver {
	t.Helper()
	c, err := NewRegistry().Lookup(f)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.NewDecoder(Params{}, rate)
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{t: t, dec: dec, pt: staticPT(f), buf: make([]int16, 48000*maxPacketMs/1000)}
}

func (r *receiver) take(pkts [][]byte) {
	for _, b := range pkts {
		h, ok := parseRTP(b)
		if !ok {
			r.t.Fatalf("transcoder sent a bad RTP packet: % x", b)
		}
		p := rxPacket{marker: h.marker, pt: h.pt, seq: h.seq, ts: h.ts, ssrc: h.ssrc, payload: append([]byte(nil), h.payload...)}
		r.pkts = append(r.pkts, p)
		if h.pt == r.pt {
			n, err := r.dec.Decode(h.payload, r.buf)
			if err != nil {
				r.t.Fatalf("output packet %d does not decode: %v", h.seq, err)
			}
			r.pcm = append(r.pcm, r.buf[:n]...)
		}
	}
}

// run feeds packets through tr and hands the output to r.
func run(t testing.TB, tr *Transcoder, r *receiver, pkts [][]byte) {
	t.Helper()
	var out [][]byte
	for _, p := range pkts {
		var err error
		out, err = tr.Process(p, out[:0])
		if err != nil {
			t.Fatalf("Process: %v", err)
		}
		r.take(out)
	}
}

// checkStream asserts the output is one RTP stream: the configured SSRC,
// sequence numbers from Seq without a gap, audio timestamps advancing by
// one packet each, the marker on the first packet.
func checkStream(t *testing.T, pkts []rxPacket, cfg Config, tsStep uint32) {
	t.Helper()
	if len(pkts) == 0 {
		t.Fatal("no output")
	}
	if !pkts[0].marker {
		t.Error("first packet without the marker bit")
	}
	for i, p := range pkts {
		if p.ssrc != cfg.SSRC {
			t.Fatalf("packet %d: SSRC %#x, want %#x", i, p.ssrc, cfg.SSRC)
		}
		if p.seq != cfg.Seq+uint16(i) {
			t.Fatalf("packet %d: seq %d, want %d", i, p.seq, cfg.Seq+uint16(i))
		}
		if i > 0 && p.pt == cfg.Out.PT && pkts[i-1].pt == cfg.Out.PT && p.ts-pkts[i-1].ts != tsStep {
			t.Fatalf("packet %d: timestamp step %d, want %d", i, p.ts-pkts[i-1].ts, tsStep)
		}
	}
	if pkts[0].ts != cfg.TS {
		t.Errorf("first timestamp %d, want %d", pkts[0].ts, cfg.TS)
	}
}

// sourceRate is the PCM rate a far end of format f would encode from.
func sourceRate(f Format) int {
	if f.Name == "opus" {
		return 48000
	}
	if f.Name == "G722" {
		return 16000
	}
	return 8000
}

func newTranscoder(t testing.TB, cfg Config) *Transcoder {
	t.Helper()
	tr, err := NewTranscoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func pairConfig(in, out Format) Config {
	return Config{
		In:   Leg{Format: in, PT: staticPT(in)},
		Out:  Leg{Format: out, PT: staticPT(out)},
		SSRC: 0xabcdef01, Seq: 65530, TS: 4294967000, // both wrap during the test
	}
}

// A 1 kHz tone crosses every pair at its frequency and level, as one clean
// RTP stream, and comes back the same after the return trip.
func TestTranscodePairs(t *testing.T) {
	pairs := [][2]Format{
		{fOpus, fPCMU}, {fPCMU, fOpus}, {fOpus, fPCMA}, {fPCMA, fOpus},
		{fG722, fPCMU}, {fPCMU, fG722}, {fPCMU, fPCMA}, {fPCMA, fPCMU},
		{fG722, fOpus}, {fOpus, fG722}, {fG722, fPCMA}, {fPCMA, fG722},
	}
	const freq, amp = 1000.0, 8000.0
	for _, pr := range pairs {
		in, out := pr[0], pr[1]
		t.Run(in.Name+"→"+out.Name, func(t *testing.T) {
			if hasOpus(in, out) {
				needOpus(t)
			}
			s := newSender(t, in, "", 20, sourceRate(in))
			cfg := pairConfig(in, out)
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, out, sourceRate(out))
			run(t, tr, r, s.audio(tone(sourceRate(in), freq, sourceRate(in), amp)))
			c, _ := NewRegistry().Lookup(out)
			checkStream(t, r.pkts, cfg, uint32(c.ClockRate/50))
			if len(r.pkts) != 50 {
				t.Errorf("%d packets out of 50", len(r.pkts))
			}
			rate := sourceRate(out)
			checkTone(t, "one way", r.pcm[rate/10:], rate, freq, amp/math.Sqrt2, 1)

			// And back: out → in.
			back := pairConfig(out, in)
			tr2 := newTranscoder(t, back)
			r2 := newReceiver(t, in, sourceRate(in))
			for _, p := range r.pkts {
				b := make([]byte, rtpHeaderLen+len(p.payload))
				putRTP(b, p.marker, p.pt, p.seq, p.ts, p.ssrc)
				copy(b[rtpHeaderLen:], p.payload)
				o, err := tr2.Process(b, nil)
				if err != nil {
					t.Fatal(err)
				}
				r2.take(o)
			}
			rate = sourceRate(in)
			checkTone(t, "round trip", r2.pcm[rate/5:], rate, freq, amp/math.Sqrt2, 1.5)
			if st := tr.Stats(); st.In != 50 || st.Out != 50 || st.Errors() != 0 || st.Lost != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Opus's 48 kHz clock against G.711's 8 kHz, and packets re-cut when the
// ptimes differ: audio stays contiguous, timestamps advance by the output
// packet's duration in the output clock.
func TestTranscodePTimes(t *testing.T) {
	for _, tc := range []struct {
		in, out      Format
		inMs, outMs  int
		wantPackets  int
		wantTSStep   uint32
		wantPerInput []int // output packets per input packet, for the first few
	}{
		{fOpus, fPCMU, 20, 20, 50, 160, []int{1, 1, 1}},
		{fOpus, fPCMU, 60, 20, 48, 160, []int{3, 3}},
		{fPCMU, fOpus, 20, 60, 16, 2880, []int{0, 0, 1, 0, 0, 1}},
		{fPCMU, fOpus, 30, 10, 99, 480, []int{3, 3}},
		{fPCMU, fPCMA, 20, 30, 33, 240, []int{0, 1, 1, 0, 1, 1}},
		{fG722, fPCMU, 30, 20, 49, 160, []int{1, 2, 1, 2}},
		{fPCMU, fG722, 10, 40, 25, 320, []int{0, 0, 0, 1}},
	} {
		t.Run(tc.in.Name+"→"+tc.out.Name, func(t *testing.T) {
			if hasOpus(tc.in, tc.out) {
				needOpus(t)
			}
			s := newSender(t, tc.in, "", tc.inMs, sourceRate(tc.in))
			cfg := pairConfig(tc.in, tc.out)
			cfg.Out.PTime = tc.outMs
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, tc.out, sourceRate(tc.out))
			pkts := s.audio(tone(sourceRate(tc.in), 440, sourceRate(tc.in), 8000))
			var out [][]byte
			for i, p := range pkts {
				out, _ = tr.Process(p, out[:0])
				if i < len(tc.wantPerInput) && len(out) != tc.wantPerInput[i] {
					t.Errorf("input packet %d made %d output packets, want %d", i, len(out), tc.wantPerInput[i])
				}
				r.take(out)
			}
			if len(r.pkts) != tc.wantPackets {
				t.Errorf("%d packets, want %d", len(r.pkts), tc.wantPackets)
			}
			checkStream(t, r.pkts, cfg, tc.wantTSStep)
			rate := sourceRate(tc.out)
			checkTone(t, "re-cut audio", r.pcm[rate/10:], rate, 440, 8000/math.Sqrt2, 1)
		})
	}
}

// Lost packets are concealed: the output has no hole, its timestamps stay
// contiguous, and the concealed stretch still sounds like the tone.
func TestTranscodeLoss(t *testing.T) {
	for _, tc := range []struct {
		in, out Format
		fmtp    string // the sender's encoder setup (Opus FEC)
		fec     bool
	}{
		{fPCMU, fPCMA, "", false},
		{fG722, fPCMU, "", false},
		{fOpus, fPCMU, "useinbandfec=1", true},
		{fOpus, fPCMA, "", true},
	} {
		t.Run(tc.in.Name+"→"+tc.out.Name, func(t *testing.T) {
			if hasOpus(tc.in, tc.out) {
				needOpus(t)
			}
			s := newSender(t, tc.in, tc.fmtp, 20, sourceRate(tc.in))
			cfg := pairConfig(tc.in, tc.out)
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, tc.out, 8000)
			pkts := s.audio(tone(sourceRate(tc.in), 440, sourceRate(tc.in), 8000))
			// Lose packet 20, and 30 and 31 together.
			var kept [][]byte
			for i, p := range pkts {
				if i != 20 && i != 30 && i != 31 {
					kept = append(kept, p)
				}
			}
			run(t, tr, r, kept)
			checkStream(t, r.pkts, cfg, 160)
			if len(r.pkts) != 50 {
				t.Errorf("%d packets out, want 50 (3 concealed)", len(r.pkts))
			}
			st := tr.Stats()
			if st.Lost != 3 {
				t.Errorf("lost %d, want 3", st.Lost)
			}
			if tc.fec {
				if st.Recovered != 2 {
					t.Errorf("recovered %d gaps with FEC, want 2", st.Recovered)
				}
			} else if st.Concealed != 2 {
				t.Errorf("concealed %d gaps, want 2", st.Concealed)
			}
			// The concealed packets carry the tone, not silence.
			for _, i := range []int{20, 30} {
				seg := r.pcm[i*160 : (i+1)*160]
				if d := dbOf(RMS(seg), 8000/math.Sqrt2); d < -6 {
					t.Errorf("packet %d concealed at %.1f dB", i, d)
				}
				if f := DominantFrequency(seg, 8000, 200, 2000, 10); math.Abs(f-440) > 30 {
					t.Errorf("packet %d concealed at %.0f Hz", i, f)
				}
			}
		})
	}
}

// A long loss is not concealed beyond 120 ms: the output carries a gap and
// resumes marked, its timestamp moved on by the gap.
func TestTranscodeLongLoss(t *testing.T) {
	s := newSender(t, fPCMU, "", 20, 8000)
	cfg := pairConfig(fPCMU, fPCMA)
	tr := newTranscoder(t, cfg)
	r := newReceiver(t, fPCMA, 8000)
	pkts := s.audio(tone(8000, 440, 8000, 8000))
	run(t, tr, r, append(pkts[:10:10], pkts[20:]...))
	if len(r.pkts) != 40 {
		t.Fatalf("%d packets, want 40", len(r.pkts))
	}
	if got := r.pkts[10].ts - r.pkts[9].ts; got != 11*160 {
		t.Errorf("timestamp gap %d, want %d", got, 11*160)
	}
	if !r.pkts[10].marker || r.pkts[10].seq != r.pkts[9].seq+1 {
		t.Errorf("resumed packet: marker %v, seq %d after %d", r.pkts[10].marker, r.pkts[10].seq, r.pkts[9].seq)
	}
	if st := tr.Stats(); st.Lost != 10 || st.Concealed != 0 || st.Gaps != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Opus DTX: the sender's DTX frames become CN packets towards a G.711 leg
// with CN, the silence between them a timestamp gap, and speech resumes
// marked; without CN the frames are sent as audio.
func TestTranscodeOpusDTX(t *testing.T) {
	needOpus(t)
	for _, withCN := range []bool{true, false} {
		s := newSender(t, fOpus, "usedtx=1", 20, 48000)
		s.sendDTX = true
		cfg := pairConfig(fOpus, fPCMU)
		if withCN {
			cfg.Out.CN = &CNFormat{PT: 13}
		}
		tr := newTranscoder(t, cfg)
		r := newReceiver(t, fPCMU, 8000)
		sig := tone(48000, 440, 48000, 8000)
		silence := make([]int16, 2*48000)
		pkts := s.audio(append(append(sig[:24000:24000], silence...), sig[:24000]...))
		if len(pkts) > 80 {
			t.Fatalf("the sender's DTX did not engage: %d packets for 3 s", len(pkts))
		}
		run(t, tr, r, pkts)
		st := tr.Stats()
		if st.DTXIn == 0 {
			t.Fatalf("no DTX frames seen: %+v", st)
		}
		var cn, audio, resumed int
		for i, p := range r.pkts {
			if p.seq != cfg.Seq+uint16(i) || p.ssrc != cfg.SSRC {
				t.Fatalf("packet %d: seq %d ssrc %#x", i, p.seq, p.ssrc)
			}
			switch p.pt {
			case 13:
				cn++
				if len(p.payload) != 1 || p.payload[0] < 40 {
					t.Errorf("CN payload % x: want one level byte of quiet noise", p.payload)
				}
				if p.marker {
					t.Error("CN packet with the marker bit")
				}
			case 0:
				audio++
				if i > 0 && r.pkts[i-1].pt == 0 && p.ts-r.pkts[i-1].ts != 160 && !p.marker {
					t.Errorf("packet %d: timestamp jump %d without the marker", i, p.ts-r.pkts[i-1].ts)
				}
				if i > 0 && r.pkts[i-1].pt == 13 {
					resumed++
				}
			}
		}
		if withCN {
			if cn == 0 || uint64(cn) != st.CNOut || resumed == 0 {
				t.Errorf("CN: %d CN packets (stats %d), speech resumed %d times", cn, st.CNOut, resumed)
			}
		} else if cn != 0 {
			t.Errorf("%d CN packets towards a leg without CN", cn)
		}
		// The timeline holds: the last packet sits 3 s minus one packet
		// after the first, as at the sender.
		last := r.pkts[len(r.pkts)-1]
		if d := last.ts - r.pkts[0].ts; d != 3*8000-160 {
			t.Errorf("CN=%v: last packet %d after the first, want %d", withCN, d, 3*8000-160)
		}
	}
}

// Towards an Opus receiver that asked for usedtx=1 the encoder's DTX
// frames are not sent.
func TestTranscodeOpusEncoderDTX(t *testing.T) {
	needOpus(t)
	s := newSender(t, fPCMU, "", 20, 8000)
	cfg := pairConfig(fPCMU, fOpus)
	cfg.Out.Format.Fmtp = "usedtx=1"
	tr := newTranscoder(t, cfg)
	r := newReceiver(t, fOpus, 48000)
	run(t, tr, r, s.audio(make([]int16, 3*8000)))
	st := tr.Stats()
	if st.DTXOut == 0 || len(r.pkts) >= 150 || uint64(len(r.pkts))+st.DTXOut != 150 {
		t.Errorf("%d packets sent, %d left out by DTX, of 150", len(r.pkts), st.DTXOut)
	}
}

// Comfort noise from a G.711 sender: forwarded as CN when the output has
// CN, otherwise one packet of noise at its level.
func TestTranscodeComfortNoiseIn(t *testing.T) {
	for _, withCN := range []bool{true, false} {
		s := newSender(t, fPCMU, "", 20, 8000)
		cfg := pairConfig(fPCMU, fPCMA)
		cfg.In.CN = &CNFormat{PT: 13}
		if withCN {
			cfg.Out.CN = &CNFormat{PT: 19}
		}
		tr := newTranscoder(t, cfg)
		r := newReceiver(t, fPCMA, 8000)
		pkts := s.audio(tone(8000, 440, 8000, 8000)[:1600])
		pkts = append(pkts, s.rtp(13, false, s.ts, []byte{40, 1, 2}))
		s.ts += 8000
		pkts = append(pkts, s.rtp(13, false, s.ts, []byte{40}))
		s.ts += 8000
		pkts = append(pkts, s.audio(tone(8000, 440, 8000, 8000)[:1600])...)
		run(t, tr, r, pkts)
		var cn int
		for i, p := range r.pkts {
			if p.pt == 19 {
				cn++
				if p.payload[0] != 40 {
					t.Errorf("CN level %d, want 40", p.payload[0])
				}
			}
			if i == 10 && withCN && (p.pt != 19 || p.ts != r.pkts[9].ts+160) {
				t.Errorf("first CN: pt %d ts +%d", p.pt, p.ts-r.pkts[9].ts)
			}
		}
		if withCN {
			if cn != 2 || len(r.pkts) != 22 {
				t.Errorf("%d CN of %d packets, want 2 of 22", cn, len(r.pkts))
			}
			continue
		}
		if len(r.pkts) != 22 {
			t.Fatalf("%d packets, want 22", len(r.pkts))
		}
		// Packets 10 and 11 are noise at -40 dBov.
		for _, i := range []int{10, 11} {
			rms := RMS(r.pcm[i*160 : (i+1)*160])
			if d := dbOf(rms, cnRef); math.Abs(d+40) > 2 {
				t.Errorf("noise packet %d at %.1f dBov, want -40", i, d)
			}
		}
		if !r.pkts[12].marker {
			t.Error("speech after CN not marked")
		}
		if st := tr.Stats(); st.CNIn != 2 {
			t.Errorf("stats %+v", st)
		}
	}
}

// renumber gives packets consecutive sequence numbers from seq, in the order
// they will be sent.
func renumber(pkts [][]byte, seq uint16) {
	for i, p := range pkts {
		binary.BigEndian.PutUint16(p[2:4], seq+uint16(i))
	}
}

// eventPacket builds an RFC 4733 packet.
func eventPacket(s *sender, pt uint8, marker bool, ts uint32, e Event) []byte {
	b := make([]byte, 4)
	e.Put(b)
	return s.rtp(pt, marker, ts, b)
}

// browserDigit is what Chromium sends for one 100 ms digit at clock rate:
// updates every 20 ms from the digit's start timestamp, the marker on the
// first, the end packet three times.
func browserDigit(s *sender, pt uint8, code uint8, clock int) [][]byte {
	var pkts [][]byte
	step := uint16(clock / 50)
	for d := step; d <= 5*step; d += step {
		pkts = append(pkts, eventPacket(s, pt, d == step, s.ts, Event{Code: code, Volume: 10, Duration: d, End: d == 5*step}))
	}
	for range 2 {
		pkts = append(pkts, eventPacket(s, pt, false, s.ts, Event{Code: code, Volume: 10, Duration: 5 * step, End: true}))
	}
	s.ts += uint32(5 * step)
	return pkts
}

// checkDigit asserts the output carries one translated digit: pt, one
// timestamp, rescaled durations, the marker on the first packet only, three
// end packets.
func checkDigit(t *testing.T, pkts []rxPacket, pt, code uint8, startTS uint32, step uint16) {
	t.Helper()
	var ev []rxPacket
	for _, p := range pkts {
		if p.pt == pt {
			ev = append(ev, p)
		}
	}
	if len(ev) != 7 {
		t.Fatalf("%d event packets, want 7", len(ev))
	}
	for i, p := range ev {
		e, err := ParseEvent(p.payload)
		if err != nil {
			t.Fatal(err)
		}
		wantDur := step * uint16(min(i+1, 5))
		if e.Code != code || e.Duration != wantDur || e.Volume != 10 || e.End != (i >= 4) {
			t.Errorf("event packet %d: %+v, want duration %d", i, e, wantDur)
		}
		if p.ts != startTS {
			t.Errorf("event packet %d: timestamp %d, want %d", i, p.ts, startTS)
		}
		if p.marker != (i == 0) {
			t.Errorf("event packet %d: marker %v", i, p.marker)
		}
	}
}

// A browser's digit (telephone-event/48000, PT 110) reaches the SIP phone as
// telephone-event/8000 on PT 101: 4800 becomes 800, and back.
func TestDTMFTranslate(t *testing.T) {
	needOpus(t)
	for _, dir := range []struct {
		in, out             Format
		inPT, outPT         uint8
		inClock, outClock   int
		inStep, outStep     uint16
		audioStep, outAudio uint32
	}{
		{fOpus, fPCMU, 110, 101, 48000, 8000, 960, 160, 960, 160},
		{fPCMU, fOpus, 101, 110, 8000, 48000, 160, 960, 160, 960},
	} {
		t.Run(dir.in.Name+"→"+dir.out.Name, func(t *testing.T) {
			s := newSender(t, dir.in, "", 20, sourceRate(dir.in))
			cfg := pairConfig(dir.in, dir.out)
			cfg.In.Events = &EventFormat{PT: dir.inPT}
			cfg.Out.Events = &EventFormat{PT: dir.outPT, Fmtp: "0-16"}
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, dir.out, sourceRate(dir.out))
			sig := tone(sourceRate(dir.in), 440, sourceRate(dir.in), 8000)
			pkts := s.audio(sig[:len(sig)/5]) // 200 ms of audio
			pkts = append(pkts, browserDigit(s, dir.inPT, 1, dir.inClock)...)
			pkts = append(pkts, s.audio(sig[:len(sig)/5])...)
			run(t, tr, r, pkts)
			// The digit starts where the 11th audio packet would have.
			start := cfg.TS + 10*dir.outAudio
			checkDigit(t, r.pkts, dir.outPT, 1, start, dir.outStep)
			for i, p := range r.pkts {
				if p.seq != cfg.Seq+uint16(i) || p.ssrc != cfg.SSRC {
					t.Fatalf("packet %d: seq %d, ssrc %#x", i, p.seq, p.ssrc)
				}
			}
			// Audio resumes after the digit, marked, 100 ms later.
			resume := r.pkts[17]
			if resume.pt != staticPT(dir.out) || !resume.marker || resume.ts != start+5*dir.outAudio {
				t.Errorf("audio after the digit: pt %d marker %v ts +%d", resume.pt, resume.marker, resume.ts-start)
			}
			if st := tr.Stats(); st.Events != 1 || st.EventPackets != 7 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Between two 8 kHz legs only the payload type changes; events outside the
// output's list are dropped; a long digit whose rescaled duration would
// overflow 16 bits continues in a new segment.
func TestDTMFTranslateMapping(t *testing.T) {
	s := newSender(t, fG722, "", 20, 16000)
	cfg := pairConfig(fG722, fPCMU)
	cfg.In.Events = &EventFormat{PT: 126}
	cfg.Out.Events = &EventFormat{PT: 101} // 0-15
	tr := newTranscoder(t, cfg)
	r := newReceiver(t, fPCMU, 8000)
	pkts := s.audio(tone(16000, 440, 16000, 8000)[:3200])
	pkts = append(pkts, browserDigit(s, 126, 11, 8000)...)
	flash := eventPacket(s, 126, true, s.ts, Event{Code: 16, Duration: 160})
	run(t, tr, r, append(pkts, flash))
	checkDigit(t, r.pkts, 101, 11, cfg.TS+10*160, 160)
	if st := tr.Stats(); st.EventsDropped != 1 {
		t.Errorf("flash not dropped: %+v", st)
	}

	// 8 kHz events into a 48 kHz event clock: 12 s of digit is 576000.
	cfg = pairConfig(fPCMU, fPCMA)
	cfg.In.Events = &EventFormat{PT: 101}
	cfg.Out.Events = &EventFormat{PT: 110, ClockRate: 48000}
	tr = newTranscoder(t, cfg)
	s = newSender(t, fPCMU, "", 20, 8000)
	out, err := tr.Process(eventPacket(s, 101, true, s.ts, Event{Code: 5, Duration: 20000}), nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("%d packets, %v", len(out), err)
	}
	h, _ := parseRTP(out[0])
	e, _ := ParseEvent(h.payload)
	// 20000 × 6 = 120000 = 65535 + 54465: second segment, 65535 later
	// (in the 8 kHz audio clock: 10922), no marker.
	if e.Duration != 54465 || h.ts != cfg.TS+65535*8000/48000 || h.marker {
		t.Errorf("segment: duration %d, ts +%d, marker %v", e.Duration, h.ts-cfg.TS, h.marker)
	}
}

// Towards a leg without telephone-event the digit is played as a tone in
// the audio, in place of the sender's audio.
func TestDTMFInband(t *testing.T) {
	s := newSender(t, fPCMU, "", 20, 8000)
	cfg := pairConfig(fPCMU, fPCMA)
	cfg.In.Events = &EventFormat{PT: 101}
	tr := newTranscoder(t, cfg)
	r := newReceiver(t, fPCMA, 8000)
	quiet := tone(8000, 300, 8000, 1000)
	pkts := s.audio(quiet[:1600])
	digitStart := s.ts
	for _, d := range []uint8{1, 5, 11} {
		// Audio keeps flowing under the event, as some phones do.
		ev := browserDigit(s, 101, d, 8000)
		s.ts = digitStart
		au := s.audio(quiet[:800])
		for i := range ev {
			pkts = append(pkts, ev[i])
			if i < len(au) {
				pkts = append(pkts, au[i])
			}
		}
		pkts = append(pkts, s.audio(quiet[:1600])...)
		digitStart = s.ts
	}
	renumber(pkts, 1)
	run(t, tr, r, pkts)
	if got := detectDigits(t, r.pcm, 8000); got != "15#" {
		t.Errorf("heard %q in the output, want 15#", got)
	}
	checkStream(t, r.pkts, cfg, 160)
	if st := tr.Stats(); st.Tones != 3 || st.ToneMuted == 0 {
		t.Errorf("stats %+v", st)
	}

	// NoInbandDTMF drops them instead.
	cfg.NoInbandDTMF = true
	tr = newTranscoder(t, cfg)
	r = newReceiver(t, fPCMA, 8000)
	s = newSender(t, fPCMU, "", 20, 8000)
	run(t, tr, r, browserDigit(s, 101, 1, 8000))
	if len(r.pkts) != 0 || tr.Stats().EventsDropped != 7 {
		t.Errorf("%d packets; stats %+v", len(r.pkts), tr.Stats())
	}
}

// In-band digits from a SIP phone become telephone-events towards a leg
// that has them.
func TestDTMFDetectToEvents(t *testing.T) {
	for _, in := range []Format{fPCMU, fG722} {
		t.Run(in.Name, func(t *testing.T) {
			rate := sourceRate(in)
			s := newSender(t, in, "", 20, rate)
			cfg := pairConfig(in, fPCMA)
			cfg.Out.Events = &EventFormat{PT: 101}
			cfg.DetectDTMF = true
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, fPCMA, 8000)
			run(t, tr, r, s.audio(dtmfSignal(t, rate, "15#", 100, 100, 10)))
			var digits []byte
			var ends int
			var start uint32
			for _, p := range r.pkts {
				if p.pt != 101 {
					continue
				}
				e, _ := ParseEvent(p.payload)
				if p.marker {
					digits = append(digits, DigitOf(e.Code))
					start = p.ts
					// The tone began 50 ms + k·200 ms into the call.
					at := int(p.ts - cfg.TS)
					if want := 400 + 1600*(len(digits)-1); at < want-100 || at > want+250 {
						t.Errorf("digit %c starts at +%d, want about +%d", DigitOf(e.Code), at, want)
					}
				}
				if p.ts != start {
					t.Errorf("event packet timestamp moved: %d, %d", p.ts, start)
				}
				if e.End {
					ends++
					if e.Duration < 600 || e.Duration > 1000 {
						t.Errorf("digit %c lasted %d, want about 800", DigitOf(e.Code), e.Duration)
					}
				}
			}
			if string(digits) != "15#" || ends != 9 {
				t.Errorf("events for %q with %d end packets, want 15# with 9", digits, ends)
			}
			if st := tr.Stats(); st.Detected != 3 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// Garbage in any form is refused, counted, and never breaks the stream
// that comes out.
func TestTranscodeHostile(t *testing.T) {
	formats := []Format{fPCMU, fG722}
	if opusBuilt {
		formats = append(formats, fOpus)
	}
	for _, in := range formats {
		t.Run(in.Name, func(t *testing.T) {
			cfg := pairConfig(in, fPCMA)
			cfg.In.Events = &EventFormat{PT: 101}
			cfg.In.CN = &CNFormat{PT: 13}
			cfg.Out.Events = &EventFormat{PT: 100}
			tr := newTranscoder(t, cfg)
			r := newReceiver(t, fPCMA, 8000)
			s := newSender(t, in, "", 20, sourceRate(in))
			sig := tone(sourceRate(in), 440, sourceRate(in), 8000)
			rnd := lcg(11)
			junk := func(n int) []byte {
				b := make([]byte, n)
				for i := range b {
					b[i] = byte(rnd.next() >> 24)
				}
				return b
			}
			var errs, good int
			var out [][]byte
			feed := func(p []byte) {
				var err error
				out, err = tr.Process(p, out[:0])
				if err != nil {
					errs++
				}
				r.take(out)
			}
			f := s.frame()
			for i := 0; i+f <= len(sig); i += f {
				pkts := s.audio(sig[i : i+f])
				good++
				p := pkts[0]
				feed(p)
				switch (i / f) % 10 {
				case 1: // garbage payload in the audio payload type
					feed(s.rtp(s.pt, false, s.ts, junk(1+int(rnd.next()%400))))
				case 2: // not RTP at all, or truncated
					feed(junk(int(rnd.next() % 12)))
					feed(p[:min(len(p)/2, 11)])
				case 3: // unknown payload type, empty payload, short event
					feed(s.rtp(77, false, s.ts, junk(10)))
					feed(s.rtp(s.pt, false, s.ts, nil))
					feed(s.rtp(101, false, s.ts, junk(3)))
				case 4: // timestamp jumps, both ways
					s.ts += 1 << 30
				case 5:
					s.ts -= 1 << 29
				case 6: // a new SSRC
					s.ssrc++
				case 7: // a sequence jump
					s.seq += 20000
				case 8: // a garbage event and CN, an oversized payload
					feed(s.rtp(101, true, s.ts, junk(4)))
					feed(s.rtp(13, false, s.ts, junk(5)))
					feed(s.rtp(s.pt, false, s.ts, junk(1400)))
				}
			}
			st := tr.Stats()
			if uint64(errs) != st.Errors() || st.Errors() == 0 {
				t.Errorf("%d errors returned, %d counted", errs, st.Errors())
			}
			if st.SSRCChanges != 5 || st.Resyncs < 5 || st.Malformed == 0 {
				t.Errorf("stats %+v", st)
			}
			for i, p := range r.pkts {
				if p.ssrc != cfg.SSRC || p.seq != cfg.Seq+uint16(i) {
					t.Fatalf("packet %d: ssrc %#x seq %d", i, p.ssrc, p.seq)
				}
			}
			if len(r.pkts) < good/2 {
				t.Errorf("only %d packets out of %d good ones", len(r.pkts), good)
			}
		})
	}
}

// Duplicates and reordered packets are dropped and counted; the stream
// goes on.
func TestTranscodeReorder(t *testing.T) {
	s := newSender(t, fPCMU, "", 20, 8000)
	cfg := pairConfig(fPCMU, fPCMA)
	tr := newTranscoder(t, cfg)
	r := newReceiver(t, fPCMA, 8000)
	p := s.audio(tone(8000, 440, 8000, 8000)[:1600])
	run(t, tr, r, [][]byte{p[0], p[1], p[1], p[3], p[2], p[4], p[0]})
	st := tr.Stats()
	if st.Late != 3 || st.Lost != 1 || st.Concealed != 1 || len(r.pkts) != 5 {
		t.Errorf("%d packets, stats %+v", len(r.pkts), st)
	}
}

func TestTranscoderConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown codec":     {In: Leg{Format: Format{Name: "G729", ClockRate: 8000}}, Out: Leg{Format: fPCMU}},
		"PT collision":      {In: Leg{Format: fPCMU, Events: &EventFormat{PT: 0}}, Out: Leg{Format: fPCMA, PT: 8}},
		"CN collision":      {In: Leg{Format: fPCMU}, Out: Leg{Format: fPCMA, PT: 8, Events: &EventFormat{PT: 101}, CN: &CNFormat{PT: 101}}},
		"PT over 127":       {In: Leg{Format: fPCMU, PT: 200}, Out: Leg{Format: fPCMA, PT: 8}},
		"ptime":             {In: Leg{Format: fPCMU}, Out: Leg{Format: fPCMA, PT: 8, PTime: 7}},
		"detect, no events": {In: Leg{Format: fPCMU}, Out: Leg{Format: fPCMA, PT: 8}, DetectDTMF: true},
		"bad fmtp":          {In: Leg{Format: fPCMU}, Out: Leg{Format: fPCMA, PT: 8, Events: &EventFormat{PT: 101, Fmtp: "x"}}},
	} {
		if _, err := NewTranscoder(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if opusBuilt {
		_, err := NewTranscoder(Config{In: Leg{Format: fPCMU}, Out: Leg{Format: fOpus, PT: 111, PTime: 30}})
		if !errors.Is(err, ErrBadParams) {
			t.Errorf("opus 30 ms: %v", err)
		}
	}
}

// The steady state allocates nothing.
func TestTranscoderAllocs(t *testing.T) {
	pairs := [][2]Format{{fPCMU, fPCMA}, {fG722, fPCMU}, {fPCMU, fG722}, {fOpus, fPCMU}, {fPCMU, fOpus}}
	for _, pr := range pairs {
		if hasOpus(pr[0], pr[1]) && !opusBuilt {
			continue
		}
		s := newSender(t, pr[0], "", 20, sourceRate(pr[0]))
		tr := newTranscoder(t, pairConfig(pr[0], pr[1]))
		pkts := s.audio(tone(sourceRate(pr[0]), 440, sourceRate(pr[0]), 8000))
		out := make([][]byte, 0, 8)
		i := 0
		n := testing.AllocsPerRun(40, func() {
			p := pkts[i%len(pkts)]
			binary.BigEndian.PutUint16(p[2:], uint16(5000+i))
			binary.BigEndian.PutUint32(p[4:], uint32(i*s.clock/50))
			out, _ = tr.Process(p, out[:0])
			i++
		})
		if n != 0 {
			t.Errorf("%s→%s: %.1f allocations per packet", pr[0].Name, pr[1].Name, n)
		}
	}

	// Events translated, tones detected into events, tones played.
	s := newSender(t, fPCMU, "", 20, 8000)
	cfg := pairConfig(fPCMU, fPCMA)
	cfg.In.Events = &EventFormat{PT: 101}
	cfg.Out.Events = &EventFormat{PT: 100}
	cfg.DetectDTMF = true
	tr := newTranscoder(t, cfg)
	pkts := s.audio(dtmfSignal(t, 8000, "123", 100, 100, 10))
	pkts = append(pkts, browserDigit(s, 101, 4, 8000)...)
	cfg.Out.Events, cfg.DetectDTMF = nil, false
	tones := newTranscoder(t, cfg)
	renumber(pkts, 0)
	out := make([][]byte, 0, 8)
	i := 0
	if n := testing.AllocsPerRun(len(pkts)-1, func() {
		out, _ = tr.Process(pkts[i], out[:0])
		out, _ = tones.Process(pkts[i], out[:0])
		i++
	}); n != 0 {
		t.Errorf("DTMF paths: %.1f allocations per packet", n)
	}
	if tr.Stats().Detected == 0 || tr.Stats().Events != 1 || tones.Stats().Tones != 1 {
		t.Errorf("the DTMF paths did not run: %+v, %+v", tr.Stats(), tones.Stats())
	}
}
