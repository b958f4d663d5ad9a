// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bench/internal/sysinfo"
	"github.com/relayd/relayd/bench/internal/topo"
	"github.com/relayd/relayd/bpf"
)

// env is what every session shares.
type env struct {
	cfg      *Config
	topo     *topo.Topology
	gen      *gen.Generator
	acc      metrics.Accounting
	progress *progress
	run      *report.Run
	log      *slog.Logger
	bins     map[relay.Kind]string
	runID    uint32
	sharedNS bool
	runStats bool // the kernel's BPF run-time accounting is on
	// relaydBuild is how the relayd binary was built; tc are the
	// transcode mode's pairs this bench can send, with their frames.
	relaydBuild relay.BuildInfo
	tc          []*tcMedia

	mu      sync.Mutex
	callSeq int
}

func (e *env) warn(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	e.mu.Lock()
	e.run.Warnings = append(e.run.Warnings, msg)
	e.mu.Unlock()
	e.progress.println("warning: " + msg)
}

// newCall makes a call with unique identifiers between two endpoints.
func (e *env) newCall(caller, callee netip.AddrPort) *calls.Call {
	e.mu.Lock()
	e.callSeq++
	n := e.callSeq
	e.mu.Unlock()
	id := fmt.Sprintf("bench-%08x-%d", e.runID, n)
	return &calls.Call{ID: id + "@bench.invalid", FromTag: "f" + strconv.Itoa(n), ToTag: "t" + strconv.Itoa(n), Caller: caller, Callee: callee}
}

// endpointUDP sums the UDP counters of the endpoint namespaces.
func (e *env) endpointUDP() metrics.UDPCounters {
	var sum metrics.UDPCounters
	seen := map[string]bool{}
	for _, s := range e.topo.Sides {
		if seen[s.NS] {
			continue
		}
		seen[s.NS] = true
		data, err := netns.ReadFile(netns.Path(s.NS), "/proc/thread-self/net/snmp")
		if err != nil {
			continue
		}
		if u, err := metrics.ParseSNMPUDP(data); err == nil {
			sum = sum.Add(u)
		}
	}
	return sum
}

// Run runs the bench: topology, generator, then every relay in every
// repetition through the configured modes. It always removes what it
// created. The returned Run holds whatever was measured, also on error.
func Run(ctx context.Context, cfg *Config) (*report.Run, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	started := time.Now()
	run := &report.Run{
		Command: cfg.Command, Started: started, Machine: sysinfo.Describe(), RelayArgs: map[string]string{},
		Setup: report.Setup{
			Topology: string(cfg.Topology), RelayCPUs: cfg.RelayCPUs, GenCPUs: cfg.GenCPUs, PPSPerStream: cfg.PPS,
			PayloadBytes: cfg.PayloadLen, WindowSec: cfg.Window.Seconds(), WarmupSec: cfg.Warmup.Seconds(), Reps: cfg.Reps,
			LossTargetPct: 100 * cfg.LossTarget, Modes: cfg.Modes, Calls: cfg.Calls, Quick: cfg.Quick,
		},
	}
	if cfg.has(ModeSRTP) {
		run.Setup.SRTPSuites, run.Setup.SRTPCalls = cfg.SRTPSuites, cfg.SRTPCalls
	}
	if cfg.has(ModeTranscode) {
		run.Setup.TranscodePairs, run.Setup.TranscodeCalls = cfg.TranscodePairs, cfg.TranscodeCalls
	}
	for _, s := range cfg.Relays {
		run.Relays = append(run.Relays, s.Name)
	}
	e := &env{cfg: cfg, run: run, log: cfg.Log, runID: rand.Uint32(),
		acc:      metrics.Accounting{RelayCPUs: cfg.RelayCPUs, GenCPUs: cfg.GenCPUs, NumCPU: run.Machine.NumCPU},
		progress: newProgress(cfg.Progress, cfg.TTY)}
	defer e.progress.close()
	err := e.runAll(ctx)
	run.DurationSec = time.Since(started).Seconds()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: the run took longer than %v", ErrDeadline, cfg.Deadline)
	}
	return run, err
}

