// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
)

func testSession(t *testing.T, spec relay.Spec) *session {
	t.Helper()
	e := &env{cfg: &Config{LossTarget: 0.001}, run: &report.Run{}, progress: newProgress(io.Discard, false)}
	t.Cleanup(e.progress.close)
	return &session{e: e, spec: spec, rep: 1}
}

func TestJudge(t *testing.T) {
	pinned := metrics.Usage{Exclusive: true}
	tests := []struct {
		name       string
		spec       relay.Spec
		p          report.Point
		r          gen.Report
		u          metrics.Usage
		genBound   bool
		reason     string
		warnings   int
		wantInWarn string
	}{
		{name: "clean point", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000}, u: pinned},
		{name: "could not offer the rate", p: report.Point{TargetPPS: 1000, OfferedPPS: 900, Sent: 4500}, u: pinned,
			genBound: true, reason: "offered 90.0%"},
		{name: "a stall skips a trace only", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000}, r: gen.Report{Sent: 5000, Skipped: 3},
			u: pinned},
		{name: "skipped beyond a trace", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000}, r: gen.Report{Sent: 5000, Skipped: 50},
			u: pinned, genBound: true, reason: "fell >100 ms behind"},
		{name: "endpoint sockets overflowed", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, EndpointRcvbufErrs: 3}, u: pinned,
			genBound: true, reason: "endpoint sockets"},
		{name: "endpoint ring overflow below relay saturation", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000, VethDropsToEndpoints: 50, RelayCPUPct: 40},
			u: pinned, genBound: true, reason: "endpoints' veths"},
		{name: "a saturated relay's bursts are the relay's", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000, VethDropsToEndpoints: 50, RelayCPUPct: 99, LossPct: 1},
			u: pinned},
		{name: "catch-up burst into an idle relay's ring", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000, VethDropsToRelay: 30, RelayCPUPct: 25, MaxLagMs: 27, LossPct: 0.6},
			u: pinned, genBound: true, reason: "catch-up burst"},
		{name: "a busy relay's ring drops are its own", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, Sent: 5000, VethDropsToRelay: 30, RelayCPUPct: 80, MaxLagMs: 27, LossPct: 0.6},
			u: pinned},
		{name: "relay saturated, generator fine", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, LossPct: 5, Sent: 5000}, u: pinned},
		{name: "dead streams warn", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, DeadStreams: 2, Streams: 10}, u: pinned,
			warnings: 1, wantInWarn: "received nothing"},
		{name: "kernel mode not active", spec: relay.Spec{Mode: "xdp", ExpectKernel: true}, p: report.Point{TargetPPS: 1000, OfferedPPS: 1000},
			u: pinned, warnings: 1, wantInWarn: "not active"},
		{name: "SRTP calls stay in userspace in a kernel mode", spec: relay.Spec{Mode: "xdp", ExpectKernel: true},
			p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, SRTPSuite: "AES_CM_128_HMAC_SHA1_80"}, u: pinned},
		{name: "SRTP packets that failed their checks", p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, SRTPSuite: "AEAD_AES_128_GCM", SRTPFailed: 7},
			u: pinned, warnings: 1, wantInWarn: "7 packets of the SRTP legs"},
		{name: "SRTP packets forwarded by a kernel", spec: relay.Spec{Mode: "xdp", ExpectKernel: true},
			p: report.Point{TargetPPS: 1000, OfferedPPS: 1000, SRTPSuite: "AES_CM_128_HMAC_SHA1_80", KernelRelayed: 40}, u: pinned,
			warnings: 1, wantInWarn: "forwarded in the kernel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testSession(t, tc.spec)
			p := tc.p
			s.judge(&p, &tc.r, tc.u)
			if p.GenBound != tc.genBound {
				t.Errorf("GenBound = %v (%v), want %v", p.GenBound, p.GenReasons, tc.genBound)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(p.GenReasons, ";"), tc.reason) {
				t.Errorf("reasons %q lack %q", p.GenReasons, tc.reason)
			}
			if len(p.Warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", p.Warnings, tc.warnings)
			}
			if tc.wantInWarn != "" && (len(p.Warnings) == 0 || !strings.Contains(p.Warnings[0], tc.wantInWarn)) {
				t.Errorf("warnings %q lack %q", p.Warnings, tc.wantInWarn)
			}
		})
	}
}

func TestValidateSRTP(t *testing.T) {
	base := func() *Config {
		return &Config{Relays: []relay.Spec{{Name: "relayd:userspace"}}, Modes: []string{ModeSRTP}, PPS: 50, Window: time.Second,
			Reps: 1, LossTarget: 0.001, Deadline: time.Minute, SRTPCalls: []int{100}, SRTPSuites: []string{"AES_CM_128_HMAC_SHA1_80"}}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid srtp config: %v", err)
	}
	tests := map[string]func(c *Config){
		"no loads":        func(c *Config) { c.SRTPCalls = nil },
		"no suites":       func(c *Config) { c.SRTPSuites = nil },
		"unknown suite":   func(c *Config) { c.SRTPSuites = []string{"F8_128_HMAC_SHA1_80"} },
		"negative load":   func(c *Config) { c.SRTPCalls = []int{-1} },
		"misspelled mode": func(c *Config) { c.Modes = []string{"sdes"} },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			c := base()
			f(c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Errorf("Validate = %v, want ErrConfig", err)
			}
		})
	}
	c := base()
	c.Calls, c.SRTPCalls = []int{50}, []int{300}
	if got := c.maxCalls(); got != 300 {
		t.Errorf("maxCalls = %d, want the largest SRTP load", got)
	}
	c.Profile, c.Modes = true, []string{ModeSRTP}
	if c.profilePlain() {
		t.Errorf("a run of the srtp mode alone profiles plain media")
	}
	c.Modes = []string{ModeFixed, ModeSRTP}
	if !c.profilePlain() {
		t.Errorf("a run with fixed loads does not profile plain media")
	}
}

func TestValidateTranscode(t *testing.T) {
	base := func() *Config {
		return &Config{Relays: []relay.Spec{{Name: "relayd:userspace"}}, Modes: []string{ModeTranscode}, PPS: 50, Window: time.Second,
			Reps: 1, LossTarget: 0.001, Deadline: time.Minute, TranscodeCalls: []int{25, 50}, TranscodePairs: []string{"opus-pcmu", "g722-pcmu"},
			RampMaxCalls: 3000}
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("valid transcode config: %v", err)
	}
	tests := map[string]func(c *Config){
		"no loads":      func(c *Config) { c.TranscodeCalls = nil },
		"no pairs":      func(c *Config) { c.TranscodePairs = nil },
		"unknown pair":  func(c *Config) { c.TranscodePairs = []string{"amr-pcmu"} },
		"negative load": func(c *Config) { c.TranscodeCalls = []int{-1} },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			c := base()
			f(c)
			if err := c.Validate(); !errors.Is(err, ErrConfig) {
				t.Errorf("Validate = %v, want ErrConfig", err)
			}
		})
	}
	c := base()
	if got := c.maxCalls(); got != 50 {
		t.Errorf("maxCalls = %d without the ramp, want the largest transcoded load", got)
	}
	c.TranscodeRamp = true
	if got := c.maxCalls(); got != 3000 {
		t.Errorf("maxCalls = %d with the ramp, want its ceiling", got)
	}
	c.Profile = true
	if c.profilePlain() {
		t.Errorf("a run of the transcode mode alone profiles plain media")
	}
}
