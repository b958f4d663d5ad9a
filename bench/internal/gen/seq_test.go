// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"math"
	"testing"
)

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name string
		seqs []uint64
		want []arrival
	}{
		{"in order", []uint64{0, 1, 2, 3}, []arrival{inOrder, inOrder, inOrder, inOrder}},
		{"gap is not reordering", []uint64{0, 5, 6}, []arrival{inOrder, inOrder, inOrder}},
		{"swap", []uint64{0, 2, 1, 3}, []arrival{inOrder, inOrder, reordered, inOrder}},
		{"duplicate", []uint64{0, 1, 1, 2, 0}, []arrival{inOrder, inOrder, duplicate, inOrder, duplicate}},
		{"late beyond the window", []uint64{0, 100, 1, 36}, []arrival{inOrder, inOrder, reordered, reordered}},
		{"duplicate of a late packet", []uint64{10, 12, 11, 11}, []arrival{inOrder, inOrder, reordered, duplicate}},
		{"jump wipes the bitmap", []uint64{0, 1, 200, 199, 1}, []arrival{inOrder, inOrder, inOrder, reordered, reordered}},
		{"starts mid-stream", []uint64{1 << 40, 1<<40 + 1, 1<<40 - 1}, []arrival{inOrder, inOrder, reordered}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr seqTracker
			for i, s := range tc.seqs {
				if got := tr.observe(s); got != tc.want[i] {
					t.Errorf("packet %d (seq %d): got %d, want %d", i, s, got, tc.want[i])
				}
			}
		})
	}
}

func TestJitter(t *testing.T) {
	// Constant transit: no jitter. Alternating ±1 ms: converges to 2 ms
	// (the transit difference between consecutive packets).
	j := 0.0
	for range 100 {
		j = jitterUpdate(j, 5000, 5000)
	}
	if j != 0 {
		t.Errorf("constant transit: jitter %v, want 0", j)
	}
	prev := int64(0)
	for i := range 1000 {
		tr := int64(1_000_000)
		if i%2 == 1 {
			tr = 3_000_000
		}
		j = jitterUpdate(j, prev, tr)
		prev = tr
	}
	if math.Abs(j-2_000_000) > 1 {
		t.Errorf("alternating transit: jitter %v, want 2e6", j)
	}
}
