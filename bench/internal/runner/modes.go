// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/ngceiling"
	"github.com/relayd/relayd/bench/internal/report"
)

// ramp finds the highest load (in calls) whose loss stays under the
// target. It starts from the fixed loads already measured in this session
// when there are any: the highest good one and the lowest bad one bracket
// the answer, and a few bisection steps narrow it. An overloaded relay may
// not recover (the incumbent stops reading sockets whose queue overflowed),
// so every probe after a lossy one runs on a fresh relay; in the first
// repetition the bench first checks whether the overloaded relay recovers
// at half the good load.
//
// mode names the probes' points; start is the first load tried when the
// seed has no load that met the target.
func (s *session) ramp(ctx context.Context, seed []report.Point, mode string, start int) (report.Ramp, error) {
	cfg := s.e.cfg
	r := report.Ramp{Relay: s.spec.Name, Rep: s.rep, Bound: "none", Transcode: s.transcodeName()}
	target := 100 * cfg.LossTarget
	var good, bad *report.Point
	consider := func(p report.Point) {
		ok := p.LossPct < target
		switch {
		case ok && (good == nil || p.Calls > good.Calls):
			good = &p
		case !ok && !p.GenBound && (bad == nil || p.Calls < bad.Calls):
			bad = &p
		}
	}
	genStop, overloaded := false, false
	for _, p := range seed {
		consider(p)
		if p.GenBound && (good == nil || p.Calls >= good.Calls) {
			genStop = true
		}
	}
	if len(seed) > 0 {
		overloaded = seed[len(seed)-1].LossPct >= target
	}
	// Generator-bound points above the best good load mean the relay's
	// limit cannot be found on this machine.
	if good != nil && genStop && bad == nil {
		r.MaxCalls, r.MaxPPS, r.Bound = good.Calls, good.DeliveredPPS, "generator"
		return r, nil
	}
	probe := func(n int) (report.Point, error) {
		if overloaded {
			if err := s.restart(ctx); err != nil {
				return report.Point{}, err
			}
			overloaded = false
		}
		if err := s.ensureCalls(ctx, n); err != nil {
			overloaded = true
			if fatal(ctx, err) {
				return report.Point{}, err
			}
			// A relay that cannot set calls up at this load (ng requests
			// time out behind its media work) failed the load.
			s.e.warn("%s rep %d: ramp at %d calls: %v", s.spec.Name, s.rep, n, err)
			return report.Point{Relay: s.spec.Name, Rep: s.rep, Mode: "ramp", Calls: n, LossPct: 100,
				Warnings: []string{"calls could not be set up: " + err.Error()}}, nil
		}
		p, err := s.measure(ctx, mode)
		if err == nil {
			r.Probes = append(r.Probes, p)
			s.e.run.Points = append(s.e.run.Points, p)
			overloaded = p.LossPct >= target
		}
		return p, err
	}
	// Bracket: grow by half until the loss target breaks.
	n := start
	if good != nil {
		n = good.Calls * 3 / 2
	}
	for bad == nil {
		if n > cfg.RampMaxCalls {
			if good != nil && good.Calls >= cfg.RampMaxCalls {
				r.Bound = "ceiling"
				break
			}
			n = cfg.RampMaxCalls
		}
		p, err := probe(n)
		if err != nil {
			return s.finishRamp(r, good, err)
		}
		consider(p)
		if p.GenBound {
			r.Bound = "generator"
			return s.finishRamp(r, good, nil)
		}
		if bad == nil {
			if n >= cfg.RampMaxCalls {
				r.Bound = "ceiling"
				break
			}
			n = n * 3 / 2
		}
	}
	if bad != nil && good != nil && overloaded && s.rep == 1 {
		if err := s.recovery(ctx, &r, max(10, good.Calls/2)); err != nil {
			return s.finishRamp(r, good, err)
		}
	}
	// Bisect.
	for step := 0; bad != nil && step < cfg.RampSteps; step++ {
		lo := 0
		if good != nil {
			lo = good.Calls
		}
		if bad.Calls-lo <= max(lo/20, 10) {
			break
		}
		mid := (lo + bad.Calls) / 2
		mid = max(10, mid/10*10)
		if mid <= lo || mid >= bad.Calls {
			break
		}
		p, err := probe(mid)
		if err != nil {
			return s.finishRamp(r, good, err)
		}
		if p.GenBound && p.LossPct >= target {
			r.Bound = "generator"
			return s.finishRamp(r, good, nil)
		}
		consider(p)
	}
	if bad != nil {
		r.Bound = "relay"
	}
	return s.finishRamp(r, good, nil)
}

