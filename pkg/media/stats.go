// SPDX-License-Identifier: Apache-2.0

package media

import (
	"math"
	"net/netip"
	"sync/atomic"
	"time"
)

// StreamStats is a snapshot of one Stream.
type StreamStats struct {
	In  Counters // received from this stream's party (sources that passed the checks)
	Out Counters // sent to this stream's party (forwarded from its sink's party)
	// Dropped counts datagrams received on this stream and not forwarded: rejected
	// sources, no sink, sink with no endpoint, truncated, failed sends.
	Dropped uint64
	// Rejected is the part of Dropped refused by the source checks (a hijack or
	// injection attempt, or a stale peer after latching).
	Rejected uint64
	Endpoint netip.AddrPort // where packets to this party go now; invalid if nowhere
	// Confirmed means the source is latched: the rule will not change until the
	// next Configure (with Learning Off: the first packet has arrived).
	Confirmed bool
	// Kernel means the fast path forwards this stream now; In/Out include
	// what it counted, KernelIn is that part of In.
	Kernel   bool
	KernelIn Counters
	SSRCs    []SSRCStats // RTP received on this stream, up to 4 SSRCs
	// Reports are what the party said in RTCP about the media it receives
	// (what the relay sends it), with a MOS estimate.
	Reports []ReportStats
}

// Counters are totals of one direction of one stream. Bytes are UDP payload
// bytes. Errors are receive failures and datagrams over MaxPacketSize (In) or
// failed sends (Out).
type Counters struct {
	Packets, Bytes, Errors uint64
	LastPacket             time.Time // zero if none yet
}

// SSRCStats are RFC 3550 receiver statistics of one SSRC received on a stream.
type SSRCStats struct {
	SSRC       uint32
	Packets    uint64 // valid RTP packets, duplicates included
	Lost       int64  // expected minus received (RFC 3550 A.3); negative with duplicates we could not see
	Duplicates uint64
	Reordered  uint64  // arrived after a higher sequence number
	Jitter     float64 // interarrival jitter (RFC 3550 A.8), in timestamp units
	JitterMs   float64 // the same in milliseconds
	HighestSeq uint32  // extended highest sequence number received
	// PayloadType of the last packet.
	PayloadType uint8
	// MOS is the relay's own estimate from the loss and jitter it measured
	// on this source (no round trip: the relay is one end of the leg).
	MOS float64
}

// rawCounters is one direction's totals in the shape of the XDP fast path's
// per-stream stats slot (fastpath.md §2.5): plain integers updated with atomic
// adds by whichever path forwards, so a kernel-filled slot and this one can be
// summed. LastSeenNs is Unix time in nanoseconds.
type rawCounters struct {
	Packets    uint64
	Bytes      uint64
	Errors     uint64
	LastSeenNs int64
}

func (c *rawCounters) add(bytes int, nowNs int64) {
	atomic.AddUint64(&c.Packets, 1)
	atomic.AddUint64(&c.Bytes, uint64(bytes))
	atomic.StoreInt64(&c.LastSeenNs, nowNs)
}

func (c *rawCounters) addError() { atomic.AddUint64(&c.Errors, 1) }

func (c *rawCounters) snapshot() Counters {
	out := Counters{
		Packets: atomic.LoadUint64(&c.Packets),
		Bytes:   atomic.LoadUint64(&c.Bytes),
		Errors:  atomic.LoadUint64(&c.Errors),
	}
	if ns := atomic.LoadInt64(&c.LastSeenNs); ns != 0 {
		out.LastPacket = time.Unix(0, ns)
	}
	return out
}

const (
	maxSSRCs    = 4    // per stream, like the kernel module; the stalest slot is reused
	maxDropout  = 3000 // RFC 3550 A.1
	maxMisorder = 100
	seqMod      = 1 << 16
	dupWindow   = 64 // sequence numbers behind the highest checked for duplicates
)

// ssrcTable tracks the SSRCs of one receiving stream. Only the stream's worker
// writes it; Stats reads the published atomics of each slot, so a snapshot is
// consistent per field, not across fields, which is enough for polling.
type ssrcTable struct {
	slots [maxSSRCs]ssrcSlot
}

type ssrcSlot struct {
	// Published for Stats.
	used       atomic.Bool
	ssrc       atomic.Uint32
	packets    atomic.Uint64
	lost       atomic.Int64
	dups       atomic.Uint64
	reordered  atomic.Uint64
	jitterBits atomic.Uint64 // float64 bits, timestamp units
	rate       atomic.Uint32 // clock rate jitter was last measured in
	highest    atomic.Uint32
	pt         atomic.Uint32

	// Worker-private sequence and jitter state.
	seq seqState
}

type seqState struct {
	started   bool
	maxSeq    uint16
	cycles    uint32 // wraps, shifted left 16
	baseSeq   uint32 // extended sequence number of the first packet (after a resync)
	badSeq    uint32 // seqMod+1 when no resync is pending
	received  uint64 // distinct packets since baseSeq
	lostAcc   int64  // loss carried over from before a resync
	window    uint64 // bit i set: maxSeq-i was received
	dups      uint64
	reordered uint64
	packets   uint64

	haveTransit bool
	lastArrNs   int64
	lastTS      uint32
	lastRate    uint32
	jitter      float64
	lastUseNs   int64
}

