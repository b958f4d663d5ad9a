// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/pkg/ngproto"
)

// ModeRestart restarts relayd in the middle of a window with calls up and
// measures, per stream, what the calls lost across it.
const ModeRestart = report.ModeRestart

// The restart window: media before the stop, so that every stream is
// measured in its steady state first.
const restartBefore = time.Second

// maxRestartAttempts bounds the windows of one repetition: a window in
// which the generator stalled is measured again (with another restart).
const maxRestartAttempts = 3

// maxUserspaceGap is the restart mode's bound for a stream relayd forwards
// in userspace: its socket is closed from the stop until the new relayd
// binds it again.
const maxUserspaceGap = time.Second

// restartable says whether the restart mode applies: relayd forwarding
// its own media (the incumbent has no hand-over; a ceiling forwards
// nothing through relayd).
func restartable(s relay.Spec) bool { return s.Kind == relay.Relayd && s.Ceiling == "" }

// sessionModes says whether any mode besides restart runs on the relay's
// first process.
func (c *Config) sessionModes() bool {
	return slices.ContainsFunc(c.Modes, func(m string) bool { return m != ModeRestart })
}

// runModes runs one relay through the session modes, then the restart mode
// on a relay process of its own (started with a state-dir and pins).
func (e *env) runModes(ctx context.Context, spec relay.Spec, rep int) error {
	if e.cfg.sessionModes() {
		if err := e.runSession(ctx, spec, rep); err != nil {
			return err
		}
	}
	if e.cfg.has(ModeRestart) {
		return e.runRestart(ctx, spec, rep)
	}
	return nil
}

// runRestart runs the restart mode on a relayd started with --state-dir and
// its pins on a bpffs the bench mounts in its own (the host's) mount
// namespace: `ip netns exec` gives the relay a private /sys, and a bpffs
// relayd mounted there would die with the process, taking the kernel path
// with it.
func (e *env) runRestart(ctx context.Context, spec relay.Spec, rep int) (err error) {
	if !restartable(spec) {
		if rep == 1 {
			e.progress.println(fmt.Sprintf("[%s] restart mode: n/a (restart mode is relayd's)", spec.Name))
		}
		return nil
	}
	dir := filepath.Join(e.cfg.WorkDir, "restart", strings.NewReplacer(":", "-", "/", "-").Replace(spec.Name)+fmt.Sprintf("-rep%d", rep))
	bpffs, state := filepath.Join(dir, "bpffs"), filepath.Join(dir, "state")
	for _, d := range []string{bpffs, state} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("restart mode: %w", err)
		}
	}
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("restart mode: mount bpffs on %s: %w", bpffs, err)
	}
	defer func() {
		// The pins go with the mount: the program the last relayd left
		// attached detaches, and the next relay starts on bare veths.
		if uerr := unix.Unmount(bpffs, 0); uerr != nil {
			err = errors.Join(err, fmt.Errorf("restart mode: unmount %s: %w", bpffs, uerr))
			return
		}
		_ = os.Remove(bpffs)
		if left := e.xdpLeft(); len(left) > 0 {
			e.warn("%s rep %d: an XDP program is still attached to %v after the restart mode's pins were removed", spec.Name, rep, left)
		}
	}()
	rs := spec
	rs.Args = append(slices.Clone(spec.Args), "--state-dir="+state, "--xdp-pin-path="+filepath.Join(bpffs, "relayd"))
	prev, had := e.run.RelayArgs[spec.Name]
	s, err := e.startSession(ctx, rs, rep)
	e.run.RelayArgs[spec.Name+" (restart mode)"] = e.run.RelayArgs[spec.Name]
	if had {
		e.run.RelayArgs[spec.Name] = prev
	}
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.finish(ctx)) }()
	var x report.Restart
	for attempt := 1; ; attempt++ {
		x, err = s.restartWindow(ctx)
		x.Attempts = attempt
		if err != nil || !x.Disturbed() || attempt == maxRestartAttempts {
			break
		}
		e.warn("%s rep %d restart: the generator fell %.0f ms behind its schedule (%d packets skipped), the veths dropped %d: the window is measured again",
			spec.Name, rep, x.GenLagMs, x.GenSkipped, x.VethDrops)
	}
	e.run.Restarts = append(e.run.Restarts, x)
	if x.Streams > 0 {
		e.judgeRestart(x)
	}
	return err
}

