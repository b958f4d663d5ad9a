// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"math"
	"math/bits"
)

// subBits sets the histogram's resolution: 2^subBits buckets per power of
// two, so any recorded value is reported within 1/64 (1.6 %) of itself.
const (
	subBits    = 6
	subCount   = 1 << subBits
	maxExp     = 42 // values up to 2^48 ns (3 days) keep their resolution
	numBuckets = (maxExp + 1) * subCount
)

// Histogram counts non-negative values (nanoseconds) in log-linear buckets:
// fixed memory, no allocation per value, mergeable. Not safe for concurrent
// use: each generator worker owns one and they are merged afterwards.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      float64
	min, max int64
	negative uint64
}

// bucket maps a value to its bucket: values below subCount exactly, others
// by their top subBits+1 significant bits.
func bucket(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2*subCount)
	if e > maxExp-1 {
		return numBuckets - 1
	}
	return (e+1)*subCount + int(v>>e) - subCount
}

// bucketRange returns the smallest value of bucket b and its width.
func bucketRange(b int) (lo, width uint64) {
	if b < subCount {
		return uint64(b), 1
	}
	e := b/subCount - 1
	m := uint64(b%subCount + subCount)
	return m << e, 1 << e
}

// Record adds one value. Negative values (a clock step between sender and
// receiver) are counted apart and otherwise ignored.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		h.negative++
		return
	}
	h.counts[bucket(uint64(v))]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n > 0 {
		if h.n == 0 || o.min < h.min {
			h.min = o.min
		}
		if o.max > h.max {
			h.max = o.max
		}
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.negative += o.negative
}

// Reset empties the histogram.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of values recorded (negative ones excluded).
func (h *Histogram) Count() uint64 { return h.n }

// Negative is how many negative values were dropped.
func (h *Histogram) Negative() uint64 { return h.negative }

// Mean is the exact mean, NaN when empty.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return math.NaN()
	}
	return h.sum / float64(h.n)
}

// Max is the largest value recorded.
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns the value below which a fraction q of the values lie
// (nearest rank), as the middle of its bucket clamped to the observed
// min and max; NaN when empty.
func (h *Histogram) Quantile(q float64) float64 {
	if h.n == 0 {
		return math.NaN()
	}
	q = min(max(q, 0), 1)
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for b, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, w := bucketRange(b)
			v := float64(lo) + float64(w-1)/2
			return min(max(v, float64(h.min)), float64(h.max))
		}
	}
	return float64(h.max)
}