// update accounts one valid RTP packet that arrived at arrNs (monotonic) and
// measures jitter with rate (0 = unknown, skip).
func (t *ssrcTable) update(h rtpHeader, rate uint32, arrNs int64) {
	sl := t.slot(h.ssrc, arrNs)
	st := &sl.seq
	st.lastUseNs = arrNs
	st.packets++
	if st.account(h.seq) {
		st.measureJitter(h.ts, rate, arrNs)
	}
	sl.packets.Store(st.packets)
	sl.lost.Store(st.lost())
	sl.dups.Store(st.dups)
	sl.reordered.Store(st.reordered)
	sl.highest.Store(st.cycles + uint32(st.maxSeq))
	sl.jitterBits.Store(math.Float64bits(st.jitter))
	sl.rate.Store(st.lastRate)
	sl.pt.Store(uint32(h.pt))
}

// slot finds the SSRC's slot, or takes a free one, or the one unused longest.
func (t *ssrcTable) slot(ssrc uint32, nowNs int64) *ssrcSlot {
	var free, stalest *ssrcSlot
	for i := range t.slots {
		sl := &t.slots[i]
		if !sl.used.Load() {
			if free == nil {
				free = sl
			}
			continue
		}
		if sl.ssrc.Load() == ssrc {
			return sl
		}
		if stalest == nil || sl.seq.lastUseNs < stalest.seq.lastUseNs {
			stalest = sl
		}
	}
	sl := free
	if sl == nil {
		sl = stalest
	}
	sl.used.Store(false)
	sl.seq = seqState{lastUseNs: nowNs}
	sl.packets.Store(0)
	sl.lost.Store(0)
	sl.dups.Store(0)
	sl.reordered.Store(0)
	sl.jitterBits.Store(0)
	sl.rate.Store(0)
	sl.ssrc.Store(ssrc)
	sl.used.Store(true)
	return sl
}

func (t *ssrcTable) snapshot() []SSRCStats {
	var out []SSRCStats
	for i := range t.slots {
		sl := &t.slots[i]
		if !sl.used.Load() {
			continue
		}
		j := math.Float64frombits(sl.jitterBits.Load())
		s := SSRCStats{
			SSRC:        sl.ssrc.Load(),
			Packets:     sl.packets.Load(),
			Lost:        sl.lost.Load(),
			Duplicates:  sl.dups.Load(),
			Reordered:   sl.reordered.Load(),
			Jitter:      j,
			HighestSeq:  sl.highest.Load(),
			PayloadType: uint8(sl.pt.Load()),
		}
		if r := sl.rate.Load(); r != 0 {
			s.JitterMs = j * 1000 / float64(r)
		}
		loss := 0.0
		if s.Lost > 0 {
			loss = float64(s.Lost) / float64(s.Packets+uint64(s.Lost))
		}
		s.MOS = MOS(loss, s.JitterMs, 0)
		out = append(out, s)
	}
	return out
}

func (st *seqState) start(seq uint16) {
	st.started = true
	st.maxSeq = seq
	st.cycles = 0
	st.baseSeq = uint32(seq)
	st.badSeq = seqMod + 1
	st.received = 1
	st.window = 1
	st.haveTransit = false
}

func (st *seqState) expected() int64 {
	return int64(st.cycles) + int64(st.maxSeq) - int64(st.baseSeq) + 1
}

func (st *seqState) lost() int64 { return st.lostAcc + st.expected() - int64(st.received) }

// account runs the RFC 3550 A.1 sequence checks, without the probation period
// (a relay wants the first packet counted), plus a 64-packet window to tell
// duplicates from late packets. It reports whether the packet is new and so
// should feed the jitter estimate.
func (st *seqState) account(seq uint16) bool {
	if !st.started {
		st.start(seq)
		return true
	}
	udelta := seq - st.maxSeq
	switch {
	case udelta == 0:
		st.dups++
		return false
	case udelta < maxDropout: // in order, maybe with a gap
		if seq < st.maxSeq {
			st.cycles += seqMod
		}
		st.maxSeq = seq
		if udelta >= dupWindow {
			st.window = 0
		} else {
			st.window <<= udelta
		}
		st.window |= 1
		st.received++
		st.badSeq = seqMod + 1
		return true
	case udelta > seqMod-maxMisorder: // late
		back := seqMod - int(udelta)
		if back < dupWindow {
			bit := uint64(1) << back
			if st.window&bit != 0 {
				st.dups++
				return false
			}
			st.window |= bit
		}
		st.reordered++
		st.received++
		return true
	default: // a jump: the sender restarted unless this is a one-off
		if uint32(seq) == st.badSeq {
			st.lostAcc = st.lost()
			st.start(seq)
			return true
		}
		st.badSeq = (uint32(seq) + 1) & (seqMod - 1)
		return false
	}
}

// measureJitter is RFC 3550 A.8 written with differences so that no absolute
// time is scaled by the clock rate: D = (Rj-Ri) - (Sj-Si), J += (|D|-J)/16.
func (st *seqState) measureJitter(ts, rate uint32, arrNs int64) {
	if rate == 0 {
		st.haveTransit = false
		return
	}
	if st.haveTransit && rate == st.lastRate {
		dArr := float64(arrNs-st.lastArrNs) * float64(rate) / 1e9
		dTS := float64(int32(ts - st.lastTS))
		d := math.Abs(dArr - dTS)
		st.jitter += (d - st.jitter) / 16
	}
	st.haveTransit = true
	st.lastArrNs = arrNs
	st.lastTS = ts
	st.lastRate = rate
}
