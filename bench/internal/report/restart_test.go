// SPDX-License-Identifier: Apache-2.0

package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func restartRun() *Run {
	r := &Run{Command: "go run ./bench --mode restart", Started: time.Unix(0, 0),
		Relays: []string{"relayd:userspace", "relayd:xdp", "rtpengine"},
		Setup:  Setup{Modes: []string{ModeRestart}, Reps: 3}}
	for rep, restart := range []float64{0.12, 0.09, 0.30} {
		r.Restarts = append(r.Restarts,
			Restart{Relay: "relayd:userspace", Rep: rep + 1, Calls: 100, Streams: 200, RestartSec: restart,
				LostMedian: 4, LostMax: uint64(5 + rep), StreamsWithLoss: 200, GapMedianMs: 90, GapMaxMs: 100 + 10*float64(rep)},
			Restart{Relay: "relayd:xdp", Rep: rep + 1, Calls: 100, Streams: 200, RestartSec: restart + 0.05, Kernel: true,
				GapMedianMs: 20, GapMaxMs: 23})
	}
	return r
}

func TestSummarizeRestarts(t *testing.T) {
	s := SummarizeRestarts(restartRun().Restarts, restartRun().Relays)
	if len(s) != 2 {
		t.Fatalf("%d summaries, want 2 (no restart windows for rtpengine): %+v", len(s), s)
	}
	us, xdp := s[0], s[1]
	if us.Relay != "relayd:userspace" || us.Reps != 3 || us.RestartSec != 0.12 || us.RestartMinSec != 0.09 || us.RestartMaxSec != 0.30 {
		t.Errorf("userspace restart figures %+v", us)
	}
	if us.LostMax != 7 || us.LostMedian != 4 || us.GapMaxMs != 120 || us.StreamsWithLoss != 200 || us.Kernel {
		t.Errorf("userspace stream figures %+v", us)
	}
	// Gap ÷ restart per repetition: 100/120, 110/90, 120/300 ms; median 0.83.
	if us.GapOverRestart < 0.83 || us.GapOverRestart > 0.84 {
		t.Errorf("gap over restart %.3f, want 0.833", us.GapOverRestart)
	}
	if !xdp.Kernel || xdp.LostMax != 0 || xdp.LossyMax != 0 || xdp.GapMaxMs != 23 {
		t.Errorf("xdp figures %+v", xdp)
	}
}

// Windows in which the generator stalled, or the veths' rings dropped
// packets, are counted and said so.
func TestRestartGeneratorStalls(t *testing.T) {
	for _, tc := range []struct {
		x    Restart
		want bool
	}{{Restart{GenLagMs: 8}, false}, {Restart{GenLagMs: 50}, true}, {Restart{GenLagMs: 3, GenSkipped: 1}, true},
		{Restart{GenLagMs: 27, VethDrops: 7}, true}} {
		if got := tc.x.Disturbed(); got != tc.want {
			t.Errorf("%+v: Disturbed = %v, want %v", tc.x, got, tc.want)
		}
	}
	r := restartRun()
	r.Restarts[0].Attempts = 3                            // userspace rep 1: two windows retried...
	r.Restarts[0].GenLagMs = 400                          // ...and the last still stalled
	r.Restarts[3].Attempts, r.Restarts[3].GenLagMs = 2, 5 // xdp rep 2: one retried, then clean
	s := Summarize(r)
	if us, xdp := s.Restarts[0], s.Restarts[1]; us.Retried != 2 || us.Disturbed != 1 || xdp.Retried != 1 || xdp.Disturbed != 0 {
		t.Errorf("retried/disturbed: userspace %d/%d, xdp %d/%d; want 2/1 and 1/0", us.Retried, us.Disturbed, xdp.Retried, xdp.Disturbed)
	}
	md := Markdown(r, s, nil)
	for _, want := range []string{"relayd:userspace: 2 window(s) measured again", "in 1 repetition(s) the last window was still disturbed", "relayd:xdp: 1 window(s) measured again"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestRestartSection(t *testing.T) {
	r := restartRun()
	md := Markdown(r, Summarize(r), nil)
	for _, want := range []string{
		"### Restart with calls up",
		"| relayd:userspace | 100 | 120 (90–300) | 4.0 / 7 | 200 (max 200) | 90 / 120 |",
		"| relayd:xdp | 100 | 170 (140–350) | 0.0 / 0 | 0 (max 0) | 20 / 23 |",
		"| rtpengine | n/a: restart mode is relayd's |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// A run without the mode says nothing about it.
	plain := &Run{Relays: []string{"relayd:userspace"}, Setup: Setup{Modes: []string{"fixed"}}}
	if md := Markdown(plain, Summarize(plain), nil); strings.Contains(md, "Restart") {
		t.Errorf("a run without the restart mode shows a restart section:\n%s", md)
	}
}

// A run of the restart mode alone rewrites only its own block of
// BENCHMARKS.md: the main generated block and the prose stay.
func TestUpdateBenchmarksRestartOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "BENCHMARKS.md")
	main := BeginMarker + "\nMAIN FIGURES\n" + EndMarker
	doc := "# Benchmarks\n\n" + main + "\n\n## Restart\n\nprose\n\n" + RestartBeginMarker + "\nOLD\n" + RestartEndMarker + "\n\nafter\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := restartRun()
	files := Files{Markdown: filepath.Join(dir, "res", "results.md"), JSON: filepath.Join(dir, "res", "results.json")}
	if err := UpdateBenchmarks(path, r, Summarize(r), files); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	s := string(got)
	for _, want := range []string{main, "prose", "after", "| relayd:xdp | 100 |", "go run ./bench --mode restart", "`res/results.md`"} {
		if !strings.Contains(s, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "OLD") || strings.Count(s, RestartBeginMarker) != 1 {
		t.Errorf("the old restart block was not replaced once:\n%s", s)
	}
	// Without a block yet, it is appended.
	if got := replaceRestart("# Doc\n", "NEW\n"); got != "# Doc\n\n"+RestartBeginMarker+"\nNEW\n"+RestartEndMarker+"\n" {
		t.Errorf("replaceRestart appended %q", got)
	}
}
