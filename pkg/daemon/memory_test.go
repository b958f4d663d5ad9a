// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"log/slog"
	"runtime"
	"testing"
)

var sink [][]byte

// A heap left large by a burst is collected and given back, whether a
// collection already freed it or the process went quiet before one ran; a
// heap that is live, or small, is left alone.
func TestMemoryKeeper(t *testing.T) {
	k := &memoryKeeper{log: slog.New(slog.DiscardHandler)}
	runtime.GC()
	k.lastCycles = readHeap().cycles
	k.check() // whatever the test binary's heap holds
	runtime.GC()
	k.lastCycles = readHeap().cycles
	if k.check() {
		t.Errorf("collected an idle small heap: %+v", readHeap())
	}

	for range 64 {
		sink = append(sink, make([]byte, 1<<20))
	}
	runtime.GC()
	k.lastCycles = readHeap().cycles - 1 // a collection since the last check: busy
	if k.check() {
		t.Error("returned memory while 64 MiB are live and collections run")
	}

	// The burst ends; no collection runs (a quiet relay).
	sink = nil
	before := readHeap()
	k.lastCycles = before.cycles
	if !k.check() {
		t.Fatalf("a quiet process holding %d heap bytes was not collected", before.objects+before.free)
	}
	if after := readHeap(); after.objects+after.free > (before.objects+before.free)/2 {
		t.Errorf("heap %d bytes after the check, was %d", after.objects+after.free, before.objects+before.free)
	}
}

func TestShouldReturn(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name string
		h    heapState
		idle bool
		want bool
	}{
		{"small and idle", heapState{free: 2 * mib, objects: 4 * mib, live: 3 * mib, gogc: 100}, true, false},
		{"large and idle", heapState{free: 10 * mib, objects: 40 * mib, live: 40 * mib, gogc: 100}, true, true},
		{"busy, collector's room at GOGC 100", heapState{free: 20 * mib, objects: 20 * mib, live: 20 * mib, gogc: 100}, false, false},
		{"busy, a burst's leftovers at GOGC 100", heapState{free: 200 * mib, objects: 20 * mib, live: 20 * mib, gogc: 100}, false, true},
		// The tuner lets a small heap grow fivefold: right after a
		// collection most of it is free, and that is not a leftover.
		{"busy, collector's room at 400", heapState{free: 40 * mib, objects: 10 * mib, live: 10 * mib, gogc: 400}, false, false},
		{"busy, a burst's leftovers at 400", heapState{free: 300 * mib, objects: 10 * mib, live: 10 * mib, gogc: 400}, false, true},
		// After a churn: 62 MiB of held calls live, garbage not yet
		// collected and free pages of the peak beyond the target.
		{"churn ended, calls held", heapState{free: 60 * mib, objects: 118 * mib, live: 62 * mib, gogc: 100}, false, true},
	}
	for _, tt := range tests {
		if got := shouldReturn(tt.h, tt.idle); got != tt.want {
			t.Errorf("%s: shouldReturn(%+v, idle %v) = %v, want %v", tt.name, tt.h, tt.idle, got, tt.want)
		}
	}
}
