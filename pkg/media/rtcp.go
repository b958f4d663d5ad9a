// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"math"
	"sync/atomic"
	"time"
)

// RTCP the parties exchange says how they hear each other: receiver report
// blocks carry the loss and jitter a party measured on what it receives,
// and with the sender reports they answer, the round trip of each leg
// (RFC 3550 §6.4, A.8). The source-check stage reads every RTCP packet a
// party sends (after SRTCP was authenticated and decrypted) and keeps, per
// stream, the latest sender reports it saw and what the party reported; a
// MOS estimate is computed from those reports.

const (
	maxSenderReports = 4 // per stream: the latest SR of each of a few SSRCs
	maxReports       = 4 // per stream: the sources a party reports on
)

// senderReport is an SR a party sent, as the other leg's round trip needs
// it: its NTP timestamp's middle 32 bits (what LSR echoes) and when it
// passed the relay.
type senderReport struct {
	used    atomic.Bool
	ssrc    atomic.Uint32
	ntpMid  atomic.Uint32
	arrival atomic.Int64 // monotonic ns
}

// report is what a party said about one source it receives.
type report struct {
	used     atomic.Bool
	ssrc     atomic.Uint32
	fraction atomic.Uint32 // fraction lost, /256
	cumLost  atomic.Int32
	jitter   atomic.Uint32 // timestamp units
	rate     atomic.Uint32 // clock rate the jitter is in (0: unknown)
	rttNs    atomic.Int64  // round trip of this party's leg, 0 when unknown
	at       atomic.Int64  // Unix ns of the latest report
	// MOS of every report so far, ×1000, for average, lowest, highest.
	mosSum, mosSamples   atomic.Uint64
	mosMin, mosMax, mosL atomic.Uint32
}

// rtcpState is one stream's RTCP view; the owning worker writes it, Stats
// reads it.
type rtcpState struct {
	srs     [maxSenderReports]senderReport
	reports [maxReports]report
}

// ReportStats is what a party reported, in RTCP receiver report blocks,
// about one source it receives (media the relay sent it), with the MOS
// estimated from those reports.
type ReportStats struct {
	SSRC           uint32
	FractionLost   float64 // 0..1, of the latest report
	CumulativeLost int32
	JitterMs       float64
	// RTTLegMs is the round trip between the relay and this party (from the
	// party's LSR/DLSR against the SR the relay forwarded it); 0 if unknown.
	RTTLegMs float64
	At       time.Time
	// MOS of the latest report, and average, lowest and highest over the
	// call (1.0–4.5; 0 when no report yet).
	MOS, MOSAvg, MOSMin, MOSMax float64
	Samples                     uint64
}

// readRTCP walks a compound RTCP packet received on s from its party.
// monoNs is its arrival on the monotonic clock, nowNs on the wall clock.
func (s *Stream) readRTCP(b []byte, monoNs, nowNs int64, cfg *streamConfig) {
	st := s.rtcp.Load()
	if st == nil {
		st = new(rtcpState)
		s.rtcp.Store(st)
	}
	for len(b) >= rtcpHeaderLen && b[0]>>6 == rtpVersion {
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return
		}
		pkt := b[:n]
		count := int(b[0] & 0x1f)
		switch b[1] {
		case 200: // SR: sender info (20 bytes) after the SSRC, then blocks
			if len(pkt) >= 28 {
				st.noteSR(binary.BigEndian.Uint32(pkt[4:]),
					binary.BigEndian.Uint32(pkt[8:])<<16|binary.BigEndian.Uint32(pkt[12:])>>16, monoNs)
				s.readBlocks(st, pkt[28:], count, monoNs, nowNs, cfg)
			}
		case 201: // RR
			if len(pkt) >= 8 {
				s.readBlocks(st, pkt[8:], count, monoNs, nowNs, cfg)
			}
		}
		b = b[n:]
	}
}

func (st *rtcpState) noteSR(ssrc, ntpMid uint32, monoNs int64) {
	slot := &st.srs[0]
	for i := range st.srs {
		sr := &st.srs[i]
		if !sr.used.Load() || sr.ssrc.Load() == ssrc {
			slot = sr
			break
		}
		if sr.arrival.Load() < slot.arrival.Load() {
			slot = sr
		}
	}
	slot.ssrc.Store(ssrc)
	slot.ntpMid.Store(ntpMid)
	slot.arrival.Store(monoNs)
	slot.used.Store(true)
}

// srAt finds the arrival of the SR whose NTP middle bits are lsr.
func (st *rtcpState) srAt(lsr uint32) (int64, bool) {
	for i := range st.srs {
		sr := &st.srs[i]
		if sr.used.Load() && sr.ntpMid.Load() == lsr {
			return sr.arrival.Load(), true
		}
	}
	return 0, false
}

