// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"time"
)

// RTCP across a transcoder. A transcoded leg is two RTP sessions, not one:
// the relay is the sender of what each party receives (its own SSRC, its own
// packet counts, another clock) and the receiver of what each party sends, so
// RTCP is never forwarded across — a party's reports describe a stream the
// other party never saw. A Bridge reads what each party sends (its sender
// reports, for LSR/DLSR; its report block about the relay's stream) and
// sends each one the RTCP of an RFC 3550 participant: an SR about the stream
// the relay sends it, with one report block about the stream it sends, and
// an SDES CNAME.

const (
	rtcpSR   = 200
	rtcpRR   = 201
	rtcpSDES = 202

	// rtcpInterval is the mean time between the reports sent to a party
	// (RFC 3550 §6.2's minimum; the bandwidth of one audio stream's RTCP
	// never asks for more), randomised over [0.5, 1.5] of it.
	rtcpInterval = 5 * time.Second
	// rtcpFirst is the mean delay of the first report after media starts
	// (RFC 3550 §6.2 halves the minimum for the first one; a second of
	// media gives the first report block something to say).
	rtcpFirst = time.Second
	// rtcpSilentTimeout drops the report block about a party that stopped
	// sending (RFC 3550 §6.3.5: five intervals).
	rtcpSilentTimeout = 5 * rtcpInterval

	// ntpEpochOffset is 1900-01-01 to 1970-01-01 in seconds.
	ntpEpochOffset = 2208988800

	maxSentSRs = 4 // the relay's latest SRs to a party, for the RTT of its RRs
)

// ntpTime is the 64-bit NTP timestamp of Unix nanoseconds ns.
func ntpTime(ns int64) uint64 {
	sec := uint64(ns/1e9) + ntpEpochOffset
	frac := (uint64(ns%1e9) << 32) / 1e9
	return sec<<32 | frac
}

// clockUnits converts a duration in nanoseconds to units of an RTP clock of
// rate Hz without overflowing for days of call time.
func clockUnits(ns int64, rate int) int64 {
	return ns/1e9*int64(rate) + ns%1e9*int64(rate)/1e9
}

// rxStats follows the RTP a party sends, as an RFC 3550 receiver does for
// its report block: sequence numbers (Appendix A.1), losses (A.3) and
// interarrival jitter (A.8). The bridge's worker owns it.
type rxStats struct {
	active   bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32 // sequence number wraps, shifted left 16
	baseSeq  uint32
	badSeq   uint32 // the seq after a big jump; seqMod+1: none
	received uint32
	// At the previous report, for its fraction lost.
	expectedPrior, receivedPrior uint32

	clock       int   // the audio clock rate the jitter is in
	baseNs      int64 // arrival time origin, so arrivals fit clock units
	lastNs      int64 // latest arrival
	haveTransit bool
	transit     uint32
	jitter      uint32 // ×16, as A.8 keeps it
}

const (
	seqMod      = 1 << 16
	maxDropout  = 3000 // RFC 3550 A.1
	maxMisorder = 100
)

func (r *rxStats) initSeq(seq uint16) {
	r.baseSeq = uint32(seq)
	r.maxSeq = seq
	r.badSeq = seqMod + 1
	r.cycles = 0
	r.received = 0
	r.receivedPrior = 0
	r.expectedPrior = 0
	r.haveTransit = false
}

// update counts one packet of the party's stream (any of its payload types)
// that arrived at Unix ns at; audio says whether its timestamp is a sampling
// instant on the audio clock (not a telephone-event's start), which is what
// the jitter is computed from.
func (r *rxStats) update(h rtpHeader, at int64, clock int, audio bool) {
	if !r.active || h.ssrc != r.ssrc {
		// A new source: its numbers start over (RFC 3550 §8.2, A.1).
		*r = rxStats{active: true, ssrc: h.ssrc, clock: clock, baseNs: at}
		r.initSeq(h.seq)
	} else {
		switch udelta := h.seq - r.maxSeq; {
		case udelta < maxDropout:
			if h.seq < r.maxSeq {
				r.cycles += seqMod
			}
			r.maxSeq = h.seq
		case uint32(udelta) <= seqMod-maxMisorder:
			// A very large jump: believe it only when the next packet
			// follows on from it (the sender restarted).
			if uint32(h.seq) != r.badSeq {
				r.badSeq = uint32(h.seq+1) & (seqMod - 1)
				return
			}
			r.initSeq(h.seq)
		default:
			// A duplicate or reordered packet: counted, as A.1 does.
		}
	}
	r.received++
	r.lastNs = at
	if !audio || r.clock == 0 {
		return
	}
	arrival := uint32(clockUnits(at-r.baseNs, r.clock))
	transit := arrival - h.ts
	if r.haveTransit {
		d := int32(transit - r.transit)
		if d < 0 {
			d = -d
		}
		r.jitter += uint32(d) - (r.jitter+8)>>4
	}
	r.transit, r.haveTransit = transit, true
}

