// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
)

// profile records where the relay's CPU goes under media load with perf:
// every sample on the relay's CPUs (the process, its NAPI threads and the
// softirq work done there), for one window at n calls of the session's
// current kind. The window is extra: perf's own cost must not distort a
// measured point.
func (s *session) profile(ctx context.Context, n int) error {
	if err := s.ensureCalls(ctx, n); err != nil {
		return err
	}
	if err := sleep(ctx, s.e.cfg.Warmup); err != nil {
		return err
	}
	_ = s.e.topo.PinNAPI()
	what, tag := fmt.Sprintf("media, %d calls", len(s.live)), "media"
	switch {
	case s.suite != "":
		what, tag = fmt.Sprintf("media with SRTP (%s) on the callers' leg, %d calls", s.suite, len(s.live)), "srtp"
	case s.pair != nil:
		what, tag = fmt.Sprintf("transcoded media (%s), %d calls", s.pair.pair.Label, len(s.live)), "transcode-"+s.pair.pair.Name
	}
	return s.perf(ctx, tag, what, s.e.cfg.Window, func(ctx context.Context) error {
		return sleep(ctx, s.e.cfg.Window)
	})
}

// profileControl records the relay's CPU during an extra closed-loop
// control-plane run.
func (s *session) profileControl(ctx context.Context) error {
	cfg := s.e.cfg
	what := fmt.Sprintf("control plane, %d requests in flight", cfg.ControlConc)
	return s.perf(ctx, "control", what, cfg.ControlDuration, func(ctx context.Context) error {
		s.drv.RunControl(ctx, calls.ControlOptions{Name: "profile", Duration: cfg.ControlDuration, Concurrency: cfg.ControlConc, NewCall: s.controlCall})
		return nil
	})
}

// perf runs `perf record` on the relay's CPUs (or its PID when it shares
// CPUs) for d while during runs, and keeps the flat profile.
func (s *session) perf(ctx context.Context, tag, what string, d time.Duration, during func(context.Context) error) error {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return fmt.Errorf("perf not installed (Debian: linux-perf): %w", err)
	}
	name := strings.NewReplacer(":", "-").Replace(s.spec.Name)
	data := filepath.Join(s.e.cfg.WorkDir, "profiles", name+"-"+tag+".perf.data")
	if err := os.MkdirAll(filepath.Dir(data), 0o755); err != nil {
		return err
	}
	target := []string{"-p", strconv.Itoa(s.proc.PID())}
	if len(s.e.cfg.RelayCPUs) > 0 && s.e.acc.Exclusive() {
		target = []string{"-C", cpuList(s.e.cfg.RelayCPUs)}
	}
	s.e.progress.phase(fmt.Sprintf("[%s] perf record: %s, %v", s.spec.Name, what, d))
	args := append([]string{"record", "-g", "-F", "999", "-o", data}, target...)
	args = append(args, "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	rctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(rctx, perf, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("perf record: %w", err)
	}
	derr := during(ctx)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("perf record: %w: %s", err, bytes.TrimSpace(out.Bytes()))
	}
	if derr != nil {
		return derr
	}
	top, err := perfReport(ctx, perf, data, "--sort", "comm,dso,symbol", "--percent-limit", "0.8")
	if err != nil {
		return err
	}
	byDSO, err := perfReport(ctx, perf, data, "--sort", "comm,dso", "--percent-limit", "1")
	if err != nil {
		return err
	}
	// The relay's own functions with everything they call (the kernel
	// work of their syscalls included): where its time goes by code path
	// rather than by leaf. For relayd, its Go packages' functions; for a
	// relay without symbols, whatever user-space frames resolve.
	all, _ := perfReportN(ctx, perf, data, 400, "--children", "--sort", "symbol", "--percent-limit", "3")
	keep := "[.] "
	if s.spec.Kind == relay.Relayd {
		keep = "github.com/"
	}
	var inclusive []string
	for _, l := range all {
		if strings.Contains(l, keep) && len(inclusive) < 20 {
			inclusive = append(inclusive, l)
		}
	}
	s.e.run.Profiles = append(s.e.run.Profiles, report.Profile{
		Relay: s.spec.Name, What: what, Tool: "perf record -g -F 999 " + strings.Join(target, " "), SRTPSuite: s.suite,
		Transcode: s.transcodeName(),
		Top:       top, ByDSO: byDSO, Inclusive: inclusive,
	})
	return nil
}

// perfReport returns perf report's first 25 flat profile lines (no call
// graphs).
func perfReport(ctx context.Context, perf, data string, sort ...string) ([]string, error) {
	return perfReportN(ctx, perf, data, 25, sort...)
}

// perfReportN returns up to n lines.
func perfReportN(ctx context.Context, perf, data string, n int, sort ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	args := []string{"report", "-i", data, "--stdio", "-g", "none"}
	if !slices.Contains(sort, "--children") {
		args = append(args, "--no-children")
	}
	args = append(args, sort...)
	out, err := exec.CommandContext(ctx, perf, args...).Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), " ")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lines = append(lines, l)
		if len(lines) == n {
			break
		}
	}
	return lines, nil
}

func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
