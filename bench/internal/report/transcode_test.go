// SPDX-License-Identifier: Apache-2.0

package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func tcPoint(relay, pair string, rep, calls int, ns, loss float64) Point {
	p := point(relay, rep, calls, float64(calls)*100, loss, ns, false)
	p.Mode, p.Transcode, p.RelayCPUPct = ModeTranscode, pair, 40
	return p
}

// transcodeRun is a run of the transcode mode alone: relayd and the
// incumbent, two pairs, three repetitions, with ramps; the incumbent's
// relayd-less twin (relayd without Opus) refused one pair.
func transcodeRun() *Run {
	relays := []string{"relayd:userspace", "rtpengine"}
	r := &Run{Command: "go run ./bench --mode transcode", Started: time.Unix(0, 0), Relays: relays,
		Setup: Setup{Topology: "veth2", LossTargetPct: 0.1, Reps: 3, Modes: []string{ModeTranscode}, RelayCPUs: []int{1},
			TranscodePairs: []string{"opus-pcmu", "g722-pcmu"}, TranscodeCalls: []int{50, 100}},
		RelayArgs: map[string]string{}}
	for rep := 1; rep <= 3; rep++ {
		r.Points = append(r.Points,
			tcPoint("relayd:userspace", "opus-pcmu", rep, 50, 40000, 0), tcPoint("relayd:userspace", "opus-pcmu", rep, 100, 38000, 0),
			tcPoint("rtpengine", "opus-pcmu", rep, 50, 60000, 0), tcPoint("rtpengine", "opus-pcmu", rep, 100, 58000, 0.5),
			tcPoint("relayd:userspace", "g722-pcmu", rep, 50, 20000, 0), tcPoint("rtpengine", "g722-pcmu", rep, 50, 25000, 0))
		r.Ramps = append(r.Ramps,
			Ramp{Relay: "relayd:userspace", Rep: rep, Transcode: "opus-pcmu", MaxCalls: 200 + rep, Bound: "relay"},
			Ramp{Relay: "rtpengine", Rep: rep, Transcode: "opus-pcmu", MaxCalls: 150, Bound: "relay"},
			Ramp{Relay: "relayd:userspace", Rep: rep, Transcode: "g722-pcmu", MaxCalls: 300, Bound: "generator"},
			Ramp{Relay: "rtpengine", Rep: rep, Transcode: "g722-pcmu", MaxCalls: 400, Bound: "relay"})
	}
	r.Unsupported = []Unsupported{{Relay: "relayd:static", Transcode: "opus-pcmu", Reason: "relay did not transcode: codec unavailable"}}
	return r
}

func TestTranscodeSummaryAndTargets(t *testing.T) {
	r := transcodeRun()
	s := Summarize(r)
	if len(s.Points) != 0 || len(s.Ramps) != 0 {
		t.Errorf("transcoded windows or ramps leaked into the plain tables: %+v %+v", s.Points, s.Ramps)
	}
	if len(s.Transcode) != 6 || s.Transcode[0].Transcode != "opus-pcmu" || s.Transcode[5].Transcode != "g722-pcmu" {
		t.Fatalf("transcode summaries %+v", s.Transcode)
	}
	if len(s.TranscodeRamps) != 4 || s.TranscodeRamps[0].MaxCalls != 202 {
		t.Fatalf("transcode ramps %+v", s.TranscodeRamps)
	}
	if len(s.Targets) != 2 {
		t.Fatalf("targets %+v, want one per pair", s.Targets)
	}
	if tg := s.Targets[0]; tg.Status != "met" || !strings.Contains(tg.Measured, "relayd:userspace 202 (relay-bound), rtpengine 150 (relay-bound): 1.35×") {
		t.Errorf("Opus target %+v", tg)
	}
	// relayd short of the incumbent, but not at its own limit.
	if tg := s.Targets[1]; tg.Status != "undetermined" || !strings.Contains(tg.Measured, "0.75×") {
		t.Errorf("G.722 target %+v", tg)
	}
	md := Markdown(r, s, nil)
	for _, in := range []string{
		"### Transcoding side by side",
		// The incumbent's 100-call load lost 0.5 %: not in its CPU figure.
		"| Opus⇄PCMU | relayd:userspace | **202** | relay-bound | **39000** | 50, 100 |",
		"| Opus⇄PCMU | rtpengine | **150** | relay-bound | **60000** | 50 |",
		"### Transcoding G.722⇄PCMU", "| relayd:userspace | 50 | 5.0k | 5.0k | 0.00 | 0.00 |",
		"- relayd:static, Opus⇄PCMU: relay did not transcode: codec unavailable",
	} {
		if !strings.Contains(md, in) {
			t.Errorf("markdown lacks %q:\n%s", in, md)
		}
	}
	if strings.Contains(md, "### Fixed loads") || strings.Contains(md, TranscodeBeginMarker) {
		t.Errorf("a transcode-only results.md has plain tables or markers")
	}
}

