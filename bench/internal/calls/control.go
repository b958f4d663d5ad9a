// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/bench/internal/metrics"
)

// ControlOptions describe one control-plane run: cycles of offer, answer and
// delete (a whole call's signalling, without media) for Duration.
type ControlOptions struct {
	Name        string
	Duration    time.Duration
	Concurrency int
	// Rate is the target setups per second (open loop: cycles start on
	// schedule whether or not earlier ones finished, as SIP traffic does);
	// 0 runs closed loop, each worker starting its next cycle as soon as
	// the last one ends.
	Rate float64
	// NewCall makes the i-th call (unique call-id and tags).
	NewCall func(i int) *Call
}

// Latency summarises a histogram in microseconds.
type Latency struct {
	N    uint64  `json:"n"`
	P50  float64 `json:"p50_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p999_us"`
	Max  float64 `json:"max_us"`
}

// Summarize reads a histogram of nanoseconds.
func Summarize(h *metrics.Histogram) Latency {
	if h.Count() == 0 {
		return Latency{}
	}
	return Latency{N: h.Count(), P50: h.Quantile(0.5) / 1e3, P99: h.Quantile(0.99) / 1e3,
		P999: h.Quantile(0.999) / 1e3, Max: float64(h.Max()) / 1e3}
}

// ControlResult is one control-plane run's outcome.
type ControlResult struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	Cycles      int64   `json:"cycles"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	ElapsedSec  float64 `json:"elapsed_s"`
	// SetupsPerSec counts completed offer+answer+delete cycles per second.
	SetupsPerSec float64 `json:"setups_per_s"`
	Offer        Latency `json:"offer"`
	Answer       Latency `json:"answer"`
	Delete       Latency `json:"delete"`
	// Setup is offer + answer: what a call waits for in the relay.
	Setup Latency `json:"setup"`
	// MaxLagMs is how far behind schedule an open-loop run fell: above a
	// few ms the relay (or the bench) could not keep the rate.
	MaxLagMs float64 `json:"max_lag_ms,omitempty"`
	// The relay's and the bench's CPU over the run (filled by the runner,
	// which knows the relay's process): whether the relay or the
	// generator bounded the rate, and what one setup costs the relay.
	RelayCPUSec float64 `json:"relay_cpu_s,omitempty"`
	BenchCPUSec float64 `json:"bench_cpu_s,omitempty"`
}

// RelayCPUPerSetupUs is the relay's CPU time per completed setup.
func (r ControlResult) RelayCPUPerSetupUs() float64 {
	if r.Cycles == 0 {
		return 0
	}
	return r.RelayCPUSec / float64(r.Cycles) * 1e6
}

// RelayBusyPct and BenchBusyPct are CPU time over the run's wall time, in
// percent of one CPU.
func (r ControlResult) RelayBusyPct() float64 { return pct(r.RelayCPUSec, r.ElapsedSec) }
func (r ControlResult) BenchBusyPct() float64 { return pct(r.BenchCPUSec, r.ElapsedSec) }

func pct(cpu, wall float64) float64 {
	if wall <= 0 {
		return 0
	}
	return 100 * cpu / wall
}

type cpHists struct{ offer, answer, del, setup metrics.Histogram }

// RunControl runs the control-plane benchmark on the driver's relay.
func (d *Driver) RunControl(ctx context.Context, o ControlOptions) ControlResult {
	conc := max(o.Concurrency, 1)
	res := ControlResult{Name: o.Name, Concurrency: conc, TargetRate: o.Rate}
	var (
		next, cycles, errs atomic.Int64
		maxLag             atomic.Int64
		firstErr           atomic.Value
		wg                 sync.WaitGroup
	)
	hists := make([]*cpHists, conc)
	start := time.Now()
	end := start.Add(o.Duration)
	for w := range conc {
		hists[w] = &cpHists{}
		wg.Add(1)
		go func(h *cpHists) {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if o.Rate > 0 {
					due := start.Add(time.Duration(float64(i) / o.Rate * float64(time.Second)))
					if !due.Before(end) {
						return
					}
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-ctx.Done():
							return
						}
					} else {
						for lag, cur := int64(-wait), maxLag.Load(); lag > cur; cur = maxLag.Load() {
							if maxLag.CompareAndSwap(cur, lag) {
								break
							}
						}
					}
				} else if !time.Now().Before(end) {
					return
				}
				c := o.NewCall(int(i))
				off, ans, err := d.Setup(ctx, c)
				if err == nil {
					h.offer.Record(int64(off))
					h.answer.Record(int64(ans))
					h.setup.Record(int64(off + ans))
				}
				// Delete even after a failed setup: the offer may have
				// created the call.
				_, del, derr := d.Delete(ctx, c)
				if derr == nil {
					h.del.Record(int64(del))
				}
				if err == nil {
					err = derr
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				cycles.Add(1)
			}
		}(hists[w])
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all cpHists
	for _, h := range hists {
		all.offer.Merge(&h.offer)
		all.answer.Merge(&h.answer)
		all.del.Merge(&h.del)
		all.setup.Merge(&h.setup)
	}
	res.Cycles, res.Errors = cycles.Load(), errs.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	res.ElapsedSec = elapsed.Seconds()
	if elapsed > 0 {
		res.SetupsPerSec = float64(res.Cycles) / elapsed.Seconds()
	}
	res.Offer, res.Answer, res.Delete, res.Setup = Summarize(&all.offer), Summarize(&all.answer), Summarize(&all.del), Summarize(&all.setup)
	res.MaxLagMs = float64(maxLag.Load()) / 1e6
	return res
}