// judgeRestart records the restart mode's checks: a --quick run fails on
// any of them.
func (e *env) judgeRestart(x report.Restart) {
	add := func(name string, ok bool, detail string) {
		e.run.Checks = append(e.run.Checks, report.Check{Relay: x.Relay, Rep: x.Rep, Name: name, OK: ok, Detail: detail})
	}
	add("restart: every call restored", x.Restored == int64(x.Calls),
		fmt.Sprintf("the new relay lists %d of %d calls", x.Restored, x.Calls))
	add("restart: every stream measured", x.Streams == 2*x.Calls,
		fmt.Sprintf("%d streams active for the whole window, want %d", x.Streams, 2*x.Calls))
	if x.Kernel {
		add("restart: kernel streams lose nothing", x.LostMax == 0 && x.KernelBefore >= int64(2*x.Calls),
			fmt.Sprintf("%d of %d streams lost packets (at most %d each); %d streams in the kernel before the stop",
				x.StreamsWithLoss, x.Streams, x.LostMax, x.KernelBefore))
		add("restart: streams back in the kernel", x.KernelAfter >= int64(2*x.Calls),
			fmt.Sprintf("%d streams in the kernel at the window's end, want %d", x.KernelAfter, 2*x.Calls))
	} else {
		add(fmt.Sprintf("restart: every stream's gap under %v", maxUserspaceGap), x.GapMaxMs < float64(maxUserspaceGap.Milliseconds()),
			fmt.Sprintf("longest silence %.0f ms (median stream %.0f ms); restart took %.0f ms", x.GapMaxMs, x.GapMedianMs, 1e3*x.RestartSec))
	}
}

// restartWindow sets the calls up, opens a window, restarts the relay in
// it and measures every stream across the restart.
func (s *session) restartWindow(ctx context.Context) (report.Restart, error) {
	cfg := s.e.cfg
	x := report.Restart{Relay: s.spec.Name, Rep: s.rep, Calls: cfg.RestartCalls, Kernel: s.spec.ExpectKernel}
	label := fmt.Sprintf("[%s rep %d/%d] restart, %d calls", s.spec.Name, s.rep, cfg.Reps, cfg.RestartCalls)
	s.e.progress.phase(label + ": setting up")
	if err := s.ensureCalls(ctx, cfg.RestartCalls); err != nil {
		return x, err
	}
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return x, err
	}
	want := int64(2 * cfg.RestartCalls)
	if x.Kernel {
		// Every RTP stream latched and in the kernel: what the hand-over
		// must keep forwarding.
		st, err := s.waitKernel(ctx, want, 10*time.Second)
		if err != nil {
			return x, err
		}
		x.KernelBefore = st.MediaKernel
		if st.MediaKernel < want {
			s.e.warn("%s rep %d: only %d of %d streams in the kernel before the restart", s.spec.Name, s.rep, st.MediaKernel, want)
		}
	}
	drops0, derr := s.e.topo.VethDrops(ctx)
	s.e.progress.phase(label + ": window open")
	s.e.gen.BeginWindow(time.Now())
	if err := sleep(ctx, restartBefore); err != nil {
		return x, err
	}
	s.e.progress.phase(label + ": restarting")
	if err := s.restartRelay(ctx, &x); err != nil {
		return x, err
	}
	st, err := s.drv.Statistics(ctx)
	if err != nil {
		return x, fmt.Errorf("%s: statistics after the restart: %w", s.spec.Name, err)
	}
	x.Restored = st.Sessions
	s.e.progress.phase(label + ": after the restart")
	if err := sleep(ctx, cfg.RestartAfter); err != nil {
		return x, err
	}
	s.e.gen.EndWindow(time.Now())
	if st, err := s.drv.Statistics(ctx); err == nil {
		x.KernelAfter = st.MediaKernel
	}
	if err := sleep(ctx, cfg.Drain); err != nil {
		return x, err
	}
	r, err := s.e.gen.ReportStreams(ctx)
	if err != nil {
		return x, err
	}
	if drops1, err := s.e.topo.VethDrops(ctx); err == nil && derr == nil {
		d := drops1.Sub(drops0)
		x.VethDrops = d.ToRelay + d.ToEndpoints
	}
	x.WindowSec, x.Sent, x.Received, x.Streams = r.WindowSec, r.Sent, r.Received, len(r.PerStream)
	var lost, gaps []float64
	for _, ps := range r.PerStream {
		l := ps.Lost()
		lost = append(lost, float64(l))
		if l > 0 {
			x.StreamsWithLoss++
		}
		x.LostMax = max(x.LostMax, l)
		ms := float64(ps.MaxGap.Microseconds()) / 1e3
		gaps = append(gaps, ms)
		x.GapMaxMs = max(x.GapMaxMs, ms)
	}
	x.LostMedian, x.GapMedianMs = report.Median(lost), report.Median(gaps)
	x.GenLagMs, x.GenSkipped = r.MaxLagMs, r.Skipped
	if r.SendErrors > 0 {
		x.Warnings = append(x.Warnings, fmt.Sprintf("the generator had %d send errors (not counted as sent)", r.SendErrors))
	}
	for _, w := range x.Warnings {
		s.e.warn("%s rep %d restart: %s", s.spec.Name, s.rep, w)
	}
	s.e.progress.println(fmt.Sprintf("[%s rep %d] restart in %.0f ms (stop %.0f ms): %d of %d streams lost packets (max %d), gap median %.0f ms, max %.0f ms; generator lag %.0f ms, veth drops %d",
		s.spec.Name, s.rep, 1e3*x.RestartSec, 1e3*x.StopSec, x.StreamsWithLoss, x.Streams, x.LostMax, x.GapMedianMs, x.GapMaxMs, x.GenLagMs, x.VethDrops))
	if err := s.alive(); err != nil {
		return x, err
	}
	return x, nil
}