// TestUpdateBenchmarksTranscode: a run of the transcode mode alone replaces
// only its part, next to the SRTP one; a full run keeps both.
func TestUpdateBenchmarksTranscode(t *testing.T) {
	dir := t.TempDir()
	bm := filepath.Join(dir, "BENCHMARKS.md")
	write := func(r *Run) string {
		t.Helper()
		files, s, err := Write(filepath.Join(dir, "results"), r)
		if err != nil {
			t.Fatal(err)
		}
		if err := UpdateBenchmarks(bm, r, s, files); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(bm)
		return string(b)
	}
	if err := os.WriteFile(bm, []byte("# Benchmarks\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write(srtpRun())
	doc := write(transcodeRun())
	if strings.Count(doc, SRTPBeginMarker) != 1 || strings.Count(doc, TranscodeBeginMarker) != 1 || strings.Count(doc, BeginMarker) != 1 {
		t.Fatalf("srtp then transcode:\n%s", doc)
	}
	full := sampleRun()
	full.Setup.Modes = []string{"fixed", "ramp", "control"}
	doc = write(full)
	if !strings.Contains(doc, "### Fixed loads") || strings.Count(doc, TranscodeBeginMarker) != 1 || strings.Count(doc, SRTPBeginMarker) != 1 ||
		!strings.Contains(doc, "### Transcoding Opus⇄PCMU") {
		t.Fatalf("a full run lost a part:\n%s", doc)
	}
	if i, j := strings.Index(doc, TranscodeEndMarker), strings.Index(doc, EndMarker); i < 0 || j < i {
		t.Errorf("the transcode part is outside the generated block")
	}
	again := transcodeRun()
	again.Command = "go run ./bench --mode transcode --transcode-calls 10"
	doc = write(again)
	if !strings.Contains(doc, again.Command) || strings.Contains(doc, "go run ./bench --mode transcode\n") ||
		!strings.Contains(doc, "### Fixed loads") || !strings.HasPrefix(doc, "# Benchmarks\n\nprose\n") {
		t.Fatalf("second transcode run:\n%s", doc)
	}
}

// TestUpdateBenchmarksEveryPart runs each mode that has a part of its own
// alone, then a full run, then each again: every run replaces its own part
// and keeps the others'.
func TestUpdateBenchmarksEveryPart(t *testing.T) {
	dir := t.TempDir()
	bm := filepath.Join(dir, "BENCHMARKS.md")
	if err := os.WriteFile(bm, []byte("# Benchmarks\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(r *Run) string {
		t.Helper()
		files, s, err := Write(filepath.Join(dir, "results"), r)
		if err != nil {
			t.Fatal(err)
		}
		if err := UpdateBenchmarks(bm, r, s, files); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(bm)
		return string(b)
	}
	full := func() *Run {
		r := sampleRun()
		r.Setup.Modes = []string{"fixed", "ramp", "control"}
		return r
	}
	runs := []struct {
		name string
		run  func() *Run
		own  string // what only this run writes
	}{
		{"restart", restartRun, "go run ./bench --mode restart"},
		{"srtp", srtpRun, "### SRTP on one leg"},
		{"transcode", transcodeRun, "### Transcoding Opus⇄PCMU"},
		{"full", full, "### Fixed loads"},
	}
	check := func(after string, doc string) {
		t.Helper()
		for _, m := range []string{BeginMarker, SRTPBeginMarker, TranscodeBeginMarker, RestartBeginMarker} {
			if n := strings.Count(doc, m); n != 1 {
				t.Fatalf("after %s: %d × %q:\n%s", after, n, m, doc)
			}
		}
		for _, x := range runs {
			if !strings.Contains(doc, x.own) {
				t.Fatalf("after %s: the %s part is gone:\n%s", after, x.name, doc)
			}
		}
		if !strings.HasPrefix(doc, "# Benchmarks\n\nprose\n") {
			t.Fatalf("after %s: the prose is gone:\n%s", after, doc)
		}
	}
	for _, x := range runs {
		write(x.run())
	}
	doc, _ := os.ReadFile(bm)
	check("every mode once", string(doc))
	for _, x := range runs {
		check(x.name+" again", write(x.run()))
	}
}
