// SPDX-License-Identifier: Apache-2.0

package gen

// seqWindow is how far back (in packets) duplicates are told apart from
// late packets.
const seqWindow = 64

// seqTracker classifies each arriving sequence number of one stream as new
// in order, late (reordered), or a duplicate, with a 64-packet bitmap
// behind the highest sequence seen.
type seqTracker struct {
	have   bool
	maxSeq uint64
	seen   uint64 // bit i: maxSeq-i arrived
}

// arrival is what seqTracker.observe found.
type arrival uint8

const (
	inOrder   arrival = iota // the highest sequence so far (gaps are loss, counted elsewhere)
	reordered                // below the highest, not seen before
	duplicate                // seen before
)

func (t *seqTracker) observe(seq uint64) arrival {
	if !t.have {
		t.have, t.maxSeq, t.seen = true, seq, 1
		return inOrder
	}
	if seq > t.maxSeq {
		shift := seq - t.maxSeq
		if shift >= seqWindow {
			t.seen = 0
		} else {
			t.seen <<= shift
		}
		t.seen |= 1
		t.maxSeq = seq
		return inOrder
	}
	d := t.maxSeq - seq
	if d >= seqWindow {
		// Too old to remember: call it late, not a duplicate.
		return reordered
	}
	bit := uint64(1) << d
	if t.seen&bit != 0 {
		return duplicate
	}
	t.seen |= bit
	return reordered
}

// jitterUpdate is RFC 3550 §6.4.1's interarrival jitter estimator on
// transit times in nanoseconds.
func jitterUpdate(j float64, prevTransit, transit int64) float64 {
	d := float64(transit - prevTransit)
	if d < 0 {
		d = -d
	}
	return j + (d-j)/16
}
