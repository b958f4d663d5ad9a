// SPDX-License-Identifier: Apache-2.0

package report

import (
	"strings"
	"testing"
)

func fpPoint(relay string, calls int, ns, loss, cpu float64) PointSummary {
	pps := float64(calls) * 100
	return PointSummary{Relay: relay, Calls: calls, TargetPPS: pps, OfferedPPS: pps, DeliveredPPS: pps, NsPerPacket: ns, LossPct: loss, RelayCPUPct: cpu}
}

func scale(asked, fillers int, ns, ms float64) ScalingSummary {
	return ScalingSummary{Relay: "relayd:xdp", Installed: asked, Fillers: fillers, NsPerPacket: ns, InstallMs: ms}
}

func TestFastPathTargets(t *testing.T) {
	relays := []string{"relayd:userspace", "relayd:xdp", "rtpengine", "ceiling"}
	base := []PointSummary{
		fpPoint("relayd:xdp", 100, 1000, 0, 5), fpPoint("relayd:xdp", 200, 1100, 0, 10),
		fpPoint("ceiling", 100, 900, 0, 5), fpPoint("ceiling", 200, 1000, 0, 9),
		fpPoint("rtpengine", 100, 7000, 0, 40), fpPoint("rtpengine", 200, 6500, 0.5, 80),
	}
	tests := []struct {
		name    string
		points  []PointSummary
		ramps   []RampSummary
		scaling []ScalingSummary
		want    map[string]string
		inText  map[string]string
	}{
		{
			name: "all met", points: base,
			ramps:   []RampSummary{{Relay: "relayd:xdp", MaxPPS: 30000, MaxCalls: 300, Bound: "generator"}},
			scaling: []ScalingSummary{scale(1000, 600, 1000, 1), scale(100000, 99600, 1080, 150)},
			want: map[string]string{"fast path CPU vs incumbent": "met", "fast path CPU vs ceiling": "met", "fast path loss": "met",
				"fast path ramp": "met", "installed streams": "met"},
			inText: map[string]string{"fast path CPU vs ceiling": "1.11× the ceiling (100 calls 1.11×, 200 calls 1.10×)", "installed streams": "+8.0 %"},
		},
		{
			name: "saturated incumbent load left out, ratios missed",
			points: []PointSummary{
				fpPoint("relayd:xdp", 100, 1500, 0, 5), fpPoint("relayd:xdp", 200, 1100, 0.2, 10),
				fpPoint("ceiling", 100, 1000, 0, 5),
				fpPoint("rtpengine", 100, 7000, 0, 40), fpPoint("rtpengine", 200, 3000, 5, 100),
			},
			ramps:   []RampSummary{{Relay: "relayd:xdp", MaxPPS: 20000, MaxCalls: 200, Bound: "relay"}},
			scaling: []ScalingSummary{scale(1000, 600, 1000, 1), scale(100000, 99600, 1200, 250)},
			want: map[string]string{"fast path CPU vs incumbent": "not met", "fast path CPU vs ceiling": "not met", "fast path loss": "not met",
				"fast path ramp": "not met", "installed streams": "not met"},
			inText: map[string]string{"fast path CPU vs incumbent": "100 calls 4.67×", "fast path loss": "rtpengine 5.00 %"},
		},
		{
			name: "a generator-bound load does not count",
			points: append(base[1:], func() PointSummary {
				p := fpPoint("relayd:xdp", 100, 1000, 0.9, 5)
				p.GenBound = true
				return p
			}()),
			want: map[string]string{"fast path CPU vs incumbent": "met", "fast path CPU vs ceiling": "met", "fast path loss": "met",
				"fast path ramp": "undetermined"},
			inText: map[string]string{"fast path loss": "100 calls generator-bound (0.90 %)"},
		},
		{
			name: "nothing comparable", points: []PointSummary{fpPoint("relayd:xdp", 100, 1000, 3, 5), fpPoint("ceiling", 100, 900, 0, 5)},
			want: map[string]string{"fast path CPU vs incumbent": "undetermined", "fast path CPU vs ceiling": "undetermined",
				"fast path loss": "not met", "fast path ramp": "undetermined"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Comparison{Points: tc.points, Ramps: tc.ramps, Scaling: tc.scaling, Relays: relays, LossTargetPct: 0.1}
			got := map[string]Target{}
			for _, tg := range c.FastPathTargets() {
				got[tg.Name] = tg
			}
			if len(got) != len(tc.want) {
				t.Errorf("%d targets %v, want %d", len(got), got, len(tc.want))
			}
			for name, st := range tc.want {
				if got[name].Status != st {
					t.Errorf("%s: %s (%s), want %s", name, got[name].Status, got[name].Measured, st)
				}
			}
			for name, text := range tc.inText {
				if !strings.Contains(got[name].Measured, text) {
					t.Errorf("%s: measured %q lacks %q", name, got[name].Measured, text)
				}
			}
		})
	}
}

func TestSummarizeScaling(t *testing.T) {
	pt := func(rep, asked, installed int, ns float64) ScalingPoint {
		return ScalingPoint{Point: Point{Relay: "relayd:xdp", Rep: rep, Calls: 200, NsPerPacket: ns}, Asked: asked, Installed: installed, Fillers: asked - 400}
	}
	got := SummarizeScaling([]ScalingPoint{
		pt(1, 100000, 100000, 10), pt(1, 1000, 1001, 5), pt(2, 1000, 999, 7), pt(2, 100000, 100001, 12), pt(3, 1000, 1000, 6),
	}, []string{"relayd:xdp", "ceiling"})
	if len(got) != 2 || got[0].Installed != 1000 || got[0].Reps != 3 || got[0].NsPerPacket != 6 || got[1].Installed != 100000 || got[1].NsPerPacket != 11 {
		t.Errorf("SummarizeScaling = %+v", got)
	}
}
