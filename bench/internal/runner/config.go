// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/sdes"
	"github.com/relayd/relayd/bench/internal/topo"
)

// Modes the runner knows.
const (
	ModeFixed   = "fixed"
	ModeRamp    = "ramp"
	ModeControl = "control"
	ModeSoak    = "soak"
	// ModeScaling measures a kernel fast path's CPU per packet at one load
	// with more and more rules installed.
	ModeScaling = "streams"
	// ModeSRTP measures the fixed loads again with every call's caller leg
	// SDES-SRTP and its callee leg plain RTP, once per suite.
	ModeSRTP = "srtp"
	// ModeTranscode measures transcoded calls, per pair (Opus⇄PCMU,
	// G.722⇄PCMU): fixed loads for the CPU per packet, then a ramp for
	// the most calls under the loss target.
	ModeTranscode = "transcode"
)

// modes are every mode the runner knows, in the order it runs them (the
// restart mode last, on a relay process of its own).
var modes = []string{ModeFixed, ModeRamp, ModeScaling, ModeSoak, ModeSRTP, ModeTranscode, ModeControl, ModeRestart}

// Config is one bench invocation.
type Config struct {
	Relays       []relay.Spec
	RelaydBin    string // "" builds ./cmd/relayd
	RtpengineBin string
	Topology     topo.Kind
	Modes        []string

	Calls      []int   // fixed loads
	PPS        float64 // per stream
	PayloadLen int
	Warmup     time.Duration
	Window     time.Duration
	Drain      time.Duration
	Reps       int
	// LossTarget is the loss bound of the ramp, a fraction (0.001).
	LossTarget float64

	RampMaxCalls int
	RampSteps    int // bisection steps after the bracket is found

	ControlDuration time.Duration
	ControlConc     int
	ControlRate     float64

	SoakDuration time.Duration
	SoakCalls    int
	SoakChurn    float64 // calls replaced per second

	RelayCPUs, GenCPUs []int
	SetupConc          int
	AddrsPerSide       int
	EndpointGRO        bool
	Steering           topo.Steering
	Tick               time.Duration
	SendBatch          int
	RelayLogLevel      int

	// InstalledStreams are the rule-table sizes of the streams mode, and
	// ScalingCalls the load it carries meanwhile.
	InstalledStreams []int
	ScalingCalls     int

	// SRTPSuites are the SDES crypto suites of the srtp mode, each
	// measured at every load of SRTPCalls (the fixed loads unless told).
	SRTPSuites []string
	SRTPCalls  []int
	// RestartCalls are the calls up across the restart mode's restart,
	// and RestartAfter how long the window stays open once the new
	// relayd answers.
	RestartCalls int
	RestartAfter time.Duration

	// TranscodePairs are the transcode mode's pairs (audio.Names), each
	// measured at every load of TranscodeCalls and, with TranscodeRamp,
	// ramped to the most calls under the loss target.
	TranscodePairs []string
	TranscodeCalls []int
	TranscodeRamp  bool

	Profile      bool
	ProfileCalls int

	// Quick makes the run a smoke test: any call that carries no media, a
	// failed check or a relay that does not start fails the run.
	Quick bool
	// Deadline bounds the whole run; past it the run stops and cleans up.
	Deadline time.Duration

	// OutDir receives the results; WorkDir the relayd binary, the relay
	// logs and raw profiles, which are too big to keep with results.
	OutDir  string
	WorkDir string
	// Command is the command line, recorded in the results.
	Command  string
	Progress io.Writer
	TTY      bool
	Log      *slog.Logger
}

