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