// reportBlock is one RFC 3550 §6.4.1 report block.
type reportBlock struct {
	ssrc     uint32
	fraction uint8
	cumLost  int32 // 24-bit signed on the wire
	extMax   uint32
	jitter   uint32
	lsr      uint32
	dlsr     uint32
}

// block makes the report block about the party's stream and starts the next
// reporting interval (A.3).
func (r *rxStats) block() reportBlock {
	extMax := r.cycles + uint32(r.maxSeq)
	expected := extMax - r.baseSeq + 1
	lost := int64(expected) - int64(r.received)
	lost = min(max(lost, -0x800000), 0x7fffff)
	expInterval := expected - r.expectedPrior
	r.expectedPrior = expected
	recvInterval := r.received - r.receivedPrior
	r.receivedPrior = r.received
	var fraction uint8
	if lostInterval := int64(expInterval) - int64(recvInterval); expInterval != 0 && lostInterval > 0 {
		fraction = uint8(min(lostInterval<<8/int64(expInterval), 255))
	}
	return reportBlock{ssrc: r.ssrc, fraction: fraction, cumLost: int32(lost), extMax: extMax, jitter: r.jitter >> 4}
}

// txStats is what the relay sent one party: the SR's sender info and the
// map from the output's RTP timestamps to time. The worker owns it.
type txStats struct {
	ssrc    uint32
	clock   int
	packets uint32
	octets  uint32
	// The timestamp of the latest audio (or CN) packet sent and when; the
	// SR's RTP timestamp is extrapolated from it.
	lastTS uint32
	lastNs int64
	// packets at the two latest reports: an SR is sent while the relay has
	// sent since the report before last (RFC 3550 §6.4).
	marks [2]uint32
	// The relay's latest SRs to the party: NTP middle bits and when, for
	// the round trip of the party's reports on them.
	srs  [maxSentSRs]sentSR
	nsrs int
}

type sentSR struct {
	mid uint32
	at  int64
}

// sent counts one RTP packet sent to the party at Unix ns now; timed says
// whether its timestamp is a sampling instant (audio, CN).
func (t *txStats) sent(pkt []byte, now int64, timed bool) {
	t.packets++
	t.octets += uint32(len(pkt) - rtpHeaderLen) // no CSRCs, extension or padding
	if timed {
		t.lastTS = binary.BigEndian.Uint32(pkt[4:8])
		t.lastNs = now
	}
}

// rtcpReport builds the compound RTCP packet for one party into buf (at
// least rtcpMaxLen bytes) and returns its length: an SR while the relay sends
// to the party (an RR before or after), a report block about the party's
// stream when it sends, and the SDES CNAME. It records the SR for RTT
// matching and starts the next reporting interval.
func rtcpReport(buf []byte, tx *txStats, rx *rxStats, srIn *partySR, cname string, now int64) int {
	sender := tx.packets != tx.marks[0]
	tx.marks[0], tx.marks[1] = tx.marks[1], tx.packets
	blocks := 0
	var blk reportBlock
	if rx.active && now-rx.lastNs < int64(rtcpSilentTimeout) {
		blocks = 1
		blk = rx.block()
		if srIn.at != 0 && srIn.ssrc == rx.ssrc {
			blk.lsr = srIn.mid
			blk.dlsr = uint32(clockUnits(now-srIn.at, 65536))
		}
	}
	n := 8
	if sender {
		n = 28
	}
	buf[0] = 0x80 | byte(blocks)
	buf[1] = rtcpRR
	binary.BigEndian.PutUint32(buf[4:8], tx.ssrc)
	if sender {
		buf[1] = rtcpSR
		ntp := ntpTime(now)
		ts := tx.lastTS + uint32(clockUnits(now-tx.lastNs, tx.clock))
		binary.BigEndian.PutUint64(buf[8:16], ntp)
		binary.BigEndian.PutUint32(buf[16:20], ts)
		binary.BigEndian.PutUint32(buf[20:24], tx.packets)
		binary.BigEndian.PutUint32(buf[24:28], tx.octets)
		copy(tx.srs[1:], tx.srs[:maxSentSRs-1])
		tx.srs[0] = sentSR{mid: uint32(ntp >> 16), at: now}
		tx.nsrs = min(tx.nsrs+1, maxSentSRs)
	}
	if blocks == 1 {
		b := buf[n : n+24]
		binary.BigEndian.PutUint32(b[0:4], blk.ssrc)
		binary.BigEndian.PutUint32(b[4:8], uint32(blk.cumLost)&0xffffff|uint32(blk.fraction)<<24)
		binary.BigEndian.PutUint32(b[8:12], blk.extMax)
		binary.BigEndian.PutUint32(b[12:16], blk.jitter)
		binary.BigEndian.PutUint32(b[16:20], blk.lsr)
		binary.BigEndian.PutUint32(b[20:24], blk.dlsr)
		n += 24
	}
	binary.BigEndian.PutUint16(buf[2:4], uint16(n/4-1))
	return n + putSDES(buf[n:], tx.ssrc, cname)
}