// recovery measures an overloaded relay, without restarting it, at a load
// it handled before: does media flow again once the overload is gone?
func (s *session) recovery(ctx context.Context, r *report.Ramp, n int) error {
	if err := s.ensureCalls(ctx, n); err != nil {
		return err
	}
	p, err := s.measure(ctx, "recovery")
	if err != nil {
		return err
	}
	r.Recovery = &p
	if p.GenBound {
		// The generator stumbled: no verdict either way.
		return nil
	}
	// Recovered means media flows again on every call, give or take the
	// noise of a shared machine: no silent stream, under 1 % loss.
	ok := p.DeadStreams == 0 && p.LossPct < 1
	r.Recovered = &ok
	if !ok {
		s.e.warn("%s rep %d: after an overload the relay did not recover: %.1f%% loss at %d calls, a load it carried before (%d of %d streams silent)",
			s.spec.Name, s.rep, p.LossPct, n, p.DeadStreams, p.Streams)
	}
	return nil
}

func (s *session) finishRamp(r report.Ramp, good *report.Point, err error) (report.Ramp, error) {
	if good != nil {
		r.MaxCalls, r.MaxPPS = good.Calls, good.DeliveredPPS
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		// Calls that could not be set up at a higher load are the relay's
		// limit too (a timeout under overload): keep what was found.
		if errors.Is(err, ErrRelayDied) {
			return r, err
		}
		s.e.warn("%s rep %d: ramp stopped: %v", s.spec.Name, s.rep, err)
		r.Bound = "relay"
		return r, nil
	}
	return r, err
}

// control runs the control-plane benchmark: closed loop with one request
// at a time, closed loop with several, and open loop at the target rate.
// A ceiling entry runs it against the ng ceiling responder instead.
func (s *session) control(ctx context.Context) report.Control {
	if s.spec.Ceiling != "" {
		return s.controlCeiling(ctx)
	}
	if s.e.cfg.Profile && s.rep == 1 {
		if err := s.profileControl(ctx); err != nil {
			s.e.warn("%s: control-plane profile: %v", s.spec.Name, err)
		}
	}
	pid := s.proc.PID()
	return s.controlRuns(ctx, s.drv, func() (time.Duration, error) { return procCPU(pid) })
}

// controlCeiling measures what the generator and the round trip allow:
// the same runs against a responder that does no relay work, pinned to
// the relay's CPUs, beside the ceiling's relayd (which keeps its ng port).
func (s *session) controlCeiling(ctx context.Context) report.Control {
	ng := s.e.topo.NG
	addr := netip.AddrPortFrom(ng.Addr(), ng.Port()+1)
	r, err := ngceiling.Start(netns.Path(s.e.topo.RelayNS), addr, s.e.cfg.RelayCPUs)
	if err != nil {
		s.e.warn("%s: control-plane ceiling: %v", s.spec.Name, err)
		return report.Control{Relay: s.spec.Name, Rep: s.rep}
	}
	defer func() {
		if err := r.Stop(); err != nil {
			s.e.warn("%s: control-plane ceiling: %v", s.spec.Name, err)
		}
	}()
	drv, err := calls.NewDriver(calls.Options{
		NG: addr, NSPath: netns.Path(s.e.topo.RelayNS), Conns: max(s.e.cfg.ControlConc, 1),
		Directions: s.e.topo.Directions, Log: s.e.log,
	})
	if err != nil {
		s.e.warn("%s: control-plane ceiling: %v", s.spec.Name, err)
		return report.Control{Relay: s.spec.Name, Rep: s.rep}
	}
	defer drv.Close()
	if err := drv.Warm(ctx); err != nil {
		s.e.warn("%s: control-plane ceiling: %v", s.spec.Name, err)
		return report.Control{Relay: s.spec.Name, Rep: s.rep}
	}
	return s.controlRuns(ctx, drv, r.CPU)
}