// readBlocks reads count report blocks (24 bytes each). The sources they
// report on were sent by the sink's party, whose SRs passed through the
// sink: that is where LSR is looked up.
func (s *Stream) readBlocks(st *rtcpState, b []byte, count int, monoNs, nowNs int64, cfg *streamConfig) {
	var peerSRs *rtcpState
	if cfg.sink != nil {
		peerSRs = cfg.sink.rtcp.Load()
	}
	for i := 0; i < count && len(b) >= 24; i++ {
		blk := b[:24]
		b = b[24:]
		ssrc := binary.BigEndian.Uint32(blk)
		fraction := uint32(blk[4])
		cum := int32(binary.BigEndian.Uint32(blk[4:])&0xffffff<<8) >> 8 // 24-bit signed
		jitter := binary.BigEndian.Uint32(blk[12:])
		lsr := binary.BigEndian.Uint32(blk[16:])
		dlsr := binary.BigEndian.Uint32(blk[20:])
		var rtt int64
		if lsr != 0 && peerSRs != nil {
			if sent, ok := peerSRs.srAt(lsr); ok {
				// DLSR is in 1/65536 s.
				rtt = monoNs - sent - int64(dlsr)*1e9/65536
				if rtt < 0 {
					rtt = 0
				}
			}
		}
		rate := uint32(8000)
		if cfg.sink != nil {
			if r := cfg.sink.clockRateOf(ssrc); r != 0 {
				rate = r
			}
		}
		st.noteReport(ssrc, fraction, cum, jitter, rate, rtt, nowNs)
	}
}

// clockRateOf is the clock rate of the payload type source ssrc last sent
// on s, 0 when s has not seen it.
func (s *Stream) clockRateOf(ssrc uint32) uint32 {
	t := s.ssrcs.Load()
	if t == nil {
		return 0
	}
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.used.Load() && sl.ssrc.Load() == ssrc {
			return clockRate(s.state.Load().cfg.rates, uint8(sl.pt.Load()))
		}
	}
	return 0
}

func (st *rtcpState) noteReport(ssrc, fraction uint32, cum int32, jitter, rate uint32, rttNs, nowNs int64) {
	var r, free, stalest *report
	for i := range st.reports {
		x := &st.reports[i]
		switch {
		case !x.used.Load():
			if free == nil {
				free = x
			}
		case x.ssrc.Load() == ssrc:
			r = x
		case stalest == nil || x.at.Load() < stalest.at.Load():
			stalest = x
		}
	}
	if r == nil {
		r = free
		if r == nil {
			r = stalest
		}
		r.used.Store(false)
		r.mosSum.Store(0)
		r.mosSamples.Store(0)
		r.mosMin.Store(0)
		r.mosMax.Store(0)
		r.rttNs.Store(0)
		r.ssrc.Store(ssrc)
		r.used.Store(true)
	}
	r.fraction.Store(fraction)
	r.cumLost.Store(cum)
	r.jitter.Store(jitter)
	r.rate.Store(rate)
	if rttNs > 0 {
		r.rttNs.Store(rttNs)
	}
	r.at.Store(nowNs)
	jitterMs := float64(jitter) * 1000 / float64(rate)
	mos := uint32(math.Round(1000 * MOS(float64(fraction)/256, jitterMs, float64(r.rttNs.Load())/1e6)))
	r.mosL.Store(mos)
	r.mosSum.Add(uint64(mos))
	if n := r.mosSamples.Add(1); n == 1 || mos < r.mosMin.Load() {
		r.mosMin.Store(mos)
	}
	if mos > r.mosMax.Load() {
		r.mosMax.Store(mos)
	}
}

func (st *rtcpState) snapshot() []ReportStats {
	var out []ReportStats
	for i := range st.reports {
		r := &st.reports[i]
		if !r.used.Load() {
			continue
		}
		rate := r.rate.Load()
		if rate == 0 {
			rate = 8000
		}
		rs := ReportStats{
			SSRC:           r.ssrc.Load(),
			FractionLost:   float64(r.fraction.Load()) / 256,
			CumulativeLost: r.cumLost.Load(),
			JitterMs:       float64(r.jitter.Load()) * 1000 / float64(rate),
			RTTLegMs:       float64(r.rttNs.Load()) / 1e6,
			At:             time.Unix(0, r.at.Load()),
			MOS:            float64(r.mosL.Load()) / 1000,
			MOSMin:         float64(r.mosMin.Load()) / 1000,
			MOSMax:         float64(r.mosMax.Load()) / 1000,
			Samples:        r.mosSamples.Load(),
		}
		if rs.Samples > 0 {
			rs.MOSAvg = float64(r.mosSum.Load()) / float64(rs.Samples) / 1000
		}
		out = append(out, rs)
	}
	return out
}

// MOS estimates the mean opinion score (1.0 to 4.5) of a G.711-like voice
// stream from its loss (0..1), jitter and round trip in milliseconds, with
// the simplified E-model (ITU-T G.107) that monitoring tools and the
// incumbent use: an effective latency of RTT + 2×jitter + 10 ms lowers R from
// 93.2, each percent of loss by 2.5.
func MOS(loss, jitterMs, rttMs float64) float64 {
	eff := rttMs + 2*jitterMs + 10
	r := 93.2 - eff/40
	if eff >= 160 {
		r = 93.2 - (eff-120)/10
	}
	r -= 2.5 * loss * 100
	if r < 0 {
		return 1
	}
	if r > 100 {
		r = 100
	}
	m := 1 + 0.035*r + 0.000007*r*(r-60)*(100-r)
	return math.Min(math.Max(m, 1), 4.5)
}
