// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bench/internal/topo"
	"github.com/relayd/relayd/bpf"
	"github.com/relayd/relayd/pkg/ngproto"
)

// liveCall is a call set up on the relay with its media slot.
type liveCall struct {
	c    *calls.Call
	slot gen.CallSlot
	tc   *tcMedia // the frames of a transcoded call, nil otherwise
}

// session is one relay process: started, driven through the modes,
// checked, stopped.
type session struct {
	e        *env
	spec     relay.Spec
	rep      int
	instance int // relay processes started so far (restarts after overload)
	proc     *relay.Process
	drv      *calls.Driver
	ceiling  *bpf.Ceiling // a ceiling entry's bounce program
	live     []*liveCall

	rss0   uint64
	stats0 calls.RelayStats
	sent0  uint64
	recv0  uint64

	// Per-call checks at delete time.
	checked, mismatched, silent int
	firstMismatch               string
	deleteErrors                int

	// suite is the SDES suite of the calls set up from now on ("": plain
	// RTP); srtp holds this relay instance's SRTP figures.
	suite string
	srtp  srtpState
	// pair is the transcoding pair of the calls set up from now on (nil:
	// not transcoded); concealed sums what the delete replies of this
	// relay instance's calls said it concealed.
	pair      *tcMedia
	concealed int64
}

func (e *env) startSession(ctx context.Context, spec relay.Spec, rep int) (*session, error) {
	s := &session{e: e, spec: spec, rep: rep}
	if err := s.launch(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// launch starts a relay instance and takes its baselines.
func (s *session) launch(ctx context.Context) error {
	e, spec := s.e, s.spec
	s.instance++
	logName := strings.NewReplacer(":", "-", "/", "-").Replace(spec.Name) + fmt.Sprintf("-rep%d", s.rep)
	if s.instance > 1 {
		logName += fmt.Sprintf("-%d", s.instance)
	}
	opts := relay.Options{
		Binary:     e.bins[spec.Kind],
		NS:         e.topo.RelayNS,
		CPUs:       e.cfg.RelayCPUs,
		Interfaces: e.topo.Interfaces,
		NG:         e.topo.NG.String(),
		PortMin:    e.topo.PortMin,
		PortMax:    e.topo.PortMax,
		LogLevel:   e.cfg.RelayLogLevel,
		LogPath:    filepath.Join(e.cfg.WorkDir, "logs", logName+".log"),
		Log:        e.log,
	}
	e.progress.phase(fmt.Sprintf("[%s rep %d/%d] starting", spec.Name, s.rep, e.cfg.Reps))
	proc, err := relay.Start(spec, opts)
	if err != nil {
		return err
	}
	s.proc = proc
	e.run.RelayArgs[spec.Name] = strings.Join(relay.Args(spec, opts), " ")
	drv, err := calls.NewDriver(calls.Options{
		NG: e.topo.NG, NSPath: netns.Path(e.topo.RelayNS), Conns: max(e.cfg.SetupConc, e.cfg.ControlConc, 1),
		Directions: e.topo.Directions, Log: e.log,
	})
	if err != nil {
		_ = proc.Stop()
		return err
	}
	s.drv = drv
	if err := proc.WaitReady(ctx, 20*time.Second, drv.Ping); err != nil {
		s.stop()
		return err
	}
	if err := drv.Warm(ctx); err != nil {
		s.stop()
		return fmt.Errorf("%s: %w", spec.Name, err)
	}
	if spec.Ceiling != "" {
		if err := s.attachCeiling(); err != nil {
			s.stop()
			return err
		}
	}
	// Let the relay finish starting (threads, allocations) before the
	// memory baseline.
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		s.stop()
		return err
	}
	s.rss0, _ = metrics.ReadRSS(proc.PID())
	s.stats0, err = drv.Statistics(ctx)
	if err != nil {
		s.stop()
		return fmt.Errorf("%s: statistics: %w", spec.Name, err)
	}
	s.sent0, s.recv0 = e.gen.Totals()
	s.srtp.reset(e.gen.SRTPTotals())
	s.concealed = 0
	return nil
}

// restart replaces the relay with a fresh instance (after an overload
// that may have left it degraded), checking the old one as finish does.
func (s *session) restart(ctx context.Context) error {
	s.e.progress.println(fmt.Sprintf("[%s rep %d] restarting the relay after an overload", s.spec.Name, s.rep))
	if err := s.finish(ctx); err != nil && fatal(ctx, err) {
		return err
	}
	s.checked, s.mismatched, s.silent, s.firstMismatch = 0, 0, 0, ""
	return s.launch(ctx)
}

func (s *session) stop() {
	if s.ceiling != nil {
		if err := s.ceiling.Close(); err != nil {
			s.e.warn("%s: detach the bounce program: %v", s.spec.Name, err)
		}
		s.ceiling = nil
	}
	if s.drv != nil {
		s.drv.Close()
	}
	if s.proc != nil {
		if err := s.proc.Stop(); err != nil {
			s.e.warn("%s: %v", s.spec.Name, err)
		}
	}
}

// alive fails when the relay has died.
func (s *session) alive() error {
	if done, err := s.proc.Exited(); done {
		return fmt.Errorf("%w: %s exited (%v); log tail:\n%s", ErrRelayDied, s.spec.Name, err, s.proc.LogTail(20))
	}
	return nil
}

// ensureCalls sets up or removes calls until n are live.
func (s *session) ensureCalls(ctx context.Context, n int) error {
	if err := s.alive(); err != nil {
		return err
	}
	if n < len(s.live) {
		drop := s.live[n:]
		s.live = s.live[:n]
		return s.removeCalls(ctx, drop)
	}
	if n == len(s.live) {
		return nil
	}
	s.e.progress.phase(fmt.Sprintf("[%s rep %d/%d] setting up calls %d→%d", s.spec.Name, s.rep, s.e.cfg.Reps, len(s.live), n))
	added, err := s.addCalls(ctx, n-len(s.live))
	s.live = append(s.live, added...)
	return err
}

// addCalls sets up k new calls and starts their media.
func (s *session) addCalls(ctx context.Context, k int) ([]*liveCall, error) {
	var (
		mu    sync.Mutex
		out   []*liveCall
		errs  []error
		wg    sync.WaitGroup
		work  = make(chan *liveCall)
		conc  = max(1, min(s.e.cfg.SetupConc, k))
		start = time.Now()
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lc := range work {
				err := s.setupOne(ctx, lc)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					out = append(out, lc)
				}
				mu.Unlock()
			}
		}()
	}
	var allocErr error
