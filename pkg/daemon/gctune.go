// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// A relay's live heap is small (its calls, not its traffic) while its
// control plane allocates quickly, so at Go's default target — collect when
// the heap has doubled — the collector ran every few milliseconds under a
// burst of setups and took a sixth of the control plane's CPU
// (`go run ./bench --mode control`: 172 → 145 µs per setup with the heap
// allowed to grow fivefold). The tuner gives a small heap gcHeadroom to grow
// into before each collection, and a large one Go's default, so the memory
// this costs stays under gcHeadroom.
const (
	gcHeadroom   = 64 << 20
	gcPercentMin = 100
	gcPercentMax = 400
)

// gcPercentFor is the collection target that lets a heap of live bytes grow
// by about gcHeadroom, within [gcPercentMin, gcPercentMax].
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcPercentMax
	}
	return min(gcPercentMax, max(gcPercentMin, int(gcHeadroom*100/live)))
}

// gcTuner sets the collection target after every collection, from the heap
// that collection found live.
type gcTuner struct {
	mu      sync.Mutex // orders the stop's reset after any tuning
	stopped atomic.Bool
	percent atomic.Int64
	tunes   atomic.Uint64 // collections seen, for tests
}

// tuneGC starts the tuner unless the operator chose a target with GOGC; it
// stops when ctx is done.
func tuneGC(ctx context.Context, log *slog.Logger) *gcTuner {
	if v, set := os.LookupEnv("GOGC"); set {
		log.Debug("garbage collector target from GOGC", "GOGC", v)
		return nil
	}
	t := &gcTuner{}
	p := gcPercentFor(liveHeap())
	debug.SetGCPercent(p)
	t.percent.Store(int64(p))
	t.arm()
	context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		debug.SetGCPercent(gcPercentMin)
		t.stopped.Store(true)
	})
	return t
}

// gcSentinel is large enough not to share a tiny-allocator block, so it is
// collected, and its cleanup runs, in the first collection after arm.
type gcSentinel [64]byte

func (t *gcTuner) arm() {
	runtime.AddCleanup(new(gcSentinel), func(struct{}) { t.afterGC() }, struct{}{})
}

func (t *gcTuner) afterGC() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	t.tunes.Add(1)
	// Small steps are not worth a change; a target that moves by a tenth
	// or more is.
	if p := gcPercentFor(liveHeap()); p*10 < int(t.percent.Load())*9 || p*10 > int(t.percent.Load())*11 {
		debug.SetGCPercent(p)
		t.percent.Store(int64(p))
	}
	t.arm()
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		return s[0].Value.Uint64()
	}
	return 0
}
