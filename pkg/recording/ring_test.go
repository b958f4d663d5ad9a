// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"
)

var (
	srcA = netip.MustParseAddrPort("192.0.2.10:4000")
	dstA = netip.MustParseAddrPort("[2001:db8::1]:30000")
)

func payload(i, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	for j := 4; j < n; j++ {
		b[j] = byte(i + j)
	}
	return b
}

func drainAll(q *ring) []record {
	var out []record
	q.drain(func(r *record) {
		c := *r
		c.data = append([]byte(nil), r.data...)
		out = append(out, c)
	})
	return out
}

func TestRingOrderAndWrap(t *testing.T) {
	q := newRing(1024)
	sent := 0
	var got []record
	// Odd sizes walk the records across the end of the buffer many times.
	for round := range 50 {
		for k := range 3 {
			n := 13 + (round*7+k*31)%200
			if r := q.put(int64(sent), srcA, dstA, payload(sent, n)); r == putDrop {
				t.Fatalf("round %d: put %d dropped with the ring drained", round, sent)
			}
			sent++
		}
		got = append(got, drainAll(q)...)
	}
	if len(got) != sent {
		t.Fatalf("drained %d of %d", len(got), sent)
	}
	for i, r := range got {
		if r.ns != int64(i) || r.src != srcA || r.dst != dstA || binary.BigEndian.Uint32(r.data) != uint32(i) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if want := payload(i, len(r.data)); !bytes.Equal(r.data, want) {
			t.Fatalf("record %d: payload differs", i)
		}
	}
	if !q.empty() {
		t.Error("ring not empty after drain")
	}
}

func TestRingFullDropsAndRecovers(t *testing.T) {
	q := newRing(1024)
	ok, halves := 0, 0
	for i := range 100 {
		switch q.put(int64(i), srcA, dstA, payload(i, 100)) {
		case putOK:
			ok++
		case putHalf:
			ok++
			halves++
		case putDrop:
		default:
			t.Fatal("unexpected result")
		}
	}
	// 156 bytes a record in 1024: six fit.
	if ok != 6 || halves != 1 {
		t.Errorf("%d queued (%d half-full signals), want 6 and 1", ok, halves)
	}
	if n := len(drainAll(q)); n != ok {
		t.Errorf("drained %d, want %d", n, ok)
	}
	if q.put(0, srcA, dstA, payload(0, 100)) == putDrop {
		t.Error("drained ring still full")
	}
	// A datagram bigger than the whole ring never fits.
	if q.put(0, srcA, dstA, make([]byte, 2000)) != putDrop {
		t.Error("oversized datagram queued")
	}
}

func TestRingSeal(t *testing.T) {
	q := newRing(4096)
	q.put(1, srcA, dstA, []byte("before"))
	q.seal()
	if r := q.put(2, srcA, dstA, []byte("after")); r != putClosed {
		t.Errorf("put after seal: %v, want putClosed", r)
	}
	if got := drainAll(q); len(got) != 1 || string(got[0].data) != "before" {
		t.Errorf("drained %+v", got)
	}
}

// A producer and the writer at once, under the race detector: everything
// queued comes out once, in order, intact.
func TestRingConcurrent(t *testing.T) {
	q := newRing(8192)
	const n = 20000
	var queued atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if r := q.put(int64(i), srcA, dstA, payload(i, 20+i%150)); r == putOK || r == putHalf {
				queued.Add(1)
			}
		}
	}()
	var got []int
	check := func(r *record) {
		i := int(binary.BigEndian.Uint32(r.data))
		if want := payload(i, len(r.data)); !bytes.Equal(r.data, want) || r.ns != int64(i) {
			t.Errorf("record %d corrupted", i)
		}
		got = append(got, i)
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		q.drain(check)
	}
	q.drain(check)
	if int64(len(got)) != queued.Load() {
		t.Fatalf("drained %d, %d were queued", len(got), queued.Load())
	}
	if len(got) == 0 {
		t.Fatal("nothing got through")
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("out of order at %d: %d after %d", i, got[i], got[i-1])
		}
	}
}