feed:
	for range k {
		slot, err := s.e.gen.Allocate()
		if err != nil {
			allocErr = err
			break
		}
		lc := &liveCall{slot: slot, c: s.e.newCall(slot.Caller, slot.Callee), tc: s.pair}
		if lc.tc != nil {
			lc.c.Transcode = &lc.tc.pair
		}
		select {
		case work <- lc:
		case <-ctx.Done():
			s.e.gen.Release(slot)
			break feed
		}
	}
	close(work)
	wg.Wait()
	s.e.log.Debug("calls set up", "relay", s.spec.Name, "calls", len(out), "took", time.Since(start))
	if len(errs) > 0 {
		return out, fmt.Errorf("%d of %d call setups failed on %s, first: %w", len(errs), k, s.spec.Name, errs[0])
	}
	if allocErr != nil {
		return out, allocErr
	}
	return out, ctx.Err()
}

// setupOne runs offer and answer, checks the relay's addresses and starts
// the media. A failed call is deleted again and its slot released.
func (s *session) setupOne(ctx context.Context, lc *liveCall) error {
	err := s.keyCall(lc.c)
	if err == nil {
		_, _, err = s.drv.Setup(ctx, lc.c)
	}
	if err == nil {
		err = s.checkAddrs(lc.c)
	}
	switch {
	case err != nil:
	case lc.tc != nil:
		err = s.e.gen.ActivateTranscode(lc.slot, lc.c.CallerSendTo, lc.c.CalleeSendTo, &gen.TranscodeCall{
			Caller: lc.tc.caller, Callee: lc.tc.callee, CallerPT: lc.c.PT, CalleePT: lc.c.CalleePT})
	default:
		err = s.e.gen.ActivateSRTP(lc.slot, lc.c.CallerSendTo, lc.c.CalleeSendTo, lc.c.PT, s.srtpCall(lc.c))
	}
	if err != nil {
		_, _, _ = s.drv.Delete(context.WithoutCancel(ctx), lc.c)
		s.e.gen.Release(lc.slot)
	}
	return err
}