// rtcpMaxLen bounds what rtcpReport writes: SR, one block, SDES with a CNAME
// of at most 255 bytes.
const rtcpMaxLen = 28 + 24 + 8 + 2 + 255 + 4

// putSDES writes an SDES packet with one chunk: ssrc's CNAME (RFC 3550
// §6.5), the item list ended by a null octet and padded to 32 bits.
func putSDES(b []byte, ssrc uint32, cname string) int {
	cname = cname[:min(len(cname), 255)]
	n := 8 + 2 + len(cname)
	n += 4 - n%4 // at least one null octet ends the list
	b[0] = 0x81
	b[1] = rtcpSDES
	binary.BigEndian.PutUint16(b[2:4], uint16(n/4-1))
	binary.BigEndian.PutUint32(b[4:8], ssrc)
	b[8] = 1 // CNAME
	b[9] = byte(len(cname))
	copy(b[10:], cname)
	clear(b[10+len(cname) : n])
	return n
}

// partySR is the latest SR a party sent: its NTP timestamp's middle 32 bits
// (what the relay's LSR echoes) and its arrival (pool clock, Unix ns).
type partySR struct {
	ssrc uint32
	mid  uint32
	at   int64
}

// rtcpIn is what one compound RTCP packet from a party says that the
// bridge uses.
type rtcpIn struct {
	sr       bool // it carries an SR
	srSSRC   uint32
	ntpMid   uint32
	report   bool // it carries a report block about the relay's stream
	fraction uint8
	cumLost  int32
	jitter   uint32
	lsr      uint32
	dlsr     uint32
}

// parseRTCP walks a compound RTCP packet (RFC 3550 §6.1) for its SR and a
// report block about source ours; false when its framing does not hold
// together (what came before the bad part is still returned). It never
// allocates.
func parseRTCP(b []byte, ours uint32) (rtcpIn, bool) {
	var in rtcpIn
	if len(b) < 4 {
		return in, false
	}
	for len(b) > 0 {
		if len(b) < 4 || b[0]>>6 != 2 {
			return in, false
		}
		n := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if n > len(b) {
			return in, false
		}
		pkt := b[:n]
		count := int(b[0] & 0x1f)
		off := -1
		switch b[1] {
		case rtcpSR:
			if n >= 28 {
				in.sr = true
				in.srSSRC = binary.BigEndian.Uint32(pkt[4:8])
				in.ntpMid = binary.BigEndian.Uint32(pkt[10:14])
				off = 28
			}
		case rtcpRR:
			if n >= 8 {
				off = 8
			}
		}
		for i := 0; off >= 0 && i < count && off+24 <= n; i++ {
			blk := pkt[off : off+24]
			off += 24
			if binary.BigEndian.Uint32(blk[0:4]) != ours {
				continue
			}
			in.report = true
			in.fraction = blk[4]
			in.cumLost = int32(binary.BigEndian.Uint32(blk[4:8])<<8) >> 8
			in.jitter = binary.BigEndian.Uint32(blk[12:16])
			in.lsr = binary.BigEndian.Uint32(blk[16:20])
			in.dlsr = binary.BigEndian.Uint32(blk[20:24])
		}
		b = b[n:]
	}
	return in, true
}

// rtt is the round trip of a party's report block (RFC 3550 §6.4.1: arrival
// − LSR's SR − DLSR) against the relay's SRs, 0 when it names none of them.
func (t *txStats) rtt(lsr, dlsr uint32, at int64) int64 {
	if lsr == 0 {
		return 0
	}
	for _, sr := range t.srs[:t.nsrs] {
		if sr.mid == lsr {
			return max(at-sr.at-int64(dlsr)*1e9/65536, 0)
		}
	}
	return 0
}
