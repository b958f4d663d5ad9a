// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// After a burst of calls the heap holds far less than at its peak, but the
// runtime gives the pages back to the kernel only slowly — and not at all
// until a collection runs, which a relay gone quiet does not trigger (the
// runtime forces one every two minutes) — so RSS stays at the peak and reads
// as a leak. A check every few seconds collects and gives them back at once
// when the heap is large and either mostly free (more free than the
// collection target's room to grow), or idle: no collection since the last
// check. Steady load triggers neither (collections run all
// the time and reuse the free pages); a churn that ended triggers one.
const (
	memoryCheckEvery = 5 * time.Second
	memoryFreeMin    = 16 << 20
)

// heapState is what the check reads from the runtime.
type heapState struct {
	free    uint64 // heap bytes free and not yet returned to the kernel
	objects uint64 // heap bytes holding objects, live or not yet collected
	cycles  uint64 // collections so far
	live    uint64 // heap bytes the last collection found live
	gogc    uint64 // the collection target, percent (gcTuner moves it)
}

func readHeap() heapState {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/gogc:percent"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	return heapState{free: v(0), objects: v(1), cycles: v(2), gogc: v(3), live: v(4)}
}

// shouldReturn says whether a heap in state h is a burst's leftovers worth a
// forced collection. A heap up to the collection target (what is live plus
// the room the target gives it) is the collector's working room under load:
// returning its free pages would force a collection (a stall of
// milliseconds on one CPU) only for the heap to take them back. Beyond it,
// the free pages are what a bigger past held.
func shouldReturn(h heapState, idle bool) bool {
	target := h.live + h.live*max(h.gogc, 100)/100
	mostlyFree := h.free >= memoryFreeMin && h.free+h.objects >= target+memoryFreeMin
	idleAndLarge := idle && h.free+h.objects >= memoryFreeMin
	return mostlyFree || idleAndLarge
}

// memoryKeeper gives the heap back to the kernel after bursts.
type memoryKeeper struct {
	log        *slog.Logger
	lastCycles uint64
}

// check runs one check; it reports whether it collected and returned memory.
func (k *memoryKeeper) check() bool {
	h := readHeap()
	idle := h.cycles == k.lastCycles
	k.lastCycles = h.cycles
	if !shouldReturn(h, idle) {
		return false
	}
	debug.FreeOSMemory()
	after := readHeap()
	k.lastCycles = after.cycles
	k.log.Debug("returned free heap memory to the kernel", "idle", idle, "free_before", h.free,
		"objects_before", h.objects, "free_after", after.free, "objects_after", after.objects)
	return true
}

// keepMemory runs the check every memoryCheckEvery until ctx is done.
func keepMemory(ctx context.Context, log *slog.Logger) {
	k := &memoryKeeper{log: log, lastCycles: readHeap().cycles}
	t := time.NewTicker(memoryCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.check()
		}
	}
}
