// SPDX-License-Identifier: Apache-2.0

package media

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// injectSlots is how many datagrams other goroutines can have queued on one
// worker; more are refused and counted, never waited for. A transcoding
// worker on the same CPU can run for a scheduler slice (10 ms) before the
// media worker is polled again, delivering a packet every 5–40 µs: the ring
// holds 1,024 so that such a slice fits (at 256 the bench's transcoded
// calls lost packets here with the CPU a quarter idle). The ring is only
// allocated on a worker's first injection.
const injectSlots = 1024

// injectQueue carries datagrams from other goroutines (a DTLS handshake, a
// transcoder, another worker) to the worker that owns the socket they leave
// by: a bounded lock-free multi-producer, single-consumer ring (Vyukov's
// sequence-numbered slots) of preallocated buffers, so queuing neither locks
// nor allocates and the worker is never made to wait.
type injectQueue struct {
	once  sync.Once
	size  int // bytes per slot
	slots []injectSlot
	buf   []byte
	head  atomic.Uint64 // next position to fill
	tail  uint64        // next position to send; the worker's
}

type injectSlot struct {
	seq     atomic.Uint64
	s       *Stream
	dst     netip.AddrPort
	deliver bool
	n       int
}

func (q *injectQueue) init(size int) { q.size = size }

// alloc makes the ring on first use: most relays never inject.
func (q *injectQueue) alloc() {
	q.once.Do(func() {
		q.slots = make([]injectSlot, injectSlots)
		q.buf = make([]byte, injectSlots*q.size)
		for i := range q.slots {
			q.slots[i].seq.Store(uint64(i))
		}
	})
}

// put copies b into the ring for s; false when the ring is full or b too big.
func (q *injectQueue) put(s *Stream, b []byte, dst netip.AddrPort, deliver bool) bool {
	if len(b) > q.size-tailroom {
		return false
	}
	q.alloc()
	pos := q.head.Load()
	var sl *injectSlot
	for {
		sl = &q.slots[pos%injectSlots]
		seq := sl.seq.Load()
		switch d := int64(seq) - int64(pos); {
		case d == 0:
			if q.head.CompareAndSwap(pos, pos+1) {
				goto claimed
			}
			pos = q.head.Load()
		case d < 0:
			return false // full
		default:
			pos = q.head.Load()
		}
	}
claimed:
	i := int(pos % injectSlots)
	copy(q.buf[i*q.size:], b)
	sl.s, sl.dst, sl.deliver, sl.n = s, dst, deliver, len(b)
	sl.seq.Store(pos + 1)
	return true
}

// empty reports whether nothing is queued (a claimed slot still being
// written counts as queued); the worker's call only.
func (q *injectQueue) empty() bool { return q.head.Load() == q.tail }

// take hands the oldest queued datagram to fn and frees its slot; false when
// nothing is queued. The worker's call only.
func (q *injectQueue) take(fn func(s *Stream, b []byte, dst netip.AddrPort, deliver bool)) bool {
	if q.empty() {
		return false
	}
	sl := &q.slots[q.tail%injectSlots]
	if sl.seq.Load() != q.tail+1 {
		return false // claimed, not yet written
	}
	i := int(q.tail % injectSlots)
	fn(sl.s, q.buf[i*q.size:i*q.size+sl.n:(i+1)*q.size], sl.dst, sl.deliver)
	sl.s = nil
	sl.seq.Store(q.tail + injectSlots)
	q.tail++
	return true
}
