// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"fmt"
	"net/netip"
)

// StreamStats reads local's counters straight from the memory-mapped
// streams array: no syscall and no lock, so it can be called per query,
// per liveness check and per statistics total, as often as wanted, without
// waiting for (or holding up) rule changes. The values are live, not a
// snapshot. ErrNoStream when local holds no entry.
func (d *Datapath) StreamStats(local netip.AddrPort) (StreamStats, error) {
	tab := d.tab.Load()
	if tab == nil {
		return StreamStats{}, ErrClosed
	}
	local = unmap(local)
	v, ok := d.index.Load(local)
	if !ok {
		return StreamStats{}, fmt.Errorf("stream stats of %v: %w", local, ErrNoStream)
	}
	slot := v.(uint32)
	// Released and taken by another local since the index was read (or
	// Close ran meanwhile and the memory reads as zeros): not local's.
	if !tab.owns(slot, local, family(local.Addr())) {
		return StreamStats{}, fmt.Errorf("stream stats of %v: %w", local, ErrNoStream)
	}
	st := stats(tab.entry(slot))
	if !tab.owns(slot, local, family(local.Addr())) {
		return StreamStats{}, fmt.Errorf("stream stats of %v: %w", local, ErrNoStream)
	}
	return st, nil
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