// controlRuns runs the control-plane runs through drv; relayCPU reads the
// CPU time of whatever answers.
func (s *session) controlRuns(ctx context.Context, drv *calls.Driver, relayCPU func() (time.Duration, error)) report.Control {
	cfg := s.e.cfg
	out := report.Control{Relay: s.spec.Name, Rep: s.rep}
	runs := []calls.ControlOptions{
		{Name: "sequential", Concurrency: 1},
		{Name: fmt.Sprintf("concurrent-%d", cfg.ControlConc), Concurrency: cfg.ControlConc},
	}
	if cfg.ControlRate > 0 {
		runs = append(runs, calls.ControlOptions{Name: fmt.Sprintf("paced-%.0f", cfg.ControlRate), Concurrency: cfg.ControlConc, Rate: cfg.ControlRate})
	}
	benchCPU := func() (time.Duration, error) { return procCPU(0) }
	for _, o := range runs {
		if ctx.Err() != nil || s.alive() != nil {
			break
		}
		o.Duration = cfg.ControlDuration
		o.NewCall = s.controlCall
		s.e.progress.phase(fmt.Sprintf("[%s rep %d/%d] control plane %s for %v", s.spec.Name, s.rep, cfg.Reps, o.Name, o.Duration))
		relay0, err1 := relayCPU()
		bench0, err2 := benchCPU()
		res := drv.RunControl(ctx, o)
		relay1, err3 := relayCPU()
		bench1, err4 := benchCPU()
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			s.e.warn("%s rep %d control %s: CPU not measured: %v", s.spec.Name, s.rep, o.Name, err)
		} else {
			res.RelayCPUSec = (relay1 - relay0).Seconds()
			res.BenchCPUSec = (bench1 - bench0).Seconds()
			if s.spec.Ceiling != "" {
				// The responder is a thread of the bench's own.
				res.BenchCPUSec -= res.RelayCPUSec
			}
		}
		s.e.progress.println(fmt.Sprintf("[%s rep %d] control %s: %.0f setups/s, offer p50/p99 %.0f/%.0f µs, answer p99 %.0f µs, %d errors; relay CPU %.0f µs/setup (%.0f %% busy), bench %.0f %%",
			s.spec.Name, s.rep, o.Name, res.SetupsPerSec, res.Offer.P50, res.Offer.P99, res.Answer.P99, res.Errors,
			res.RelayCPUPerSetupUs(), res.RelayBusyPct(), res.BenchBusyPct()))
		if res.Errors > 0 {
			s.e.warn("%s rep %d control %s: %d errors, first: %s", s.spec.Name, s.rep, o.Name, res.Errors, res.FirstError)
		}
		out.Results = append(out.Results, res)
	}
	return out
}

// procCPU is a process's CPU time so far (pid 0: the bench).
func procCPU(pid int) (time.Duration, error) {
	t, err := metrics.ReadProc(pid)
	return time.Duration(t.Total()) * metrics.Tick, err
}

// controlCall makes the i-th call of a control-plane run: addresses of the
// bench's sides, ports nobody listens on (no media flows in this mode).
func (s *session) controlCall(i int) *calls.Call {
	sides := s.e.topo.Sides
	a := netip.AddrPortFrom(sides[0].Addrs[i%len(sides[0].Addrs)], uint16(30000+2*(i%5000)))
	b := netip.AddrPortFrom(sides[1].Addrs[i%len(sides[1].Addrs)], uint16(30000+2*(i%5000)))
	return s.e.newCall(a, b)
}

