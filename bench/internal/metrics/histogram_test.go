// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 123456789, 1 << 47} {
		b := bucket(v)
		lo, w := bucketRange(b)
		if v < lo || v >= lo+w {
			t.Errorf("value %d in bucket %d = [%d, %d)", v, b, lo, lo+w)
		}
		if v >= subCount && float64(w)/float64(lo) > 1.0/subCount+1e-12 {
			t.Errorf("bucket %d of %d: width %d over %d is coarser than 1/%d", b, v, w, lo, subCount)
		}
	}
	if got := bucket(math.MaxUint64); got != numBuckets-1 {
		t.Errorf("bucket(max) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []int64
		q      float64
		want   float64
		tol    float64 // relative
	}{
		{"single", []int64{5}, 0.5, 5, 0},
		{"small exact p50", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5, 0},
		{"small exact p99", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.99, 10, 0},
		{"p0 is the minimum", []int64{40, 50, 60}, 0, 40, 0},
		{"clamped to max", []int64{1000, 1000, 1000}, 0.999, 1000, 0},
		{"large values", []int64{10_000, 20_000, 30_000, 40_000, 1_000_000}, 0.8, 40_000, 1.0 / subCount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tc.values {
				h.Record(v)
			}
			got := h.Quantile(tc.q)
			if math.Abs(got-tc.want) > tc.tol*tc.want {
				t.Errorf("Quantile(%v) = %v, want %v (±%.1f%%)", tc.q, got, tc.want, 100*tc.tol)
			}
		})
	}
}

func TestQuantileAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		// A long-tailed latency-like distribution: 20 µs with a tail to ms.
		vals[i] = int64(20_000 * math.Exp(r.NormFloat64()*0.8))
		h.Record(vals[i])
	}
	slices.Sort(vals)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := float64(vals[int(math.Ceil(q*float64(len(vals))))-1])
		got := h.Quantile(q)
		if rel := math.Abs(got-exact) / exact; rel > 1.0/subCount {
			t.Errorf("p%v = %.0f, exact %.0f: off by %.2f%%", q*100, got, exact, 100*rel)
		}
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(vals))
	}
}

func TestMergeAndNegative(t *testing.T) {
	var a, b Histogram
	a.Record(10)
	a.Record(-5)
	b.Record(1000)
	b.Record(20)
	a.Merge(&b)
	if a.Count() != 3 || a.Negative() != 1 {
		t.Errorf("Count, Negative = %d, %d; want 3, 1", a.Count(), a.Negative())
	}
	if a.Max() != 1000 {
		t.Errorf("Max = %d, want 1000", a.Max())
	}
	if got, want := a.Mean(), (10.0+1000+20)/3; math.Abs(got-want) > 1e-9 {
		t.Errorf("Mean = %v, want %v", got, want)
	}
	if got := a.Quantile(0); got != 10 {
		t.Errorf("min after merge = %v, want 10", got)
	}
	var empty Histogram
	if !math.IsNaN(empty.Quantile(0.5)) || !math.IsNaN(empty.Mean()) {
		t.Errorf("empty histogram: quantile %v, mean %v; want NaN", empty.Quantile(0.5), empty.Mean())
	}
	a.Reset()
	if a.Count() != 0 {
		t.Errorf("Count after Reset = %d", a.Count())
	}
}

func TestRecordNoAllocs(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(12345) }); n != 0 {
		t.Errorf("Record allocates %.1f times", n)
	}
}
