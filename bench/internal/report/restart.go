// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// ModeRestart is the restart mode's name in Setup.Modes.
const ModeRestart = "restart"

// Restart is one relay's restart window (--mode restart): calls up with
// media, relayd stopped with SIGTERM mid-window (handing its calls over
// through its state-dir and the pinned fast path), the same command started
// again, and the media measured per stream across the gap.
type Restart struct {
	Relay string `json:"relay"`
	Rep   int    `json:"rep"`
	Calls int    `json:"calls"`
	// Streams are the streams measured (active for the whole window).
	Streams int `json:"streams"`
	// KernelBefore and KernelAfter are the relay's media_kernel (sockets
	// the fast path forwards) before the stop and at the window's end.
	KernelBefore int64 `json:"kernel_streams_before"`
	KernelAfter  int64 `json:"kernel_streams_after"`
	// Restored is how many calls the new relay lists after the restart.
	Restored int64 `json:"restored_calls"`
	// StopSec is SIGTERM → the old process exited; RestartSec SIGTERM →
	// the new one answered an ng ping.
	StopSec    float64 `json:"stop_s"`
	RestartSec float64 `json:"restart_s"`
	WindowSec  float64 `json:"window_s"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	// Per stream: packets sent in the window that never arrived, and the
	// longest silence at its receiver (window start and end included).
	LostMedian      float64 `json:"lost_per_stream_median"`
	LostMax         uint64  `json:"lost_per_stream_max"`
	StreamsWithLoss int     `json:"streams_with_loss"`
	GapMedianMs     float64 `json:"gap_median_ms"`
	GapMaxMs        float64 `json:"gap_max_ms"`
	// Kernel says the relay forwards in the kernel (its streams must lose
	// nothing); otherwise the bound is on the gap.
	Kernel bool `json:"kernel"`
	// GenLagMs is how far the generator fell behind its schedule in the
	// window, and GenSkipped the packets it gave up on (not counted as
	// sent). A generator that stalls (another program on its CPU) stops
	// every stream at once and its stall reads as the relay's gap: such a
	// window is measured again, up to Attempts in all.
	GenLagMs   float64 `json:"generator_lag_ms"`
	GenSkipped uint64  `json:"generator_skipped"`
	// VethDrops are packets the veths' own rings dropped in the window.
	// A shorter stall of the generator's CPU stalls the endpoints' NAPI
	// threads on it too, and what the relay forwards meanwhile overflows
	// their 256-slot rings: the rig's loss, not the relay's, and the
	// window is measured again too.
	VethDrops uint64   `json:"veth_drops"`
	Attempts  int      `json:"attempts"`
	Warnings  []string `json:"warnings,omitempty"`
}

// genStall is the generator lag past which a restart window is measured
// again: far above a timer tick, well below the gaps being measured.
const genStall = 50

// Disturbed says whether the generator stalled in the window or the veths
// dropped packets in it.
func (x Restart) Disturbed() bool {
	return x.GenSkipped > 0 || x.GenLagMs >= genStall || x.VethDrops > 0
}

// RestartSummary is one relay's restart windows over the repetitions:
// medians, and the worst stream of any repetition.
type RestartSummary struct {
	Relay           string  `json:"relay"`
	Reps            int     `json:"reps"`
	Calls           int     `json:"calls"`
	Streams         int     `json:"streams"`
	Kernel          bool    `json:"kernel"`
	RestartSec      float64 `json:"restart_s_median"`
	RestartMinSec   float64 `json:"restart_s_min"`
	RestartMaxSec   float64 `json:"restart_s_max"`
	StopSec         float64 `json:"stop_s_median"`
	LostMedian      float64 `json:"lost_per_stream_median"`
	LostMax         uint64  `json:"lost_per_stream_max"`
	StreamsWithLoss float64 `json:"streams_with_loss_median"`
	LossyMax        int     `json:"streams_with_loss_max"`
	GapMedianMs     float64 `json:"gap_median_ms"`
	GapMaxMs        float64 `json:"gap_max_ms"`
	// GapOverRestart is the worst gap over the restart duration (medians
	// over repetitions): how much longer than the relay's own absence a
	// stream stayed silent.
	GapOverRestart float64 `json:"gap_max_over_restart"`
	// Retried are the windows measured again because the generator
	// stalled in them; Disturbed the repetitions whose last window it
	// still stalled in.
	Retried   int `json:"windows_retried"`
	Disturbed int `json:"reps_disturbed"`
}

// SummarizeRestarts groups the windows by relay, in the order of relays.
func SummarizeRestarts(rs []Restart, relays []string) []RestartSummary {
	var out []RestartSummary
	for _, name := range relays {
		var g []Restart
		for _, r := range rs {
			if r.Relay == name {
				g = append(g, r)
			}
		}
		if len(g) == 0 {
			continue
		}
		s := RestartSummary{Relay: name, Reps: len(g), Calls: g[0].Calls, Streams: g[0].Streams, Kernel: g[0].Kernel,
			RestartMinSec: math.Inf(1), RestartMaxSec: math.Inf(-1)}
		var restart, stop, lostMed, lossy, gapMed, gapMax, ratios []float64
		for _, r := range g {
			restart = append(restart, r.RestartSec)
			stop = append(stop, r.StopSec)
			lostMed = append(lostMed, r.LostMedian)
			lossy = append(lossy, float64(r.StreamsWithLoss))
			gapMed = append(gapMed, r.GapMedianMs)
			gapMax = append(gapMax, r.GapMaxMs)
			if r.RestartSec > 0 {
				ratios = append(ratios, r.GapMaxMs/1e3/r.RestartSec)
			}
			s.RestartMinSec = math.Min(s.RestartMinSec, r.RestartSec)
			s.RestartMaxSec = math.Max(s.RestartMaxSec, r.RestartSec)
			s.LostMax = max(s.LostMax, r.LostMax)
			s.LossyMax = max(s.LossyMax, r.StreamsWithLoss)
			s.Streams = min(s.Streams, r.Streams)
			s.Retried += max(r.Attempts-1, 0)
			if r.Disturbed() {
				s.Disturbed++
			}
		}
		s.RestartSec, s.StopSec = Median(restart), Median(stop)
		s.LostMedian, s.StreamsWithLoss = Median(lostMed), Median(lossy)
		s.GapMedianMs, s.GapMaxMs = Median(gapMed), slices.Max(gapMax)
		s.GapOverRestart = Median(ratios)
		out = append(out, s)
	}
	return out
}

// restartSection renders the restart mode's table ("" without restart
// windows); relays the mode does not apply to are listed as such.
func restartSection(r *Run, s Summary) string {
	if len(r.Restarts) == 0 && !slices.Contains(r.Setup.Modes, ModeRestart) {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("### Restart with calls up (medians over %d repetition(s); worst stream of any)\n\n", r.Setup.Reps)
	w("| relay | calls | restart ms (min–max) | lost packets per stream, median / max | streams with loss (of %s) | gap median / max ms | max gap ÷ restart | expected |\n", streamsOf(s.Restarts))
	w("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range s.Restarts {
		expect := "gap < 1 s"
		if x.Kernel {
			expect = "0 lost"
		}
		w("| %s | %d | %.0f (%.0f–%.0f) | %s / %d | %s (max %d) | %s / %s | %s | %s |\n", x.Relay, x.Calls, 1e3*x.RestartSec, 1e3*x.RestartMinSec, 1e3*x.RestartMaxSec,
			f1(x.LostMedian), x.LostMax, f0(x.StreamsWithLoss), x.LossyMax, f0(x.GapMedianMs), f0(x.GapMaxMs), ratioX(x.GapOverRestart), expect)
	}
	for _, name := range r.Relays {
		if !slices.ContainsFunc(s.Restarts, func(x RestartSummary) bool { return x.Relay == name }) {
			w("| %s | n/a: restart mode is relayd's | | | | | | |\n", name)
		}
	}
	for _, x := range s.Restarts {
		if x.Retried > 0 || x.Disturbed > 0 {
			w("\n%s: %d window(s) measured again because the generator fell %d ms or more behind its schedule (another program on its CPU: every stream stops at once and the stall reads as the relay's gap) or the veths' rings dropped packets (the endpoints' NAPI threads share the generator's CPU)", x.Relay, x.Retried, genStall)
			if x.Disturbed > 0 {
				w("; in %d repetition(s) the last window was still disturbed, and its figures include that", x.Disturbed)
			}
			w(".\n")
		}
	}
	w("\nThe relay runs with `--state-dir` and `--xdp-pin-path` on a bpffs the bench mounted in the host's mount namespace. In the middle of the window it gets SIGTERM (it writes every call and leaves the pinned XDP program and rules forwarding), the bench waits for it to exit and starts the same command again; restart ms is SIGTERM → the new process answers an ng ping. A stream's gap is the longest time between two arrivals of its window packets (the window's start and end count as arrivals); packets lost are those sent in the window that never arrived, after a drain.\n\n")
	return b.String()
}

func streamsOf(rs []RestartSummary) string {
	if len(rs) == 0 {
		return "–"
	}
	return fmt.Sprint(rs[0].Streams)
}

func ratioX(v float64) string {
	if math.IsNaN(v) || v <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// restartOnly says whether the run measured the restart mode and nothing
// else: its figures then go to their own block of BENCHMARKS.md.
func restartOnly(r *Run) bool {
	for _, m := range r.Setup.Modes {
		if m != ModeRestart {
			return false
		}
	}
	return len(r.Setup.Modes) > 0
}

// The restart mode's figures sit between these markers, outside the main
// generated block: a run of that mode alone rewrites only them.
const (
	RestartBeginMarker = "<!-- bench:restart:begin (generated by go run ./bench --mode restart; do not edit by hand) -->"
	RestartEndMarker   = "<!-- bench:restart:end -->"
)

// replaceRestart returns doc with the restart block replaced by block
// (appended when doc has none).
func replaceRestart(doc, block string) string {
	return replaceMarked(doc, RestartBeginMarker, RestartEndMarker, block)
}

// restartMarkdown is a restart-only run for BENCHMARKS.md: the command,
// the machine in one line, the table and the checks that concern it.
func restartMarkdown(r *Run, s Summary, full string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	w("Measured %s with:\n\n```\n%s\n```\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Command)
	w("%s, `nproc` = %d, kernel %s; relay on CPU %v, generator on CPU %v; %.0f packets/s per stream.\n\n",
		m.CPUModel, m.NumCPU, m.Kernel, r.Setup.RelayCPUs, r.Setup.GenCPUs, r.Setup.PPSPerStream)
	w("%s", restartSection(r, s))
	bad := 0
	for _, c := range r.Checks {
		if !c.OK {
			bad++
		}
	}
	w("Checks: %d of %d passed.\n\n%s", len(r.Checks)-bad, len(r.Checks), full)
	return b.String()
}