// checkAddrs makes sure the rewritten SDPs point each party at the relay's
// address on its side: media must never be sent anywhere else.
func (s *session) checkAddrs(c *calls.Call) error {
	want := [2]netip.Addr{s.e.topo.Sides[0].Relay, s.e.topo.Sides[1].Relay}
	if c.CallerSendTo.Addr() != want[0] || c.CalleeSendTo.Addr() != want[1] {
		return fmt.Errorf("%w: call %s: relay told the caller to send to %s and the callee to %s, want %s and %s",
			ErrBadRelayAnswer, c.ID, c.CallerSendTo, c.CalleeSendTo, want[0], want[1])
	}
	return nil
}

// removeCalls stops the calls' media, lets packets in flight arrive, deletes
// them on the relay and compares the relay's per-call counters with the
// bench's.
func (s *session) removeCalls(ctx context.Context, lcs []*liveCall) error {
	if len(lcs) == 0 {
		return nil
	}
	s.e.progress.phase(fmt.Sprintf("[%s rep %d/%d] deleting %d calls", s.spec.Name, s.rep, s.e.cfg.Reps, len(lcs)))
	s.deactivate(lcs)
	if err := sleep(ctx, s.e.cfg.Drain); err != nil {
		return err
	}
	return s.deleteCalls(ctx, lcs)
}

// deactivate stops the calls' media.
func (s *session) deactivate(lcs []*liveCall) {
	for _, lc := range lcs {
		s.e.gen.Deactivate(lc.slot)
	}
}

// deleteCalls deletes deactivated calls whose packets have arrived, checks
// their counters and frees their slots.
func (s *session) deleteCalls(ctx context.Context, lcs []*liveCall) error {
	if len(lcs) == 0 {
		return nil
	}
	slots := make([]gen.CallSlot, len(lcs))
	cs := make([]*calls.Call, len(lcs))
	for i, lc := range lcs {
		slots[i], cs[i] = lc.slot, lc.c
	}
	rep, err := s.e.gen.Report(ctx, slots)
	if err != nil {
		return err
	}
	// Deletes must reach the relay even when the run is being cancelled:
	// calls left behind would hold its ports until the relay stops.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	totals, derr := s.drv.DeleteAll(dctx, cs, max(s.e.cfg.SetupConc, 1))
	for _, t := range totals {
		s.concealed += t.Transcoding.Concealed
	}
	for i, t := range totals {
		s.compareCall(cs[i], rep.Calls[i], t)
		s.e.gen.Release(slots[i])
	}
	if derr != nil {
		s.deleteErrors++
		s.e.warn("%s rep %d: %v", s.spec.Name, s.rep, derr)
	}
	return nil
}

// compareCall checks one call: the relay received at least what the far
// ends got (less what it says it concealed: those it made up) and at most
// what the near ends sent, and both directions carried media.
func (s *session) compareCall(c *calls.Call, ours gen.CallTotals, t calls.CallTotals) {
	sent := ours.Sent[0] + ours.Sent[1]
	recv := ours.Received[0] + ours.Received[1]
	if (ours.Sent[0] > 0 && ours.Received[0] == 0) || (ours.Sent[1] > 0 && ours.Received[1] == 0) {
		s.silent++
	}
	// A ceiling's packets never reach relayd: it has nothing to compare.
	if !t.OK || s.spec.Ceiling != "" {
		return
	}
	s.checked++
	if t.RTPPackets < int64(recv)-t.Transcoding.Concealed || t.RTPPackets > int64(sent) {
		s.mismatched++
		if s.firstMismatch == "" {
			s.firstMismatch = fmt.Sprintf("call %s: relay counted %d RTP packets, the bench sent %d and received %d", c.ID, t.RTPPackets, sent, recv)
		}
	}
}

