// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bench/internal/runner"
)

func TestParseCPUs(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"", nil, false},
		{"1", []int{1}, false},
		{"0,2", []int{0, 2}, false},
		{"2-4", []int{2, 3, 4}, false},
		{"0, 3-4", []int{0, 3, 4}, false},
		{"x", nil, true},
		{"4-2", nil, true},
		{"-1", nil, true},
	}
	for _, tc := range tests {
		got, err := parseCPUs(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("parseCPUs(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseInts(t *testing.T) {
	got, err := parseInts("100, 200,,300")
	if err != nil || !slices.Equal(got, []int{100, 200, 300}) {
		t.Errorf("parseInts = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-5", "ten"} {
		if _, err := parseInts(bad); err == nil {
			t.Errorf("parseInts(%q) succeeded", bad)
		}
	}
}

func TestQuickDefaultsKeepGivenFlags(t *testing.T) {
	var o options
	fs := newFlagSet(&o, &strings.Builder{})
	if err := fs.Parse([]string{"--quick", "--calls", "7", "--window", "3s"}); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	applyQuick(&o, set, false)
	if o.calls != "7" || o.window != 3*time.Second {
		t.Errorf("explicit flags overridden: calls %q window %v", o.calls, o.window)
	}
	if o.reps != 1 || o.relays != "relayd:userspace,relayd:xdp,ceiling" || o.deadline > 2*time.Minute || o.installed != "1000,20000" {
		t.Errorf("quick defaults not applied: reps %d relays %q deadline %v", o.reps, o.relays, o.deadline)
	}
}

// --quick with the restart mode alone runs relayd's two modes: the mode
// does not apply to the incumbent or the ceiling.
func TestQuickRestartRelays(t *testing.T) {
	var o options
	fs := newFlagSet(&o, &strings.Builder{})
	if err := fs.Parse([]string{"--quick", "--mode", "restart"}); err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	applyQuick(&o, set, true)
	if o.relays != "relayd:userspace,relayd:xdp" || o.restartCalls != 100 || o.restartAfter != 2*time.Second {
		t.Errorf("relays %q, restart calls %d, after %v", o.relays, o.restartCalls, o.restartAfter)
	}
	if !onlyMode(" restart,", "restart") || onlyMode("fixed,restart", "restart") || onlyMode("", "restart") {
		t.Error("onlyMode")
	}
}

func TestSmokeVerdict(t *testing.T) {
	good := report.Point{Relay: "relayd:userspace", Calls: 20, Sent: 100, Received: 100, Streams: 40}
	tests := []struct {
		name string
		run  report.Run
		ok   bool
	}{
		{"all media arrived", report.Run{Points: []report.Point{good}}, true},
		{"nothing measured", report.Run{}, false},
		{"silent streams", report.Run{Points: []report.Point{{Sent: 100, Received: 100, DeadStreams: 2}}}, false},
		{"heavy loss", report.Run{Points: []report.Point{{Sent: 100, Received: 50, LossPct: 50}}}, false},
		{"loss of a starved generator", report.Run{Points: []report.Point{{Sent: 100, Received: 90, LossPct: 10, GenBound: true}}}, true},
		{"a starved generator, nothing relayed", report.Run{Points: []report.Point{{Sent: 100, GenBound: true}}}, false},
		{"failed check", report.Run{Points: []report.Point{good}, Checks: []report.Check{{Name: "x", OK: false}}}, false},
		{"a restart run measures no points", report.Run{Restarts: []report.Restart{{Relay: "relayd:xdp", Streams: 200}}}, true},
		{"a restart check failed", report.Run{Restarts: []report.Restart{{Relay: "relayd:xdp", Streams: 200}},
			Checks: []report.Check{{Name: "restart: kernel streams lose nothing", OK: false}}}, false},
		{"control errors", report.Run{Points: []report.Point{good},
			Controls: []report.Control{{Results: []calls.ControlResult{{Name: "sequential", Cycles: 10, Errors: 1}}}}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := smokeVerdict(&tc.run)
			if (err == nil) != tc.ok {
				t.Errorf("smokeVerdict = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, runner.ErrSmoke) {
				t.Errorf("error %v is not ErrSmoke", err)
			}
		})
	}
}

func TestSRTPFlags(t *testing.T) {
	parse := func(args ...string) *runner.Config {
		t.Helper()
		var o options
		fs := newFlagSet(&o, &strings.Builder{})
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if o.quick {
			applyQuick(&o, set, true)
		}
		cfg, err := o.config(nil, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse("--mode", "srtp", "--calls", "100,200,300")
	if !slices.Equal(cfg.SRTPCalls, []int{100, 200, 300}) || !slices.Equal(cfg.SRTPSuites, []string{"AES_CM_128_HMAC_SHA1_80"}) {
		t.Errorf("srtp mode takes the fixed loads and the default suite: %v %v", cfg.SRTPCalls, cfg.SRTPSuites)
	}
	cfg = parse("--mode", "srtp", "--srtp-calls", "50", "--srtp-suites", "AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM")
	if !slices.Equal(cfg.SRTPCalls, []int{50}) || !slices.Equal(cfg.SRTPSuites, []string{"AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"}) {
		t.Errorf("--srtp-calls and --srtp-suites: %v %v", cfg.SRTPCalls, cfg.SRTPSuites)
	}
	cfg = parse("--quick")
	if !slices.Contains(cfg.Modes, "srtp") || !slices.Equal(cfg.SRTPCalls, []int{20}) {
		t.Errorf("the smoke test's SRTP part: modes %v, loads %v", cfg.Modes, cfg.SRTPCalls)
	}
	var o options
	fs := newFlagSet(&o, &strings.Builder{})
	if err := fs.Parse([]string{"--srtp-calls", "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.config(nil, &strings.Builder{}); err == nil {
		t.Errorf("a bad --srtp-calls was accepted")
	}
}
