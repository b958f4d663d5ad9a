// SPDX-License-Identifier: Apache-2.0

package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cm80, gcm = "AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"

func srtpPoint(relay, suite string, rep, calls int, ns float64, genBound bool) Point {
	p := point(relay, rep, calls, float64(calls)*100, 0, ns, genBound)
	p.Mode, p.SRTPSuite, p.RelayCPUPct = ModeSRTP, suite, 30
	return p
}

// srtpRun is a run of the srtp mode alone: relayd's two modes and the
// incumbent at two loads, two suites, three repetitions.
func srtpRun() *Run {
	relays := []string{"relayd:userspace", "relayd:xdp", "rtpengine"}
	r := &Run{Command: "go run ./bench --mode srtp", Started: time.Unix(0, 0), Relays: relays,
		Setup:     Setup{Topology: "veth2", LossTargetPct: 0.1, Reps: 3, Modes: []string{ModeSRTP}, SRTPSuites: []string{cm80, gcm}},
		RelayArgs: map[string]string{}}
	for rep := 1; rep <= 3; rep++ {
		r.Points = append(r.Points,
			srtpPoint("relayd:userspace", cm80, rep, 100, 10000, false), srtpPoint("relayd:userspace", cm80, rep, 200, 9000, false),
			srtpPoint("relayd:xdp", cm80, rep, 100, 10500, false), srtpPoint("relayd:xdp", cm80, rep, 200, 9500, false),
			srtpPoint("rtpengine", cm80, rep, 100, 16000, false), srtpPoint("rtpengine", cm80, rep, 200, 20000, rep > 1),
			srtpPoint("relayd:userspace", gcm, rep, 100, 20000, false), srtpPoint("rtpengine", gcm, rep, 100, 16000, false))
	}
	return r
}

func TestSRTPSummaryAndTargets(t *testing.T) {
	r := srtpRun()
	s := Summarize(r)
	if len(s.Points) != 0 {
		t.Errorf("SRTP windows leaked into the plain fixed loads: %+v", s.Points)
	}
	if len(s.SRTP) != 8 || s.SRTP[0].Suite != cm80 || s.SRTP[len(s.SRTP)-1].Suite != gcm {
		t.Fatalf("SRTP summaries %+v, want 6 of %s then 2 of %s", s.SRTP, cm80, gcm)
	}
	type want struct{ status, in string }
	wants := []want{
		// 16000 ÷ 10000 at the only load where the incumbent was not
		// generator-bound (2 of 3 repetitions at 200 calls).
		{"met", "relayd:userspace 10000 ns, rtpengine 16000 ns per packet (median over 1 common loads)"},
		{"met", "rtpengine ÷ relayd:xdp: 100 calls 1.52×"},
		{"not met", "needs 1.25× more CPU"},
	}
	if len(s.Targets) != len(wants) {
		t.Fatalf("targets %+v, want %d SRTP targets and no plain ones", s.Targets, len(wants))
	}
	for i, w := range wants {
		tg := s.Targets[i]
		if !strings.HasPrefix(tg.Name, "SRTP CPU per packet") || tg.Status != w.status || !strings.Contains(tg.Measured, w.in) {
			t.Errorf("target %d: %s %q %s, want %s containing %q", i, tg.Name, tg.Measured, tg.Status, w.status, w.in)
		}
	}
	md := Markdown(r, s, nil)
	for _, in := range []string{"### SRTP on the callers' leg: " + cm80, "### SRTP on the callers' leg: " + gcm,
		"| calls | relayd:userspace ns/packet | relayd:xdp ns/packet | rtpengine ns/packet | rtpengine ÷ relayd:userspace | rtpengine ÷ relayd:xdp |",
		"| 100 | 10000 | 10500 | 16000 | 1.60× | 1.52× | 0.00 / 0.00 / 0.00 |"} {
		if !strings.Contains(md, in) {
			t.Errorf("markdown lacks %q:\n%s", in, md)
		}
	}
	if strings.Contains(md, "### Fixed loads") || strings.Contains(md, "### Fast path") || strings.Contains(md, SRTPBeginMarker) {
		t.Errorf("an srtp-only results.md has plain tables or markers")
	}
}

func TestSRTPAgainstPlain(t *testing.T) {
	r := sampleRun()
	r.Setup.Modes = []string{"fixed", ModeSRTP}
	for rep := 1; rep <= 3; rep++ {
		r.Points = append(r.Points, srtpPoint("relayd:userspace", cm80, rep, 1000, 4500, false), srtpPoint("rtpengine", cm80, rep, 1000, 9000, false))
	}
	s := Summarize(r)
	if len(s.Points) != 4 || len(s.SRTP) != 2 {
		t.Fatalf("%d plain and %d SRTP summaries, want 4 and 2", len(s.Points), len(s.SRTP))
	}
	// The plain targets stay, the SRTP one joins them.
	if n := len(s.Targets); n != 5 || s.Targets[4].Status != "met" {
		t.Errorf("targets %+v", s.Targets)
	}
	md := markdown(r, s, nil, true)
	// relayd:userspace at 1000 calls: 4500 ns with SRTP, 3002 plain.
	if !strings.Contains(md, "| relayd:userspace | 1000 | 100.0k | 100.0k | 0.00 |") || !strings.Contains(md, "| **4500** | 1.50× |") {
		t.Errorf("SRTP table without the plain comparison:\n%s", md)
	}
	if strings.Count(md, SRTPBeginMarker) != 1 || strings.Count(md, SRTPEndMarker) != 1 {
		t.Errorf("BENCHMARKS.md's SRTP part is not marked once")
	}
}

// TestUpdateBenchmarksSRTP: a run of the srtp mode alone replaces only its
// part of the generated block, a run without it keeps that part, and a
// run with it writes it anew.
func TestUpdateBenchmarksSRTP(t *testing.T) {
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
	// An srtp run into a document without a generated block.
	doc := write(srtpRun())
	if !strings.HasPrefix(doc, "# Benchmarks\n\nprose\n") || strings.Count(doc, SRTPBeginMarker) != 1 || strings.Count(doc, BeginMarker) != 1 {
		t.Fatalf("first srtp run:\n%s", doc)
	}
	// A full run without the srtp mode keeps the SRTP part.
	full := sampleRun()
	full.Setup.Modes = []string{"fixed", "ramp", "control"}
	doc = write(full)
	if !strings.Contains(doc, "### Fixed loads") || !strings.Contains(doc, "### SRTP on the callers' leg: "+cm80) ||
		strings.Count(doc, SRTPBeginMarker) != 1 {
		t.Fatalf("full run lost the SRTP part:\n%s", doc)
	}
	if i, j := strings.Index(doc, SRTPEndMarker), strings.Index(doc, EndMarker); i < 0 || j < i {
		t.Errorf("the SRTP part is outside the generated block")
	}
	// Another srtp run replaces only its part.
	again := srtpRun()
	again.Command = "go run ./bench --mode srtp --calls 100,200"
	doc = write(again)
	if !strings.Contains(doc, "### Fixed loads") || !strings.Contains(doc, again.Command) || strings.Count(doc, SRTPBeginMarker) != 1 {
		t.Fatalf("second srtp run:\n%s", doc)
	}
	if strings.Count(doc, "go run ./bench --mode srtp\n") != 0 {
		t.Errorf("the first srtp run's part is still there")
	}
	if !strings.HasPrefix(doc, "# Benchmarks\n\nprose\n") {
		t.Errorf("the hand-written part changed")
	}
}
