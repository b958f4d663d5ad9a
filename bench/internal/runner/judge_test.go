// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"io"
	"strings"
	"testing"

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
