// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync/atomic"
)

// ring is one recording's queue between the media workers (producers) and
// the writer (the one consumer): variable-length records in a byte ring of
// fixed size, allocated when the recording starts. A record never wraps: one
// that does not fit before the end leaves a skip mark and starts at 0.
//
// A call's streams share one media worker, so there is one producer in
// practice; a second one arriving at the same instant (a stream placed on
// another worker) finds the ring busy and drops its copy, counted, rather
// than wait. Producers never block, lock or allocate.
type ring struct {
	buf  []byte
	size uint64 // len(buf), a multiple of recordAlign

	busy   atomic.Bool   // a producer (or the writer, sealing) is in
	closed atomic.Bool   // sealed: the recording has ended
	head   atomic.Uint64 // next byte to write (monotonic); the producer's
	tail   atomic.Uint64 // next byte to read (monotonic); the writer's
}

const (
	recordAlign = 8
	// Record header: total length (u32), payload length (u32, skipMark for
	// a skip), time (i64 Unix ns), source and destination address (16
	// bytes each, IPv4 mapped), source and destination port (u16 each).
	hdrLen   = 56
	skipMark = ^uint32(0)
)

func newRing(size int) *ring {
	size &^= recordAlign - 1
	return &ring{buf: make([]byte, size), size: uint64(size)}
}

func align(n uint64) uint64 { return (n + recordAlign - 1) &^ (recordAlign - 1) }

// putResult is what became of one put.
type putResult uint8

const (
	putOK     putResult = iota
	putHalf             // queued, and the ring is now past half full: wake the writer
	putDrop             // full, or another producer was in: counted as dropped
	putClosed           // the recording has ended: not counted
)

// put copies one datagram into the ring.
func (q *ring) put(ns int64, src, dst netip.AddrPort, data []byte) putResult {
	if !q.busy.CompareAndSwap(false, true) {
		return putDrop
	}
	defer q.busy.Store(false)
	if q.closed.Load() {
		return putClosed
	}
	need := align(hdrLen + uint64(len(data)))
	h, t := q.head.Load(), q.tail.Load()
	pos := h % q.size
	var waste uint64
	if pos+need > q.size {
		waste = q.size - pos
	}
	if h+waste+need-t > q.size {
		return putDrop
	}
	if waste > 0 {
		binary.LittleEndian.PutUint32(q.buf[pos:], uint32(waste))
		binary.LittleEndian.PutUint32(q.buf[pos+4:], skipMark)
		h += waste
		pos = 0
	}
	b := q.buf[pos : pos+need]
	binary.LittleEndian.PutUint32(b[0:], uint32(need))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
	binary.LittleEndian.PutUint64(b[8:], uint64(ns))
	sa, da := src.Addr().As16(), dst.Addr().As16()
	copy(b[16:32], sa[:])
	copy(b[32:48], da[:])
	binary.LittleEndian.PutUint16(b[48:], src.Port())
	binary.LittleEndian.PutUint16(b[50:], dst.Port())
	copy(b[hdrLen:], data)
	before := h - t
	q.head.Store(h + need)
	if after := h + need - t; before < q.size/2 && after >= q.size/2 {
		return putHalf
	}
	return putOK
}

// seal ends the ring: once it returns no producer is writing and none
// will, so a last drain takes everything that was ever queued.
func (q *ring) seal() {
	q.closed.Store(true)
	for !q.busy.CompareAndSwap(false, true) {
		runtime.Gosched() // a producer is copying one datagram: nanoseconds
	}
	q.busy.Store(false)
}

// record is one queued datagram as the writer reads it; data points into
// the ring and is valid until the writer moves on.
type record struct {
	ns       int64
	src, dst netip.AddrPort
	data     []byte
}

// drain hands every queued record to fn, in order, freeing each after fn
// returns. The writer's call only.
func (q *ring) drain(fn func(*record)) {
	t := q.tail.Load()
	h := q.head.Load()
	var r record
	for t < h {
		pos := t % q.size
		b := q.buf[pos:]
		n := uint64(binary.LittleEndian.Uint32(b[0:]))
		if dl := binary.LittleEndian.Uint32(b[4:]); dl != skipMark {
			r.ns = int64(binary.LittleEndian.Uint64(b[8:]))
			r.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[16:32])).Unmap(), binary.LittleEndian.Uint16(b[48:]))
			r.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[32:48])).Unmap(), binary.LittleEndian.Uint16(b[50:]))
			r.data = b[hdrLen : hdrLen+uint64(dl)]
			fn(&r)
		}
		t += n
		q.tail.Store(t)
	}
}

// empty reports whether nothing is queued.
func (q *ring) empty() bool { return q.head.Load() == q.tail.Load() }