// waitKernel polls the relay's statistics until want streams are in the
// kernel or timeout passes, and returns the last reading.
func (s *session) waitKernel(ctx context.Context, want int64, timeout time.Duration) (st calls.RelayStats, err error) {
	deadline := time.Now().Add(timeout)
	for {
		if st, err = s.drv.Statistics(ctx); err != nil {
			return st, fmt.Errorf("%s: statistics: %w", s.spec.Name, err)
		}
		if st.MediaKernel >= want || time.Now().After(deadline) {
			return st, nil
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return st, err
		}
	}
}

// restartRelay stops the relay with SIGTERM, waits for it to exit, starts
// the same command again and waits for it to answer ng, as a service
// manager's restart does.
func (s *session) restartRelay(ctx context.Context, x *report.Restart) error {
	old := s.proc
	// The client that tells when the new relay answers: one short try at a
	// time, so the duration is known to a few milliseconds.
	var ping *ngproto.Client
	err := netns.Do(netns.Path(s.e.topo.RelayNS), func() error {
		var err error
		ping, err = ngproto.Dial(s.e.topo.NG.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("ng socket: %w", err)
	}
	defer ping.Close()
	ping.Timeout, ping.Tries = 20*time.Millisecond, 1

	t0 := time.Now()
	if err := old.Stop(); err != nil {
		return fmt.Errorf("%w: stop %s for the restart: %v; log tail:\n%s", ErrRelayDied, s.spec.Name, err, old.LogTail(20))
	}
	x.StopSec = time.Since(t0).Seconds()
	if _, werr := old.Exited(); werr != nil {
		// A relay that fails its hand-over exits non-zero: the calls it
		// wrote may be stale.
		x.Warnings = append(x.Warnings, fmt.Sprintf("the stopped relay exited with %v", werr))
	}
	s.instance++
	logPath := strings.TrimSuffix(old.LogPath(), ".log")
	if i := strings.LastIndex(logPath, "-restart"); i >= 0 {
		logPath = logPath[:i]
	}
	logPath += fmt.Sprintf("-restart%d.log", s.instance)
	p, err := old.Respawn(logPath, s.e.log)
	if err != nil {
		return err
	}
	s.proc = p
	deadline := t0.Add(20 * time.Second)
	for {
		if done, werr := p.Exited(); done {
			return fmt.Errorf("%w: %s exited after the restart (%v); log tail:\n%s", ErrRelayDied, s.spec.Name, werr, p.LogTail(20))
		}
		if _, err := ping.Do(ctx, map[string]any{"command": "ping"}); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not answer ping within 20 s of its restart; log tail:\n%s", relay.ErrNotReady, s.spec.Name, p.LogTail(20))
		}
		time.Sleep(2 * time.Millisecond)
	}
	x.RestartSec = time.Since(t0).Seconds()
	// The pooled ng sockets may hold an ICMP "connection refused" from the
	// gap: clear it before they are used.
	return s.drv.Warm(ctx)
}

// xdpLeft lists the relay interfaces that still have an XDP program.
func (e *env) xdpLeft() []string {
	var left []string
	_ = netns.Do(netns.Path(e.topo.RelayNS), func() error {
		for _, side := range e.topo.Sides {
			l, err := netlink.LinkByName(side.Dev)
			if err != nil {
				continue
			}
			if x := l.Attrs().Xdp; x != nil && x.Attached && !slices.Contains(left, side.Dev) {
				left = append(left, side.Dev)
			}
		}
		return nil
	})
	return left
}