// finish deletes every call, records the session's checks and stops the
// relay.
func (s *session) finish(ctx context.Context) error {
	err := s.removeCalls(ctx, s.live)
	s.live = nil
	run := s.e.run
	add := func(name string, ok bool, detail string) {
		run.Checks = append(run.Checks, report.Check{Relay: s.spec.Name, Rep: s.rep, Name: name, OK: ok, Detail: detail})
	}
	if s.checked > 0 {
		detail := fmt.Sprintf("%d calls compared with their delete reply totals", s.checked)
		if s.mismatched > 0 {
			detail += fmt.Sprintf("; %d outside [received by the bench, sent by the bench], e.g. %s", s.mismatched, s.firstMismatch)
		}
		add("per-call counters", s.mismatched == 0, detail)
	}
	if s.checked > 0 || s.silent > 0 || s.spec.Ceiling != "" {
		add("every call carried media both ways", s.silent == 0, fmt.Sprintf("%d calls silent in a direction", s.silent))
	}
	s.srtpChecks(add)
	if alive := s.alive(); alive == nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		st, serr := s.drv.Statistics(sctx)
		cancel()
		if serr == nil {
			sent, recv := s.e.gen.Totals()
			ds, dr := sent-s.sent0, recv-s.recv0
			relayed := st.RelayedPackets - s.stats0.RelayedPackets
			if ds > 0 && s.spec.Ceiling == "" {
				ok := relayed >= int64(dr)-s.concealed && relayed <= int64(ds)
				detail := fmt.Sprintf("relayedpackets grew by %d; the bench sent %d and received %d", relayed, ds, dr)
				if s.concealed > 0 {
					detail += fmt.Sprintf(", of which the relay says it concealed %d", s.concealed)
				}
				add("relay statistics", ok, detail)
			}
			add("no calls left", st.Sessions == 0, fmt.Sprintf("%d sessions after deleting every call", st.Sessions))
		} else {
			detail := serr.Error()
			if s.proc != nil && errors.Is(serr, ngproto.ErrTimeout) {
				// Unanswered, yet alive: where it waits is in its stacks.
				s.proc.DumpGoroutines()
				detail += "; goroutine dump in " + s.proc.LogPath()
			}
			add("relay statistics", false, detail)
		}
	} else {
		add("relay stayed up", false, alive.Error())
		err = errors.Join(err, alive)
	}
	s.stop()
	return err
}

// measurement is an open measurement window.
type measurement struct {
	s0             metrics.Sample
	udpR0, udpE0   metrics.UDPCounters
	drops0         topo.Drops
	st0            calls.RelayStats
	prog0          bpf.RunStats
	srtp0          gen.SRTPTotals
	calls, streams int
	pids, genPIDs  []int
	// Transcoded calls: the far ends' counts, and what the relay said
	// about the live calls before the window (queried when tcErr is nil).
	tc0   gen.TranscodeTotals
	tcq0  calls.Transcoding
	tcErr error
}

// pids are the relay process and the relay-side NAPI threads (which carry
// the relay host's receive work and a native XDP program), and the
// endpoint-side NAPI threads that belong to the generator. A relay that
// attached XDP may have recreated the threads: they are pinned again.
func (s *session) pids() (relay, gen []int) {
	if err := s.e.topo.PinNAPI(); err != nil {
		s.e.warn("pin NAPI threads: %v", err)
	}
	return append([]int{s.proc.PID()}, topo.RelayNAPIThreads()...), topo.EndpointNAPIThreads()
}

