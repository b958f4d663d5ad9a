// SPDX-License-Identifier: Apache-2.0

package report

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 2, 3}, 2.5},
		{[]float64{7}, 7},
		{[]float64{math.NaN(), 5, 1}, 3},
	}
	for _, tc := range tests {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Errorf("Median(nil) is not NaN")
	}
}

func TestReplaceBlock(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty doc", "", BeginMarker + "\nNEW\n" + EndMarker + "\n"},
		{"append", "# Title\nprose", "# Title\nprose\n\n" + BeginMarker + "\nNEW\n" + EndMarker + "\n"},
		{"replace keeps the prose", "a\n" + BeginMarker + "\nOLD\n" + EndMarker + "\nb\n", "a\n" + BeginMarker + "\nNEW\n" + EndMarker + "\nb\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ReplaceBlock(tc.doc, "NEW\n"); got != tc.want {
				t.Errorf("ReplaceBlock:\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func point(relay string, rep, calls int, pps, loss, ns float64, genBound bool) Point {
	return Point{Relay: relay, Rep: rep, Calls: calls, OfferedPPS: pps, DeliveredPPS: pps * (1 - loss/100),
		LossPct: loss, NsPerPacket: ns, GenBound: genBound, LatP99Us: 100}
}

func sampleRun() *Run {
	relays := []string{"relayd:userspace", "rtpengine"}
	r := &Run{Command: "go run ./bench", Started: time.Unix(0, 0), Relays: relays,
		Setup: Setup{Topology: "veth2", LossTargetPct: 0.1, Reps: 3}, RelayArgs: map[string]string{}}
	for rep := 1; rep <= 3; rep++ {
		r.Points = append(r.Points,
			point("relayd:userspace", rep, 1000, 100000, 0, 3000+float64(rep), false),
			point("relayd:userspace", rep, 2000, 200000, 0, 2900, rep == 1),
			point("rtpengine", rep, 1000, 100000, 0, 4500, false),
			point("rtpengine", rep, 2000, 200000, 5, 4400, false))
		r.Ramps = append(r.Ramps,
			Ramp{Relay: "relayd:userspace", Rep: rep, MaxCalls: 3000, MaxPPS: 300000, Bound: "relay"},
			Ramp{Relay: "rtpengine", Rep: rep, MaxCalls: 1800, MaxPPS: 180000, Bound: "relay"})
		r.Controls = append(r.Controls,
			Control{Relay: "relayd:userspace", Rep: rep, Results: []calls.ControlResult{
				{Name: "sequential", SetupsPerSec: 9000}, {Name: "paced-1000", SetupsPerSec: 1000,
					Offer: calls.Latency{P99: 300}, Answer: calls.Latency{P99: 400}, Delete: calls.Latency{P99: 200}}}},
			Control{Relay: "rtpengine", Rep: rep, Results: []calls.ControlResult{{Name: "sequential", SetupsPerSec: 4000}}})
	}
	return r
}

func TestSummarizeAndTargets(t *testing.T) {
	r := sampleRun()
	s := Summarize(r)
	if len(s.Points) != 4 {
		t.Fatalf("%d point summaries, want 4", len(s.Points))
	}
	first := s.Points[0]
	if first.Relay != "relayd:userspace" || first.Calls != 1000 || first.NsPerPacket != 3002 || first.Reps != 3 {
		t.Errorf("first summary = %+v", first)
	}
	if s.Points[1].GenBound || s.Points[1].GenBoundReps != 1 {
		t.Errorf("1 of 3 generator-bound repetitions must not mark the median: %+v", s.Points[1])
	}
	want := map[string]string{
		"media throughput":       "met",     // 300k vs 180k = 1.67x
		"CPU per relayed packet": "not met", // 4500/3002 = 1.50x, but only the 1000-call load is common and loss-free
		"control-plane rate":     "not met", // 9000/4000 = 2.25x
		"control-plane latency":  "met",
	}
	for _, tg := range s.Targets {
		if w, ok := want[tg.Name]; !ok || w != tg.Status {
			t.Errorf("target %q: %s (%s), want %s", tg.Name, tg.Status, tg.Measured, w)
		}
	}
	if len(s.Targets) != len(want) {
		t.Errorf("%d targets, want %d", len(s.Targets), len(want))
	}
}

func TestWriteAndUpdate(t *testing.T) {
	dir := t.TempDir()
	r := sampleRun()
	r.Points[0].LatP50Us = math.NaN() // a window without packets
	r.Ramps[0].Probes = []Point{{NsPerPacket: math.NaN()}}
	r.Ramps[0].Recovery = &Point{LatP99Us: math.NaN()}
	r.Points[1].ProgNsPerRun = math.NaN()
	r.Scaling = []ScalingPoint{{Point: Point{Relay: "relayd:xdp", NsPerPacket: math.NaN()}, Asked: 1000, InstallMs: math.NaN()}}
	files, s, err := Write(filepath.Join(dir, "results"), r)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !math.IsNaN(r.Points[0].LatP50Us) || !math.IsNaN(r.Scaling[0].InstallMs) || !math.IsNaN(r.Ramps[0].Recovery.LatP99Us) {
		t.Error("writing the JSON changed the run it was given")
	}
	for _, f := range append([]string{files.Markdown, files.JSON}, files.Plots...) {
		p := f
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, "results", f)
		}
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s missing or empty: %v", p, err)
		}
	}
	md, _ := os.ReadFile(files.Markdown)
	for _, want := range []string{"### Targets", "relayd:userspace | 1000", "### Control plane", "![loss.png](loss.png)"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q", want)
		}
	}
	bm := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(bm, []byte("# Benchmarks\n\nanalysis\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateBenchmarks(bm, r, s, files); err != nil {
		t.Fatalf("UpdateBenchmarks: %v", err)
	}
	got, _ := os.ReadFile(bm)
	if !strings.HasPrefix(string(got), "# Benchmarks\n\nanalysis\n") || !strings.Contains(string(got), "results/loss.png") {
		t.Errorf("BENCHMARKS.md after update:\n%s", got)
	}
}
