// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"encoding/binary"
	"fmt"
)

// statsSize is sizeof(struct stream_stats): one cache line.
const statsSize = 64

// AllocSlot reserves a stream stats slot and zeroes it. Put it in the rules
// of the stream (both RTP and RTCP may share one) and keep it while the
// stream lives, across rule changes.
func (d *Datapath) AllocSlot() (uint32, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	d.mu.Lock()
	slot, ok := d.slots.alloc()
	d.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("%w (%d in use)", ErrSlotsExhausted, d.maxSlots)
	}
	if err := d.zeroSlot(slot); err != nil {
		d.mu.Lock()
		d.slots.free(slot)
		d.mu.Unlock()
		return 0, err
	}
	return slot, nil
}

// FreeSlot returns a slot. Remove the rules that use it first: a packet
// still matching one would count into the slot's next owner.
func (d *Datapath) FreeSlot(slot uint32) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	d.mu.Lock()
	ok := d.slots.free(slot)
	d.mu.Unlock()
	if !ok {
		return fmt.Errorf("free slot %d: %w", slot, ErrBadSlot)
	}
	return d.zeroSlot(slot)
}

// SlotsInUse is the number of allocated slots; capacity is MaxSlots.
func (d *Datapath) SlotsInUse() (inUse, capacity int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.slots.inUse, int(d.maxSlots)
}

func (d *Datapath) zeroSlot(slot uint32) error {
	var zero [statsSize]byte
	if _, err := d.stats.WriteAt(zero[:], int64(slot)*statsSize); err != nil {
		return fmt.Errorf("zero stats slot %d: %w", slot, err)
	}
	return nil
}

// StreamStats reads one slot straight from the shared memory (no syscall).
func (d *Datapath) StreamStats(slot uint32) (StreamStats, error) {
	if err := d.enter(); err != nil {
		return StreamStats{}, err
	}
	defer d.life.RUnlock()
	if slot >= d.maxSlots {
		return StreamStats{}, fmt.Errorf("read slot %d of %d: %w", slot, d.maxSlots, ErrBadSlot)
	}
	var b [statsSize]byte
	if _, err := d.stats.ReadAt(b[:], int64(slot)*statsSize); err != nil {
		return StreamStats{}, fmt.Errorf("read stats slot %d: %w", slot, err)
	}
	return decodeStats(b[:]), nil
}

// ReadAllStreamStats reads every slot (index = slot, MaxSlots entries) from
// the shared memory into dst, reusing its capacity, and returns it. Free
// slots read as zero. About 2 ms per 100,000 slots.
func (d *Datapath) ReadAllStreamStats(dst []StreamStats) ([]StreamStats, error) {
	if err := d.enter(); err != nil {
		return dst, err
	}
	defer d.life.RUnlock()
	n := int(d.maxSlots)
	if cap(dst) < n {
		dst = make([]StreamStats, n)
	}
	dst = dst[:n]
	const chunk = 1024
	buf := make([]byte, chunk*statsSize)
	for first := 0; first < n; first += chunk {
		cnt := min(chunk, n-first)
		b := buf[:cnt*statsSize]
		if _, err := d.stats.ReadAt(b, int64(first)*statsSize); err != nil {
			return dst, fmt.Errorf("read stats slots %d+%d: %w", first, cnt, err)
		}
		for i := range cnt {
			dst[first+i] = decodeStats(b[i*statsSize:])
		}
	}
	return dst, nil
}

// decodeStats reads struct stream_stats (host byte order).
func decodeStats(b []byte) StreamStats {
	ne := binary.NativeEndian
	_ = b[statsSize-1]
	return StreamStats{
		Packets:     ne.Uint64(b[0:]),
		Bytes:       ne.Uint64(b[8:]),
		LastSeen:    ne.Uint64(b[16:]),
		WrongSource: ne.Uint64(b[24:]),
		RTCPPackets: ne.Uint32(b[32:]),
		RTP: RTPStats{
			SSRC:       ne.Uint32(b[36:]),
			Packets:    ne.Uint32(b[40:]),
			BaseSeq:    ne.Uint32(b[44:]),
			HighestSeq: ne.Uint32(b[48:]),
			Jitter:     ne.Uint32(b[52:]) >> 4, // kept scaled by 16
			// b[56:60] is the program's transit state.
			Resets: ne.Uint32(b[60:]),
		},
	}
}

// Counters sums the program's global counters over all CPUs, by reason.
// Every Reason is present.
func (d *Datapath) Counters() (map[Reason]uint64, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.life.RUnlock()
	out := make(map[Reason]uint64, reasonCount)
	var perCPU []uint64
	for r := range reasonCount {
		if err := d.objs.Counters.Lookup(uint32(r), &perCPU); err != nil {
			return nil, fmt.Errorf("read counter %s: %w", r, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[r] = sum
	}
	return out, nil
}
