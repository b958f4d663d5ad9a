// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcPercentMax},
		{1 << 20, gcPercentMax},
		{16 << 20, gcPercentMax},
		{32 << 20, 200},
		{64 << 20, gcPercentMin},
		{1 << 30, gcPercentMin},
	}
	for _, tt := range tests {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}

func TestGCTunerFollowsCollections(t *testing.T) {
	t.Setenv("GOGC", "") // restores it after the test; the tuner must see it unset
	os.Unsetenv("GOGC")
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	tu := tuneGC(ctx, slog.New(slog.DiscardHandler))
	if tu == nil {
		t.Fatal("tuner not started with GOGC unset")
	}
	// This test's heap is far below the headroom: the widest target.
	if got := debug.SetGCPercent(gcPercentMax); got != gcPercentMax {
		t.Errorf("target after start = %d, want %d", got, gcPercentMax)
	}
	deadline := time.Now().Add(10 * time.Second)
	for tu.tunes.Load() < 2 && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if n := tu.tunes.Load(); n < 2 {
		t.Fatalf("tuner saw %d collections, want it to run after each", n)
	}
	cancel()
	for !tu.stopped.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := debug.SetGCPercent(gcPercentMin); got != gcPercentMin {
		t.Errorf("target after stop = %d, want Go's default %d", got, gcPercentMin)
	}
	n := tu.tunes.Load()
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if tu.tunes.Load() != n {
		t.Error("tuner still ran after its context ended")
	}
}

func TestGCTunerLeavesGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "150")
	if tu := tuneGC(context.Background(), slog.New(slog.DiscardHandler)); tu != nil {
		t.Error("tuner started although GOGC is set")
	}
}
