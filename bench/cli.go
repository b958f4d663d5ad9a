// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bench/internal/runner"
	"github.com/relayd/relayd/bench/internal/sdes"
	"github.com/relayd/relayd/bench/internal/topo"
)

// errUsage means the flags were wrong; the flag package has said so.
var errUsage = errors.New("usage")

// defaultRelays is the standard comparison: relayd's forwarding modes
// (userspace, and XDP as --xdp=auto picks it), the incumbent, and the
// machine's ceiling (the bare rewrite-and-bounce XDP program).
const defaultRelays = "relayd:userspace,relayd:xdp,rtpengine,ceiling"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// options are the command line, before it becomes a runner.Config.
type options struct {
	relays, topology, modes, calls string
	installed                      string
	scalingCalls                   int
	srtpSuites, srtpCalls          string
	tcPairs, tcCalls               string
	tcRamp                         bool
	restartCalls                   int
	restartAfter                   time.Duration
	relayArgs                      listFlag
	relaydBin, rtpengineBin        string
	pps                            float64
	payload                        int
	warmup, window, drain          time.Duration
	reps                           int
	lossPct                        float64
	rampMax, rampSteps             int
	ctrlDur                        time.Duration
	ctrlConc                       int
	ctrlRate                       float64
	soakDur                        time.Duration
	soakCalls                      int
	soakChurn                      float64
	relayCPUs, genCPUs             string
	setupConc, addrs               int
	gro                            bool
	steering                       string
	tick                           time.Duration
	sendBatch, relayLogLevel       int
	profile                        bool
	profileCalls                   int
	quick                          bool
	deadline                       time.Duration
	out, update, workDir           string
	keepWork                       bool
	verbose                        bool
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: go run ./bench [flags]   (as root: it creates network namespaces)

Drives ng relays like a SIP proxy does (offer/answer/delete with G.711 SDP) and
measures the media they relay between network namespaces. The default run is
the standard comparison of relayd with the incumbent: fixed loads, a ramp to
the highest load with loss under the target, and the control plane, every
relay in every repetition, alternating. --quick is a smoke test (< 1 minute).
The transcode mode needs the bench built with cgo and -tags nolibopusfile for
its Opus pair: go run -tags nolibopusfile ./bench --mode transcode.

Relays: %s (or KIND:MODE with --relay-args KIND:MODE=FLAGS).

Flags:
`, strings.Join(relay.Known(), ", "))
		fs.PrintDefaults()
	}
	fs.StringVar(&o.relays, "relay", defaultRelays, "comma-separated relays to compare, each `KIND[:MODE]`")
	fs.Var(&o.relayArgs, "relay-args", "`NAME=FLAGS`: extra command-line flags for one relay entry, replacing the built-in ones (repeatable)")
	fs.StringVar(&o.relaydBin, "relayd-bin", "", "relayd binary (default: build ./cmd/relayd)")
	fs.StringVar(&o.rtpengineBin, "rtpengine-bin", "/usr/bin/rtpengine", "the incumbent's binary")
	fs.StringVar(&o.topology, "topology", string(topo.TwoLegs), "veth2 (callers and callees in two namespaces), veth1 (one namespace, one relay interface) or loopback")
	fs.StringVar(&o.modes, "mode", "fixed,ramp,streams,control", "comma-separated modes: fixed, ramp, streams (relayd's fast path with more rules installed), control, soak, srtp (the fixed loads with each caller's leg SDES-SRTP, the callee's plain RTP), restart (relayd restarted with calls up), transcode (calls whose caller speaks only Opus or G.722 and callee only PCMU: fixed loads and a ramp per pair)")
	fs.StringVar(&o.calls, "calls", "100,200,300,400", "fixed loads: comma-separated call counts")
	fs.Float64Var(&o.pps, "pps", 50, "packets per second per stream (2 streams per call)")
	fs.IntVar(&o.payload, "payload", 160, "RTP payload bytes")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "media before each measurement window")
	fs.DurationVar(&o.window, "window", 4*time.Second, "measurement window")
	fs.DurationVar(&o.drain, "drain", 300*time.Millisecond, "wait for packets in flight after a window")
	fs.IntVar(&o.reps, "reps", 3, "repetitions (relays alternate their order)")
	fs.Float64Var(&o.lossPct, "loss-target", 0.1, "loss bound of the ramp, percent")
	fs.IntVar(&o.rampMax, "ramp-max-calls", 3000, "the ramp never goes above this many calls")
	fs.IntVar(&o.rampSteps, "ramp-steps", 2, "bisection steps once the ramp has bracketed the limit")
	fs.StringVar(&o.installed, "installed-streams", "1000,10000,100000", "streams mode: rule-table sizes (the calls' own rules plus fillers no packet matches)")
	fs.IntVar(&o.scalingCalls, "streams-calls", 200, "streams mode: calls carrying media meanwhile")
	fs.StringVar(&o.srtpCalls, "srtp-calls", "", "srtp mode: comma-separated call counts (default: the --calls loads)")
	fs.StringVar(&o.srtpSuites, "srtp-suites", "AES_CM_128_HMAC_SHA1_80", "srtp mode: comma-separated SDES crypto suites, each measured at every --calls load ("+strings.Join(sdes.Names(), ", ")+")")
	fs.StringVar(&o.tcPairs, "transcode-pairs", strings.Join(audio.Names(), ","), "transcode mode: comma-separated pairs ("+strings.Join(audio.Names(), ", ")+"); Opus needs the bench built with cgo and -tags nolibopusfile")
	fs.StringVar(&o.tcCalls, "transcode-calls", "25,50,100", "transcode mode: comma-separated loads of transcoded calls (the ramp starts above the highest one under the loss target)")
	fs.BoolVar(&o.tcRamp, "transcode-ramp", true, "transcode mode: ramp each pair to the most calls under --loss-target")
	fs.IntVar(&o.restartCalls, "restart-calls", 100, "restart mode: calls carrying media across the restart")
	fs.DurationVar(&o.restartAfter, "restart-after", 3*time.Second, "restart mode: media measured after the new relayd answers")
	fs.DurationVar(&o.ctrlDur, "control-duration", 3*time.Second, "length of each control-plane run")
	fs.IntVar(&o.ctrlConc, "control-concurrency", 8, "requests in flight in the concurrent and paced control-plane runs")
	fs.Float64Var(&o.ctrlRate, "control-rate", 1000, "setups per second of the paced control-plane run (0: none)")
	fs.DurationVar(&o.soakDur, "soak-duration", 60*time.Second, "soak length")
	fs.IntVar(&o.soakCalls, "soak-calls", 500, "calls kept up during the soak")
	fs.Float64Var(&o.soakChurn, "soak-churn", 20, "calls replaced per second during the soak")
	fs.StringVar(&o.relayCPUs, "relay-cpus", "", "CPUs for the relay, e.g. 1 or 2-3 (default: the upper half)")
	fs.StringVar(&o.genCPUs, "gen-cpus", "", "CPUs for the generator (default: the lower half)")
	fs.IntVar(&o.setupConc, "setup-concurrency", 8, "ng requests in flight while setting up and deleting calls")
	fs.IntVar(&o.addrs, "addrs-per-side", 200, "endpoint addresses per side")
	fs.BoolVar(&o.gro, "endpoint-gro", true, "GRO on the endpoint-side veths (an XDP relay redirecting into them needs it)")
	fs.StringVar(&o.steering, "steering", "napi", "where each side's receive processing runs: napi (threaded NAPI pinned to that side's CPUs), rps or none")
	fs.DurationVar(&o.tick, "tick", time.Millisecond, "generator pacing tick")
	fs.IntVar(&o.sendBatch, "send-batch", 16, "packets per sendmmsg (the send timestamp is per batch)")
	fs.IntVar(&o.relayLogLevel, "relay-log-level", 6, "the relays' --log-level")
	fs.BoolVar(&o.profile, "profile", false, "record a perf CPU profile of each relay under load (first repetition)")
	fs.IntVar(&o.profileCalls, "profile-calls", 300, "load of the profiled window")
	fs.BoolVar(&o.quick, "quick", false, "smoke test (about a minute): fails when calls carry no media or a check fails")
	fs.DurationVar(&o.deadline, "deadline", 25*time.Minute, "hard bound on the whole run")
	fs.StringVar(&o.out, "out", "", "results folder (default bench-results/TIMESTAMP)")
	fs.StringVar(&o.update, "update-benchmarks", "", "rewrite the generated block of this markdown file (BENCHMARKS.md)")
	fs.StringVar(&o.workDir, "work-dir", "", "relay logs, relayd binary, raw profiles (default: a temporary folder)")
	fs.BoolVar(&o.keepWork, "keep-work", false, "keep the work folder (it is kept anyway when the run fails)")
	fs.BoolVar(&o.verbose, "v", false, "debug logging")
	return fs
}

// applyQuick sets the smoke-test defaults for every flag not given.
func applyQuick(o *options, set map[string]bool, rtpengineExists bool) {
	def := func(name string, f func()) {
		if !set[name] {
			f()
		}
	}
	def("relay", func() {
		if set["mode"] && onlyMode(o.modes, "restart") {
			o.relays = "relayd:userspace,relayd:xdp" // the mode is relayd's
			return
		}
		o.relays = "relayd:userspace,relayd:xdp,ceiling"
		if rtpengineExists {
			o.relays += ",rtpengine"
		}
	})
	def("mode", func() { o.modes = "fixed,streams,control,srtp,transcode" })
	def("srtp-calls", func() { o.srtpCalls = "20" })
	def("transcode-calls", func() { o.tcCalls = "5" })
	def("transcode-ramp", func() { o.tcRamp = false })
	def("installed-streams", func() { o.installed = "1000,20000" })
	def("streams-calls", func() { o.scalingCalls = 20 })
	def("calls", func() { o.calls = "20,100" })
	def("warmup", func() { o.warmup = 500 * time.Millisecond })
	def("window", func() { o.window = 2 * time.Second })
	def("drain", func() { o.drain = 200 * time.Millisecond })
	def("reps", func() { o.reps = 1 })
	def("control-duration", func() { o.ctrlDur = time.Second })
	def("control-rate", func() { o.ctrlRate = 500 })
	def("addrs-per-side", func() { o.addrs = 50 })
	def("deadline", func() { o.deadline = 120 * time.Second })
	def("restart-after", func() { o.restartAfter = 2 * time.Second })
}

// onlyMode says whether the comma-separated modes are mode alone.
func onlyMode(modes, mode string) bool {
	seen := false
	for _, m := range strings.Split(modes, ",") {
		switch strings.TrimSpace(m) {
		case "":
		case mode:
			seen = true
		default:
			return false
		}
	}
	return seen
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := newFlagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		_, err := os.Stat(o.rtpengineBin)
		applyQuick(&o, set, err == nil)
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := o.config(log, stderr)
	if err != nil {
		return err
	}
	cfg.Command = commandLine(args)

	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "relayd-bench-"); err != nil {
			return err
		}
	}
	cfg.WorkDir = work

	res, runErr := runner.Run(ctx, cfg)
	if res == nil {
		cleanWork(o, work, runErr, stderr)
		return runErr
	}
	files, summary, werr := report.Write(cfg.OutDir, res)
	if werr != nil {
		runErr = errors.Join(runErr, fmt.Errorf("write results: %w", werr))
	} else {
		fmt.Fprintf(stdout, "results: %s (%s, plots: %s)\n", files.Markdown, filepath.Base(files.JSON), strings.Join(files.Plots, ", "))
	}
	if o.update != "" && werr == nil && runErr == nil {
		if err := report.UpdateBenchmarks(o.update, res, summary, files); err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("update %s: %w", o.update, err))
		} else {
			fmt.Fprintf(stdout, "updated %s\n", o.update)
		}
	}
	printTargets(stdout, summary)
	if cfg.Quick && runErr == nil {
		runErr = smokeVerdict(res)
	}
	cleanWork(o, work, runErr, stderr)
	return runErr
}

func cleanWork(o options, work string, runErr error, stderr io.Writer) {
	if runErr != nil || o.keepWork || o.workDir != "" {
		fmt.Fprintf(stderr, "relay logs and work files: %s\n", work)
		return
	}
	_ = os.RemoveAll(work)
}

// smokeVerdict fails a quick run whose calls did not all carry media, or
// whose checks failed.
func smokeVerdict(r *report.Run) error {
	var problems []string
	points := append([]report.Point(nil), r.Points...)
	for _, so := range r.Soaks {
		points = append(points, so.Media)
		if so.SilentCalls > 0 || so.SetupErrors > 0 {
			problems = append(problems, fmt.Sprintf("%s soak: %d silent calls, %d setup errors", so.Relay, so.SilentCalls, so.SetupErrors))
		}
	}
	if len(points) == 0 && len(r.Restarts) == 0 {
		problems = append(problems, "no media was measured")
	}
	for _, p := range points {
		if p.DeadStreams > 0 {
			problems = append(problems, fmt.Sprintf("%s, %d calls: %d streams carried no media", p.Relay, p.Calls, p.DeadStreams))
		}
		// A generator starved by another program on a shared CI machine
		// loses packets of its own (the judge says so): only a relay that
		// carried nothing fails the smoke test then.
		if p.Received == 0 || (p.LossPct > 1 && !p.GenBound) {
			problems = append(problems, fmt.Sprintf("%s, %d calls: loss %.2f%% (%d of %d packets arrived)", p.Relay, p.Calls, p.LossPct, p.Received, p.Sent))
		}
	}
	for _, c := range r.Checks {
		if !c.OK {
			problems = append(problems, fmt.Sprintf("%s: check %q failed: %s", c.Relay, c.Name, c.Detail))
		}
	}
	for _, c := range r.Controls {
		for _, x := range c.Results {
			if x.Cycles == 0 || x.Errors > 0 {
				problems = append(problems, fmt.Sprintf("%s: control %s: %d cycles, %d errors %s", c.Relay, x.Name, x.Cycles, x.Errors, x.FirstError))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", runner.ErrSmoke, strings.Join(problems, "\n  "))
	}
	return nil
}

func printTargets(w io.Writer, s report.Summary) {
	for _, t := range s.Targets {
		fmt.Fprintf(w, "target %-24s %-12s %s\n", t.Name+":", t.Status, t.Measured)
	}
}

func (o *options) config(log *slog.Logger, stderr io.Writer) (*runner.Config, error) {
	relayArgs, err := relay.ParseArgs(o.relayArgs)
	if err != nil {
		return nil, err
	}
	specs, err := relay.ParseList(o.relays, relayArgs)
	if err != nil {
		return nil, err
	}
	kind, err := topo.ParseKind(o.topology)
	if err != nil {
		return nil, err
	}
	steering, err := topo.ParseSteering(o.steering)
	if err != nil {
		return nil, err
	}
	installed, err := parseInts(o.installed)
	if err != nil {
		return nil, fmt.Errorf("--installed-streams: %w", err)
	}
	loads, err := parseInts(o.calls)
	if err != nil {
		return nil, fmt.Errorf("--calls: %w", err)
	}
	srtpLoads := loads
	if o.srtpCalls != "" {
		if srtpLoads, err = parseInts(o.srtpCalls); err != nil {
			return nil, fmt.Errorf("--srtp-calls: %w", err)
		}
	}
	tcLoads, err := parseInts(o.tcCalls)
	if err != nil {
		return nil, fmt.Errorf("--transcode-calls: %w", err)
	}
	relayCPUs, genCPUs, err := cpuSplit(o.relayCPUs, o.genCPUs)
	if err != nil {
		return nil, err
	}
	out := o.out
	if out == "" {
		out = filepath.Join("bench-results", time.Now().Format("20060102-150405"))
	}
	tty := false
	if f, ok := stderr.(*os.File); ok {
		_, terr := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		tty = terr == nil
	}
	modes, suites := splitList(o.modes), splitList(o.srtpSuites)
	return &runner.Config{
		Relays: specs, RelaydBin: o.relaydBin, RtpengineBin: o.rtpengineBin, Topology: kind, Modes: modes,
		Calls: loads, PPS: o.pps, PayloadLen: o.payload, Warmup: o.warmup, Window: o.window, Drain: o.drain,
		Reps: o.reps, LossTarget: o.lossPct / 100, RampMaxCalls: o.rampMax, RampSteps: o.rampSteps,
		ControlDuration: o.ctrlDur, ControlConc: o.ctrlConc, ControlRate: o.ctrlRate,
		SoakDuration: o.soakDur, SoakCalls: o.soakCalls, SoakChurn: o.soakChurn,
		RelayCPUs: relayCPUs, GenCPUs: genCPUs, SetupConc: o.setupConc, AddrsPerSide: o.addrs,
		EndpointGRO: o.gro, Steering: steering, Tick: o.tick, SendBatch: o.sendBatch, RelayLogLevel: o.relayLogLevel,
		InstalledStreams: installed, ScalingCalls: o.scalingCalls, SRTPSuites: suites, SRTPCalls: srtpLoads,
		TranscodePairs: splitList(o.tcPairs), TranscodeCalls: tcLoads, TranscodeRamp: o.tcRamp,
		RestartCalls: o.restartCalls, RestartAfter: o.restartAfter,
		Profile: o.profile, ProfileCalls: o.profileCalls, Quick: o.quick, Deadline: o.deadline,
		OutDir: out, Progress: stderr, TTY: tty, Log: log,
	}, nil
}

// cpuSplit resolves the relay's and the generator's CPUs: given ones as
// they are, otherwise the upper half of the CPUs the bench may use for the
// relay and the lower half for the generator; none on a single CPU.
func cpuSplit(relayList, genList string) ([]int, []int, error) {
	var set unix.CPUSet
	var avail []int
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		for c := range 1024 {
			if set.IsSet(c) {
				avail = append(avail, c)
			}
		}
	}
	if len(avail) == 0 {
		for c := range runtime.NumCPU() {
			avail = append(avail, c)
		}
	}
	r, err := parseCPUs(relayList)
	if err != nil {
		return nil, nil, fmt.Errorf("--relay-cpus: %w", err)
	}
	g, err := parseCPUs(genList)
	if err != nil {
		return nil, nil, fmt.Errorf("--gen-cpus: %w", err)
	}
	if r == nil && g == nil && len(avail) >= 2 {
		h := len(avail) / 2
		return append([]int(nil), avail[h:]...), append([]int(nil), avail[:h]...), nil
	}
	return r, g, nil
}

// parseCPUs reads "1", "0,2" or "2-3".
func parseCPUs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad CPU %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad CPU range %q", part)
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out, nil
}

// splitList reads a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad count %q", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func commandLine(args []string) string {
	parts := []string{"go run ./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " '\"") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