// Validate checks the settings that could otherwise fail half-way through.
func (c *Config) Validate() error {
	if len(c.Relays) == 0 {
		return fmt.Errorf("%w: no relays", ErrConfig)
	}
	for _, m := range c.Modes {
		if !slices.Contains(modes, m) {
			return fmt.Errorf("%w: unknown mode %q (%s)", ErrConfig, m, strings.Join(modes, ", "))
		}
	}
	if len(c.Modes) == 0 {
		return fmt.Errorf("%w: no modes", ErrConfig)
	}
	if c.has(ModeFixed) && len(c.Calls) == 0 {
		return fmt.Errorf("%w: fixed mode needs --calls", ErrConfig)
	}
	if c.has(ModeSRTP) {
		if len(c.SRTPCalls) == 0 || len(c.SRTPSuites) == 0 {
			return fmt.Errorf("%w: the srtp mode needs --srtp-calls (or --calls) and --srtp-suites", ErrConfig)
		}
		for _, n := range c.SRTPCalls {
			if n <= 0 {
				return fmt.Errorf("%w: SRTP call count %d", ErrConfig, n)
			}
		}
		for _, name := range c.SRTPSuites {
			if _, err := sdes.Lookup(name); err != nil {
				return fmt.Errorf("%w: --srtp-suites: %w", ErrConfig, err)
			}
		}
	}
	if c.has(ModeTranscode) {
		if len(c.TranscodeCalls) == 0 || len(c.TranscodePairs) == 0 {
			return fmt.Errorf("%w: the transcode mode needs --transcode-calls and --transcode-pairs", ErrConfig)
		}
		for _, n := range c.TranscodeCalls {
			if n <= 0 {
				return fmt.Errorf("%w: transcoded call count %d", ErrConfig, n)
			}
		}
		for _, name := range c.TranscodePairs {
			if _, err := audio.Lookup(name); err != nil {
				return fmt.Errorf("%w: --transcode-pairs: %w", ErrConfig, err)
			}
		}
	}
	for _, n := range c.Calls {
		if n <= 0 {
			return fmt.Errorf("%w: call count %d", ErrConfig, n)
		}
	}
	if c.PPS <= 0 || c.PPS > 1000 {
		return fmt.Errorf("%w: --pps %g (want 0 < pps <= 1000 per stream)", ErrConfig, c.PPS)
	}
	if c.Window < 500*time.Millisecond {
		return fmt.Errorf("%w: --window %v is too short to measure (>= 500ms)", ErrConfig, c.Window)
	}
	if c.Reps < 1 {
		return fmt.Errorf("%w: --reps %d", ErrConfig, c.Reps)
	}
	if c.LossTarget <= 0 || c.LossTarget >= 1 {
		return fmt.Errorf("%w: loss target %g (a fraction)", ErrConfig, c.LossTarget)
	}
	if c.has(ModeScaling) && (len(c.InstalledStreams) == 0 || c.ScalingCalls <= 0) {
		return fmt.Errorf("%w: the streams mode needs --installed-streams and --streams-calls", ErrConfig)
	}
	for _, n := range c.InstalledStreams {
		if n <= 0 {
			return fmt.Errorf("%w: installed streams %d", ErrConfig, n)
		}
	}
	if c.has(ModeRestart) && (c.RestartCalls <= 0 || c.RestartAfter <= 0) {
		return fmt.Errorf("%w: the restart mode needs --restart-calls and --restart-after", ErrConfig)
	}
	if c.has(ModeSoak) && (c.SoakDuration <= 0 || c.SoakCalls <= 0) {
		return fmt.Errorf("%w: soak needs --soak-duration and --soak-calls", ErrConfig)
	}
	if c.Deadline <= 0 {
		return fmt.Errorf("%w: no deadline", ErrConfig)
	}
	return nil
}

func (c *Config) has(mode string) bool { return slices.Contains(c.Modes, mode) }

// profilePlain says whether to profile plain RTP media: asked for, and not
// a run of the srtp or transcode modes alone (which profile their own
// calls).
func (c *Config) profilePlain() bool {
	return c.Profile && (!(c.has(ModeSRTP) || c.has(ModeTranscode)) || c.has(ModeFixed) || c.has(ModeRamp))
}

// maxCalls is the most calls the generator must hold at once.
func (c *Config) maxCalls() int {
	n := 1
	if c.has(ModeFixed) {
		n = max(n, slices.Max(c.Calls))
	}
	if c.has(ModeSRTP) {
		n = max(n, slices.Max(c.SRTPCalls))
	}
	if c.has(ModeTranscode) {
		n = max(n, slices.Max(c.TranscodeCalls))
		if c.TranscodeRamp {
			n = max(n, c.RampMaxCalls)
		}
	}
	if c.has(ModeRamp) {
		n = max(n, c.RampMaxCalls)
	}
	if c.has(ModeSoak) {
		n = max(n, c.SoakCalls+int(c.SoakChurn)+16)
	}
	if c.has(ModeScaling) {
		n = max(n, c.ScalingCalls)
	}
	if c.has(ModeRestart) {
		n = max(n, c.RestartCalls)
	}
	if c.Profile {
		n = max(n, c.ProfileCalls)
	}
	return n
}
