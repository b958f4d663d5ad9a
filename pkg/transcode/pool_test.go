// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// The queue refuses when full, hands items over in order with their bytes,
// and survives many laps and many producers.
func TestQueue(t *testing.T) {
	var q queue
	q.alloc(4)
	b := new(Bridge)
	if sl, _ := q.peek(); sl != nil {
		t.Fatal("an empty queue has an item")
	}
	for lap := range 100 {
		for i := range 4 {
			if !q.put(b, uint8(i%2), itemRTCP, int64(lap), []byte{byte(lap), byte(i)}) {
				t.Fatalf("lap %d: put %d refused", lap, i)
			}
		}
		if q.put(b, 0, itemRTP, 0, []byte{9}) {
			t.Fatal("a full queue took a fifth item")
		}
		for i := range 4 {
			sl, data := q.peek()
			if sl == nil || sl.b != b || sl.side != uint8(i%2) || sl.kind != itemRTCP || sl.at != int64(lap) ||
				!bytes.Equal(data, []byte{byte(lap), byte(i)}) {
				t.Fatalf("lap %d item %d: %+v % x", lap, i, sl, data)
			}
			q.release(sl)
			if sl.b != nil {
				t.Fatal("a released slot keeps its bridge")
			}
		}
	}

	// Producers on several goroutines, one consumer: every item once.
	var big queue
	big.alloc(64)
	const producers, each = 4, 5000
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < each; {
				if big.put(b, uint8(p), itemRTP, int64(i), []byte{byte(p), byte(i >> 8), byte(i)}) {
					i++
				}
			}
		})
	}
	next := make([]int, producers)
	for got := 0; got < producers*each; {
		sl, data := big.peek()
		if sl == nil {
			continue
		}
		p := int(sl.side)
		if i := int(data[1])<<8 | int(data[2]); i != next[p]%65536 || int(sl.at) != next[p] {
			t.Fatalf("producer %d: item %d, want %d", p, i, next[p])
		}
		next[p]++
		big.release(sl)
		got++
	}
	wg.Wait()
}

func TestTimerHeap(t *testing.T) {
	var h timerHeap
	r := rand.New(rand.NewPCG(1, 2))
	var want []int64
	for range 1000 {
		d := r.Int64N(1e6)
		want = append(want, d)
		h.push(timer{due: d})
	}
	slices.Sort(want)
	for i, w := range want {
		if got := h.pop().due; got != w {
			t.Fatalf("pop %d: %d, want %d", i, got, w)
		}
	}
}