// begin opens a measurement window on the live calls.
func (s *session) begin(ctx context.Context) (*measurement, error) {
	m := &measurement{calls: len(s.live), streams: 2 * len(s.live)}
	if s.pair != nil {
		// Before the relay's CPU is sampled: the queries are not media
		// work.
		m.tcq0, m.tcErr = s.queryLive(ctx)
		m.tc0 = s.e.gen.TranscodeTotals()
	}
	m.pids, m.genPIDs = s.pids()
	var err error
	if m.s0, err = metrics.TakeSample(m.pids, m.genPIDs); err != nil {
		return nil, err
	}
	m.udpR0, _ = metrics.ReadUDP(s.proc.PID())
	m.udpE0 = s.e.endpointUDP()
	m.drops0, _ = s.e.topo.VethDrops(ctx)
	if m.st0, err = s.drv.Statistics(ctx); err != nil {
		return nil, err
	}
	if s.e.runStats {
		m.prog0, _ = bpf.ReadRunStats()
	}
	m.srtp0 = s.e.gen.SRTPTotals()
	s.e.gen.BeginWindow(time.Now())
	return m, nil
}

// end closes the window and turns it into a point.
func (s *session) end(ctx context.Context, m *measurement, mode string) (report.Point, error) {
	pid := s.proc.PID()
	rss, _ := metrics.ReadRSS(pid)
	s.e.gen.EndWindow(time.Now())
	var prog1 bpf.RunStats
	if s.e.runStats {
		prog1, _ = bpf.ReadRunStats()
	}
	s1, err := metrics.TakeSample(m.pids, m.genPIDs)
	if err != nil {
		return report.Point{}, err
	}
	udpR1, _ := metrics.ReadUDP(pid)
	udpE1 := s.e.endpointUDP()
	drops1, _ := s.e.topo.VethDrops(ctx)
	st1, err := s.drv.Statistics(ctx)
	if err != nil {
		return report.Point{}, err
	}
	if err := sleep(ctx, s.e.cfg.Drain); err != nil {
		return report.Point{}, err
	}
	r, err := s.e.gen.Report(ctx, nil)
	if err != nil {
		return report.Point{}, err
	}
	u := s.e.acc.Usage(m.s0, s1)
	var tcq1 calls.Transcoding
	if s.pair != nil && m.tcErr == nil {
		tcq1, m.tcErr = s.queryLive(ctx)
	}
	sec := s.e.gen.SRTPTotals().Sub(m.srtp0)
	p := report.Point{
		Relay: s.spec.Name, Rep: s.rep, Mode: mode, Calls: m.calls, Streams: r.Streams,
		WindowSec: r.WindowSec, TargetPPS: float64(m.streams) * s.e.cfg.PPS,
		Sent: r.Sent, Received: r.Received, LossPct: 100 * r.Loss(), Duplicates: r.Duplicates, Reordered: r.Reordered,
		LatP50Us: r.Latency.Quantile(0.5) / 1e3, LatP99Us: r.Latency.Quantile(0.99) / 1e3,
		LatP999Us: r.Latency.Quantile(0.999) / 1e3, LatMaxUs: float64(r.Latency.Max()) / 1e3,
		JitterUs: r.JitterMeanUs, DeadStreams: r.DeadStreams, Stray: r.Stray, SendErrors: r.SendErrors,
		Skipped: r.Skipped, MaxLagMs: r.MaxLagMs,
		RelayCPUPct: 100 * u.RelayUtil(), RelayCPUSec: u.Relay.Seconds(), RelayProcSec: u.RelayProc.Seconds(),
		RelaySoftSec: u.RelaySoftirq.Seconds(), GenCPUPct: 100 * u.GenUtil(), RSSBytes: rss,
		ForeignCPUPct:     100 * u.RelayForeign.Seconds() / max(u.Wall.Seconds(), 1e-9) / float64(max(u.RelayCPUCount, 1)),
		RelayBacklogDrops: u.RelayBacklogDrops, GenBacklogDrops: u.GenBacklogDrops,
		RelayRelayed: st1.RelayedPackets - m.st0.RelayedPackets, KernelRelayed: st1.KernelPackets - m.st0.KernelPackets,
		SRTPSuite: s.suite, SRTPEncrypted: sec.Encrypted, SRTPDecrypted: sec.Decrypted,
		SRTPFailed: sec.AuthFailed + sec.PlainOnSRTP + sec.Corrupt,
	}
	if r.Latency.Count() == 0 {
		p.LatP50Us, p.LatP99Us, p.LatP999Us = math.NaN(), math.NaN(), math.NaN()
	}
	if r.WindowSec > 0 {
		p.OfferedPPS = float64(r.Sent) / r.WindowSec
		p.DeliveredPPS = float64(r.Received) / r.WindowSec
	}
	p.ProgNsPerRun = math.NaN()
	runs := prog1.Relay.Sub(m.prog0.Relay)
	if s.spec.Ceiling != "" {
		runs = prog1.Ceiling.Sub(m.prog0.Ceiling)
	}
	if runs.Runs > 0 && s.e.runStats {
		p.ProgNsPerRun = float64(runs.Runtime.Nanoseconds()) / float64(runs.Runs)
	}
	p.NsPerPacket = math.NaN()
	if r.Received > 0 {
		p.NsPerPacket = float64(u.Relay.Nanoseconds()) / float64(r.Received)
	}
	if m.calls > 0 && rss > s.rss0 {
		p.MemPerCallKB = float64(rss-s.rss0) / float64(m.calls) / 1024
	}
	dR := udpR1.Sub(m.udpR0)
	p.RelayRcvbufErrors = dR.RcvbufErrors
	if !s.e.sharedNS {
		p.EndpointRcvbufErrs = udpE1.Sub(m.udpE0).RcvbufErrors
	}
	dd := drops1.Sub(m.drops0)
	p.VethDropsToRelay, p.VethDropsToEndpoints = dd.ToRelay, dd.ToEndpoints
	if s.pair != nil {
		s.transcodePoint(&p, m, tcq1)
	}
	s.judge(&p, r, u)
	return p, nil
}

