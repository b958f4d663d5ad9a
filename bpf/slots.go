// SPDX-License-Identifier: Apache-2.0

package bpf

import "math/bits"

// slotAllocator hands out stream entries, lowest free first: the entries
// of the streams in use stay packed in few pages, which is most of what a
// packet costs live (relay.c). The caller holds the Datapath's mu.
type slotAllocator struct {
	used  []uint64 // bit set: allocated
	size  uint32
	inUse int
	hint  int // no free slot in words before this one
}

func newSlotAllocator(size uint32) slotAllocator {
	return slotAllocator{used: make([]uint64, (size+63)/64), size: size}
}

// alloc returns a free slot and marks it, or false when all are taken.
func (a *slotAllocator) alloc() (uint32, bool) {
	for w := a.hint; w < len(a.used); w++ {
		free := ^a.used[w]
		if free == 0 {
			continue
		}
		slot := uint32(w*64 + bits.TrailingZeros64(free))
		if slot >= a.size {
			break
		}
		a.hint = w
		a.mark(slot)
		return slot, true
	}
	a.hint = len(a.used)
	return 0, false
}

func (a *slotAllocator) mark(slot uint32) {
	w, b := slot/64, uint64(1)<<(slot%64)
	if a.used[w]&b == 0 {
		a.used[w] |= b
		a.inUse++
	}
}

// free releases slot; false if it was not allocated.
func (a *slotAllocator) free(slot uint32) bool {
	if slot >= a.size {
		return false
	}
	w, b := slot/64, uint64(1)<<(slot%64)
	if a.used[w]&b == 0 {
		return false
	}
	a.used[w] &^= b
	a.inUse--
	a.hint = min(a.hint, int(w))
	return true
}

func (a *slotAllocator) isUsed(slot uint32) bool {
	return slot < a.size && a.used[slot/64]&(uint64(1)<<(slot%64)) != 0
}