func (e *env) runAll(ctx context.Context) (err error) {
	cfg := e.cfg
	if err := topo.Preflight(); err != nil {
		return err
	}
	if err := e.binaries(ctx); err != nil {
		return err
	}
	raiseNoFile(e.log)
	if len(cfg.GenCPUs) > 0 {
		if err := pinSelf(cfg.GenCPUs); err != nil {
			e.warn("could not pin the bench to CPUs %v: %v", cfg.GenCPUs, err)
		}
	}
	// Blocking generator threads must never starve the goroutines that
	// run the ng client and the progress line, whatever CPU count the
	// pinning left the runtime with.
	runtime.GOMAXPROCS(max(4, len(cfg.GenCPUs)+3))

	// Two clock reads per program run, for every relay and the ceiling
	// alike: the price of telling the XDP programs' own time apart.
	if stats, err := bpf.EnableRunStats(); err != nil {
		e.warn("no XDP program timings: %v", err)
	} else {
		e.runStats = true
		defer stats.Close()
	}
	e.progress.phase("creating namespaces and veths")
	t, err := topo.Create(ctx, topo.Config{
		Kind: cfg.Topology, AddrsPerSide: cfg.AddrsPerSide, RelayCPUs: cfg.RelayCPUs, GenCPUs: cfg.GenCPUs,
		EndpointGRO: cfg.EndpointGRO, Steering: cfg.Steering, Log: e.log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := t.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove namespaces: %w", cerr))
		}
	}()
	e.topo = t
	e.sharedNS = t.Sides[0].NS == t.RelayNS
	e.run.Setup.TopologyNotes = append(e.run.Setup.TopologyNotes, t.Notes...)
	if e.sharedNS {
		e.run.Setup.TopologyNotes = append(e.run.Setup.TopologyNotes,
			"relay and endpoints share a namespace: socket-buffer drops cannot be told apart between them")
	}

	var sides [2]gen.Side
	for i, s := range t.Sides {
		sides[i] = gen.Side{NSPath: netns.Path(s.NS), Addrs: s.Addrs, PortBase: s.PortBase}
	}
	if cfg.has(ModeTranscode) {
		e.prepareTranscode()
	}
	g, err := gen.New(gen.Config{
		Sides: sides, CPUs: cfg.GenCPUs, MaxCalls: cfg.maxCalls(), PPS: cfg.PPS, PayloadLen: cfg.PayloadLen,
		Tick: cfg.Tick, SendBatch: cfg.SendBatch, Run: e.runID, Log: e.log, Transcode: cfg.has(ModeTranscode),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.Close()) }()
	if err := g.Start(); err != nil {
		return err
	}
	e.gen = g
	e.progress.attach(g, &e.acc)
	e.log.Info("generator ready", "workers", g.Workers(), "sockets", g.Sockets(), "max_calls", cfg.maxCalls())

	for rep := 1; rep <= cfg.Reps; rep++ {
		order := slices.Clone(cfg.Relays)
		if rep%2 == 0 {
			slices.Reverse(order)
		}
		for _, spec := range order {
			if err := e.runModes(ctx, spec, rep); err != nil {
				if ctx.Err() != nil || cfg.Quick {
					return err
				}
				// One relay failing (e.g. a mode it does not support yet)
				// must not lose the others' results.
				e.warn("%s rep %d: %v", spec.Name, rep, err)
				e.run.Checks = append(e.run.Checks, report.Check{Relay: spec.Name, Rep: rep, Name: "session", OK: false, Detail: err.Error()})
			}
		}
	}
	return nil
}