// judge decides whether the generator limited the point and collects
// warnings.
func (s *session) judge(p *report.Point, r *gen.Report, u metrics.Usage) {
	lossy := p.LossPct >= 100*s.e.cfg.LossTarget
	reason := func(format string, a ...any) { p.GenReasons = append(p.GenReasons, fmt.Sprintf(format, a...)) }
	if p.TargetPPS > 0 && p.OfferedPPS < 0.97*p.TargetPPS {
		reason("offered %.1f%% of the target rate", 100*p.OfferedPPS/p.TargetPPS)
	}
	// A single stall (another program on the generator's CPU) shows as a
	// lag spike; only packets given up on, beyond a trace, mean the
	// generator could not keep the rate.
	if r.Skipped > r.Sent/1000 {
		reason("%d packets fell >100 ms behind schedule and were not sent", r.Skipped)
	}
	if r.SendErrors > 0 {
		reason("%d send errors", r.SendErrors)
	}
	if p.EndpointRcvbufErrs > 0 {
		reason("endpoint sockets overflowed %d times", p.EndpointRcvbufErrs)
	}
	// A saturated relay drains its backlog in bursts that overflow the
	// veth's 256-packet ring on the way out however fast the endpoints
	// are: those drops are the relay's. Below saturation they are the
	// endpoints' (the generator's CPU did not keep up).
	if p.VethDropsToEndpoints > p.Sent/1000 && p.RelayCPUPct < 90 {
		reason("the endpoints' veths dropped %d packets (their NAPI threads did not keep up)", p.VethDropsToEndpoints)
	}
	// A generator that fell behind sends what it owes at once; a catch-up
	// burst beyond the 256-packet ring of the relay's veth is dropped
	// before any relay code runs. With the relay's CPUs mostly idle those
	// drops are the burst's, not the relay's limit: the ceiling, which
	// does no relay work at all, drops the same way at the same loads.
	if p.VethDropsToRelay > p.Sent/1000 && p.RelayCPUPct < 50 && p.MaxLagMs >= 5 {
		reason("the generator fell %.0f ms behind and its catch-up burst overflowed the relay veth's 256-packet ring (%d drops with the relay's CPU %.0f%% busy)",
			p.MaxLagMs, p.VethDropsToRelay, p.RelayCPUPct)
	}
	if u.Exclusive && p.GenBacklogDrops > 0 {
		reason("the generator CPU's input backlog dropped %d packets", p.GenBacklogDrops)
	}
	if lossy && u.Exclusive && u.GenUtil() >= 0.95 {
		reason("generator CPU at %.0f%% while packets were lost", 100*u.GenUtil())
	}
	p.GenBound = len(p.GenReasons) > 0
	if p.GenBound {
		s.e.warn("%s rep %d, %d calls: the generator, not the relay, was the bottleneck (%s); no throughput figure for the relay at this load",
			p.Relay, p.Rep, p.Calls, strings.Join(p.GenReasons, "; "))
	}
	if p.DeadStreams > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d of %d streams received nothing", p.DeadStreams, p.Streams))
	}
	if p.ForeignCPUPct > 10 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("other programs used %.0f%% of the relay's CPU during the window (shared machine): the relay's CPU figures exclude them, its latency and throughput do not", p.ForeignCPUPct))
	}
	if r.Stray > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d stray datagrams (not this run's packets)", r.Stray))
	}
	if r.NoTimestamp > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d packets without a kernel timestamp", r.NoTimestamp))
	}
	switch {
	case p.SRTPSuite != "":
		// SRTP legs are the relay process's work whatever the mode: a
		// kernel that forwarded their packets could not have decrypted
		// or encrypted them.
		if p.SRTPFailed > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("%d packets of the SRTP legs failed their checks (not authenticated with the relay's key, in the clear, or damaged)", p.SRTPFailed))
		}
		if p.KernelRelayed > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("the relay reports %d packets of SRTP calls forwarded in the kernel", p.KernelRelayed))
		}
	case p.Transcode != "":
		// Transcoding is the relay process's work whatever the mode.
		if p.KernelRelayed > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("the relay reports %d packets of transcoded calls forwarded in the kernel", p.KernelRelayed))
		}
	case s.spec.ExpectKernel:
		p.ModeChecked = true
		if p.KernelRelayed <= 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("mode %s not active: the relay forwarded no packet in the kernel (statistics relayedpackets_kernel)", s.spec.Mode))
		}
	}
	for _, w := range p.Warnings {
		s.e.warn("%s rep %d, %d calls: %s", p.Relay, p.Rep, p.Calls, w)
	}
}

// measure warms up, then measures one window on the live calls.
func (s *session) measure(ctx context.Context, mode string) (report.Point, error) {
	n := len(s.live)
	label := fmt.Sprintf("[%s rep %d/%d] %s %d calls", s.spec.Name, s.rep, s.e.cfg.Reps, mode, n)
	s.e.progress.phase(label + " warm-up")
	if err := sleep(ctx, s.e.cfg.Warmup); err != nil {
		return report.Point{}, err
	}
	m, err := s.begin(ctx)
	if err != nil {
		return report.Point{}, err
	}
	s.e.progress.window(label, s.e.cfg.Window, m.pids, m.genPIDs)
	err = sleep(ctx, s.e.cfg.Window)
	s.e.progress.window("", 0, nil, nil)
	if err != nil {
		return report.Point{}, err
	}
	p, err := s.end(ctx, m, mode)
	if err != nil {
		return p, err
	}
	if err := s.alive(); err != nil {
		return p, err
	}
	s.e.progress.result(p)
	return p, nil
}

// fds counts the relay's open descriptors.
func (s *session) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.proc.PID()))
	if err != nil {
		return -1
	}
	return len(ents)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