// soak keeps SoakCalls calls up for SoakDuration while replacing
// SoakChurn calls per second, with media on every call, and watches the
// relay's memory and descriptors.
func (s *session) soak(ctx context.Context) (report.Soak, error) {
	cfg := s.e.cfg
	so := report.Soak{Relay: s.spec.Name, Rep: s.rep, Calls: cfg.SoakCalls, ChurnPerSec: cfg.SoakChurn}
	if err := s.ensureCalls(ctx, cfg.SoakCalls); err != nil {
		return so, err
	}
	if err := sleep(ctx, cfg.Warmup); err != nil {
		return so, err
	}
	so.RSSStart, _ = metrics.ReadRSS(s.proc.PID())
	so.RSSMax = so.RSSStart
	so.FDsStart = s.fds()
	silent0 := s.silent
	m, err := s.begin(ctx)
	if err != nil {
		return so, err
	}
	start := time.Now()
	label := fmt.Sprintf("[%s rep %d/%d] soak %d calls, %.1f/s churn", s.spec.Name, s.rep, cfg.Reps, cfg.SoakCalls, cfg.SoakChurn)
	s.e.progress.window(label, cfg.SoakDuration, m.pids, m.genPIDs)
	const tick = 200 * time.Millisecond
	var owed float64
	// Replaced calls are deleted a tick later, once their last packets
	// have arrived, so the churn never waits on a drain.
	var retiring []*liveCall
	retire := func() error {
		delErr0 := s.deleteErrors
		err := s.deleteCalls(ctx, retiring)
		so.Deleted += len(retiring)
		so.DeleteErrors += s.deleteErrors - delErr0
		retiring = nil
		return err
	}
	for time.Since(start) < cfg.SoakDuration && ctx.Err() == nil {
		if err := sleep(ctx, tick); err != nil {
			break
		}
		if err := s.alive(); err != nil {
			s.e.progress.window("", 0, nil, nil)
			return so, err
		}
		owed += cfg.SoakChurn * tick.Seconds()
		k := min(int(owed), len(s.live))
		owed -= float64(k)
		if k == 0 {
			continue
		}
		// Replace the oldest calls: new ones first, then the old ones go,
		// so the population never dips.
		if err := retire(); err != nil {
			break
		}
		old := append([]*liveCall(nil), s.live[:k]...)
		added, err := s.addCalls(ctx, k)
		so.Created += len(added)
		if err != nil {
			so.SetupErrors += k - len(added)
			s.e.log.Warn("soak setup", "err", err)
		}
		s.live = append(s.live[k:], added...)
		s.deactivate(old)
		retiring = old
		if rss, err := metrics.ReadRSS(s.proc.PID()); err == nil && rss > so.RSSMax {
			so.RSSMax = rss
		}
	}
	s.e.progress.window("", 0, nil, nil)
	_ = sleep(ctx, cfg.Drain)
	if err := retire(); err != nil {
		return so, err
	}
	p, err := s.end(context.WithoutCancel(ctx), m, ModeSoak)
	so.Media = p
	so.DurationSec = time.Since(start).Seconds()
	so.RSSEnd, _ = metrics.ReadRSS(s.proc.PID())
	so.RSSMax = max(so.RSSMax, so.RSSEnd)
	so.FDsEnd = s.fds()
	so.SilentCalls = s.silent - silent0
	if st, serr := s.drv.Statistics(context.WithoutCancel(ctx)); serr == nil {
		so.SessionsEnd = st.Sessions
	}
	if so.Created > 0 {
		// Memory growth per replaced call: a leak shows as a steady rise.
		s.e.progress.println(fmt.Sprintf("[%s rep %d] soak: %d calls replaced, RSS %.1f → %.1f MiB, fds %d → %d",
			s.spec.Name, s.rep, so.Created, float64(so.RSSStart)/(1<<20), float64(so.RSSEnd)/(1<<20), so.FDsStart, so.FDsEnd))
	}
	if err == nil {
		err = ctx.Err()
	}
	if p.LossPct > 100*cfg.LossTarget && !math.IsNaN(p.LossPct) {
		s.e.warn("%s rep %d soak: loss %.3f%% above the target", s.spec.Name, s.rep, p.LossPct)
	}
	return so, err
}