// runSession runs one relay through the modes.
func (e *env) runSession(ctx context.Context, spec relay.Spec, rep int) (err error) {
	s, err := e.startSession(ctx, spec, rep)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.finish(ctx)) }()
	var fixed []report.Point
	if e.cfg.has(ModeFixed) {
		loads := slices.Clone(e.cfg.Calls)
		slices.Sort(loads)
		for _, n := range loads {
			if err := s.ensureCalls(ctx, n); err != nil {
				if fatal(ctx, err) {
					return err
				}
				// Calls that cannot be set up (ng timeouts of a relay
				// drowning in media) end the fixed loads, not the session.
				e.warn("%s rep %d: fixed loads stop at %d calls: %v", spec.Name, rep, n, err)
				e.run.Checks = append(e.run.Checks, report.Check{Relay: spec.Name, Rep: rep, Name: fmt.Sprintf("set up %d calls", n), OK: false, Detail: err.Error()})
				break
			}
			p, err := s.measure(ctx, ModeFixed)
			if err != nil {
				return err
			}
			fixed = append(fixed, p)
			e.run.Points = append(e.run.Points, p)
		}
	}
	if e.cfg.profilePlain() && rep == 1 && spec.Ceiling == "" {
		if err := s.profile(ctx, e.cfg.ProfileCalls); err != nil {
			e.warn("%s: profile: %v", spec.Name, err)
		}
	}
	if e.cfg.has(ModeRamp) {
		start := 250
		if len(e.cfg.Calls) > 0 {
			start = e.cfg.Calls[0]
		}
		r, err := s.ramp(ctx, fixed, ModeRamp, start)
		e.run.Ramps = append(e.run.Ramps, r)
		if err != nil {
			return err
		}
	}
	if e.cfg.has(ModeScaling) && scales(spec) {
		if err := s.scaling(ctx); err != nil {
			if fatal(ctx, err) {
				return err
			}
			e.warn("%s rep %d: streams mode: %v", spec.Name, rep, err)
			e.run.Checks = append(e.run.Checks, report.Check{Relay: spec.Name, Rep: rep, Name: "installed streams", OK: false, Detail: err.Error()})
		}
	}
	if e.cfg.has(ModeSoak) && spec.Ceiling == "" {
		so, err := s.soak(ctx)
		e.run.Soaks = append(e.run.Soaks, so)
		if err != nil {
			return err
		}
	}
	// The ceiling bounces packets untouched: it cannot terminate SRTP.
	if e.cfg.has(ModeSRTP) && spec.Ceiling == "" {
		if err := s.srtpLoads(ctx); err != nil {
			if fatal(ctx, err) {
				return err
			}
			e.warn("%s rep %d: srtp mode: %v", spec.Name, rep, err)
			e.run.Checks = append(e.run.Checks, report.Check{Relay: spec.Name, Rep: rep, Name: "srtp mode", OK: false, Detail: err.Error()})
		}
	}
	// Nor transcode.
	if e.cfg.has(ModeTranscode) && spec.Ceiling == "" {
		if err := s.transcodeLoads(ctx); err != nil {
			if fatal(ctx, err) {
				return err
			}
			e.warn("%s rep %d: transcode mode: %v", spec.Name, rep, err)
			e.run.Checks = append(e.run.Checks, report.Check{Relay: spec.Name, Rep: rep, Name: "transcode mode", OK: false, Detail: err.Error()})
		}
	}
	// A ceiling entry measures the control plane's ceiling (a responder
	// doing no relay work).
	if e.cfg.has(ModeControl) {
		// Media calls go first: the control plane is measured alone.
		if err := s.removeCalls(ctx, s.live); err != nil {
			return err
		}
		s.live = nil
		e.run.Controls = append(e.run.Controls, s.control(ctx))
	}
	return nil
}

// fatal says whether an error must end the session: cancellation, the
// deadline, a dead relay or a broken generator, as opposed to a relay
// refusing calls under load.
func fatal(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, ErrRelayDied) || errors.Is(err, gen.ErrClosed) || errors.Is(err, ErrBadRelayAnswer)
}

// binaries finds or builds the relay executables the list needs.
func (e *env) binaries(ctx context.Context) error {
	e.bins = map[relay.Kind]string{}
	for _, s := range e.cfg.Relays {
		if _, ok := e.bins[s.Kind]; ok {
			continue
		}
		switch s.Kind {
		case relay.Relayd:
			bin := e.cfg.RelaydBin
			if bin == "" {
				e.progress.phase("building relayd")
				if err := os.MkdirAll(e.cfg.WorkDir, 0o755); err != nil {
					return err
				}
				var err error
				if bin, e.relaydBuild, err = relay.BuildRelayd(ctx, e.cfg.WorkDir); err != nil {
					return err
				}
			} else {
				e.relaydBuild = relay.Describe(ctx, bin)
			}
			e.bins[s.Kind] = bin
		case relay.Rtpengine:
			if _, err := os.Stat(e.cfg.RtpengineBin); err != nil {
				return fmt.Errorf("%w: %s needs %s (Debian package rtpengine-daemon): %v", relay.ErrNoBinary, s.Name, e.cfg.RtpengineBin, err)
			}
			e.bins[s.Kind] = e.cfg.RtpengineBin
		}
	}
	for _, s := range e.cfg.Relays {
		if s.Kind == relay.Rtpengine {
			e.run.Machine.Versions[s.Name] = "rtpengine " + sysinfo.Version(ctx, e.bins[s.Kind])
		} else {
			e.run.Machine.Versions[s.Name] = fmt.Sprintf("relayd %s (%s)", sysinfo.GitDescribe(ctx), e.relaydBuild)
		}
	}
	return nil
}

// pinSelf pins every thread of the bench to cpus; threads created later
// inherit it from their creators.
func pinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// raiseNoFile lifts the descriptor limit that the bench and the relays it
// starts inherit: the incumbent does not raise its own, and thousands of
// calls need four sockets each.
func raiseNoFile(log *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := uint64(1 << 20)
	if data, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(string(trimNL(data)), 10, 64); err == nil {
			want = n
		}
	}
	if unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}) != nil {
		_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max})
	}
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		log.Debug("descriptor limit", "soft", lim.Cur, "hard", lim.Max)
	}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
