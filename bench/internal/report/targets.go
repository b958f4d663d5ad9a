// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"strings"
)

// Target is one of the issues' targets and how this run measured up.
type Target struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Status is "met", "not met" or "undetermined" (the bench could not
	// measure it, e.g. the generator saturated first).
	Status string `json:"status"`
}

// Comparison holds the summaries the targets are judged on.
type Comparison struct {
	Points   []PointSummary
	Ramps    []RampSummary
	Controls []ControlSummary
	Scaling  []ScalingSummary
	SRTP     []PointSummary
	// Transcode and TranscodeRamps are the transcode mode's; RelayCPUs
	// the relay's CPU count (calls per core divide by it).
	Transcode      []PointSummary
	TranscodeRamps []RampSummary
	RelayCPUs      int
	Relays         []string
	// LossTargetPct is the loss bound of the throughput target.
	LossTargetPct float64
}

// pick returns the relay of the list the targets speak about: relayd's
// userspace path and the incumbent (the first of each kind).
func (c Comparison) pick() (ours, theirs string) {
	for _, r := range c.Relays {
		switch {
		case ours == "" && r == "relayd:userspace":
			ours = r
		case theirs == "" && IsIncumbent(r) && !strings.Contains(r, "kernel"):
			theirs = r
		}
	}
	return ours, theirs
}

// Targets judges the run against the targets: those of plain RTP
// when the run measured plain media or the control plane (a run of the
// srtp mode alone says nothing about them), and the SRTP ones.
func (c Comparison) Targets() []Target {
	var out []Target
	if len(c.Points)+len(c.Ramps)+len(c.Controls)+len(c.Scaling) > 0 {
		if ours, theirs := c.pick(); ours != "" && theirs != "" {
			out = append(out, c.throughputTarget(ours, theirs), c.cpuTarget(ours, theirs), c.setupRateTarget(ours, theirs), c.latencyTarget(ours))
		}
		out = append(out, c.FastPathTargets()...)
	}
	out = append(out, c.SRTPTargets()...)
	return append(out, c.TranscodeTargets()...)
}

func (c Comparison) ramp(relay string) (RampSummary, bool) {
	for _, r := range c.Ramps {
		if r.Relay == relay {
			return r, true
		}
	}
	return RampSummary{}, false
}

// bestFixed is the highest fixed load whose median loss met the target and
// that the generator did not limit.
func (c Comparison) bestFixed(relay string) (PointSummary, bool) {
	var best PointSummary
	ok := false
	for _, p := range c.Points {
		if p.Relay == relay && !p.GenBound && p.LossPct < c.LossTargetPct && (!ok || p.DeliveredPPS > best.DeliveredPPS) {
			best, ok = p, true
		}
	}
	return best, ok
}

func (c Comparison) throughputTarget(ours, theirs string) Target {
	t := Target{Name: "media throughput", Goal: fmt.Sprintf("%s ≥ 1.5× %s packets/s at < %.1f %% loss", ours, theirs, c.LossTargetPct)}
	ro, ok1 := c.ramp(ours)
	rt, ok2 := c.ramp(theirs)
	if !ok1 || !ok2 {
		po, ok1 := c.bestFixed(ours)
		pt, ok2 := c.bestFixed(theirs)
		if !ok1 || !ok2 {
			t.Measured, t.Status = "no loss-free load for both relays", "undetermined"
			return t
		}
		ro = RampSummary{MaxPPS: po.DeliveredPPS, Bound: "fixed loads"}
		rt = RampSummary{MaxPPS: pt.DeliveredPPS, Bound: "fixed loads"}
	}
	if rt.MaxPPS <= 0 {
		t.Measured, t.Status = fmt.Sprintf("%s met the loss target at no load", theirs), "undetermined"
		return t
	}
	ratio := ro.MaxPPS / rt.MaxPPS
	t.Measured = fmt.Sprintf("%s %s pps (%s), %s %s pps (%s): %.2f×", ours, PPS(ro.MaxPPS), boundText(ro.Bound), theirs, PPS(rt.MaxPPS), boundText(rt.Bound), ratio)
	switch {
	case ro.Bound == "relay" && rt.Bound == "relay":
		t.Status = status(ratio >= 1.5)
	case ratio >= 1.5:
		// A lower bound already clears it.
		t.Status = "met"
	case ro.Bound != "relay":
		t.Status = "undetermined"
		t.Measured += fmt.Sprintf(" — %s did not reach its limit, so this is a lower bound", ours)
	default:
		t.Status = status(ratio >= 1.5)
	}
	return t
}

// cpuTarget restates the throughput target per CPU: packets per second
// per relay core from the CPU cost per packet, which stays measurable when
// the generator saturates first.
func (c Comparison) cpuTarget(ours, theirs string) Target {
	t := Target{Name: "CPU per relayed packet", Goal: fmt.Sprintf("%s ≤ %s / 1.5 (the throughput target per core)", ours, theirs)}
	cpuVsIncumbent(&t, c.Points, ours, theirs)
	return t
}

// cpuVsIncumbent judges ours ≤ theirs / 1.5 in CPU per packet over the
// points both relays measured at the same loads.
func cpuVsIncumbent(t *Target, points []PointSummary, ours, theirs string) {
	// Compare at the loads both carried below saturation (their CPU under
	// 85 %, loss under 1 %, the generator not limiting): the median over
	// those loads of each. A saturated relay queues and batches, which
	// flatters its cost per packet.
	usable := func(p PointSummary) bool {
		return !p.GenBound && p.LossPct < 1 && p.RelayCPUPct < 85 && !math.IsNaN(p.NsPerPacket)
	}
	var o, th []float64
	var loads []string
	for _, p := range points {
		if p.Relay != ours || !usable(p) {
			continue
		}
		for _, q := range points {
			if q.Relay == theirs && q.Calls == p.Calls && usable(q) {
				o, th = append(o, p.NsPerPacket), append(th, q.NsPerPacket)
				loads = append(loads, fmt.Sprintf("%d calls %.2f×", p.Calls, q.NsPerPacket/p.NsPerPacket))
			}
		}
	}
	if len(o) == 0 {
		t.Measured, t.Status = "no common load below saturation", "undetermined"
		return
	}
	mo, mt := Median(o), Median(th)
	ratio := mt / mo
	t.Measured = fmt.Sprintf("%s %.0f ns, %s %.0f ns per packet (median over %d common loads): %s needs %.2f× less CPU",
		ours, mo, theirs, mt, len(o), ours, ratio)
	if ratio < 1 {
		t.Measured = fmt.Sprintf("%s %.0f ns, %s %.0f ns per packet (median over %d common loads): %s needs %.2f× more CPU",
			ours, mo, theirs, mt, len(o), ours, 1/ratio)
	}
	t.Measured += fmt.Sprintf(" (%s ÷ %s: %s)", theirs, ours, strings.Join(loads, ", "))
	t.Status = status(ratio >= 1.5)
}

func (c Comparison) bestRate(relay string) (ControlSummary, bool) {
	var best ControlSummary
	ok := false
	for _, s := range c.Controls {
		if s.Relay == relay && !strings.HasPrefix(s.Name, "paced") && (!ok || s.SetupsPerSec > best.SetupsPerSec) {
			best, ok = s, true
		}
	}
	return best, ok
}

func (c Comparison) setupRateTarget(ours, theirs string) Target {
	t := Target{Name: "control-plane rate", Goal: fmt.Sprintf("%s ≥ 3× %s setups/s (offer+answer+delete)", ours, theirs)}
	o, ok1 := c.bestRate(ours)
	th, ok2 := c.bestRate(theirs)
	if !ok1 || !ok2 || th.SetupsPerSec <= 0 {
		t.Measured, t.Status = "not measured", "undetermined"
		return t
	}
	ratio := o.SetupsPerSec / th.SetupsPerSec
	t.Measured = fmt.Sprintf("%s %.0f/s (%s), %s %.0f/s (%s): %.2f×", ours, o.SetupsPerSec, o.Name, theirs, th.SetupsPerSec, th.Name, ratio)
	if o.RelayCPUPerSetupUs > 0 && th.RelayCPUPerSetupUs > 0 {
		t.Measured += fmt.Sprintf("; relay CPU per setup %.0f vs %.0f µs (%.2f× less), relay busy %.0f %% vs %.0f %%, bench busy %.0f %% vs %.0f %%",
			o.RelayCPUPerSetupUs, th.RelayCPUPerSetupUs, th.RelayCPUPerSetupUs/o.RelayCPUPerSetupUs,
			o.RelayBusyPct, th.RelayBusyPct, o.BenchBusyPct, th.BenchBusyPct)
	}
	if ce, ok := c.bestRate("ceiling"); ok && ce.SetupsPerSec > 0 {
		t.Measured += fmt.Sprintf("; the ceiling (a responder doing no relay work) %.0f/s (%s): 3× %s would be %.2f× the ceiling",
			ce.SetupsPerSec, ce.Name, theirs, 3*th.SetupsPerSec/ce.SetupsPerSec)
	}
	t.Status = status(ratio >= 3)
	return t
}

func (c Comparison) latencyTarget(ours string) Target {
	t := Target{Name: "control-plane latency", Goal: fmt.Sprintf("%s p99 < 1 ms per offer, answer and delete at 1,000 setups/s", ours)}
	for _, s := range c.Controls {
		if s.Relay != ours || s.Name != "paced-1000" {
			continue
		}
		worst := max(s.OfferP99, s.AnswerP99, s.DeleteP99)
		t.Measured = fmt.Sprintf("p99 offer %.0f µs, answer %.0f µs, delete %.0f µs (offer+answer %.0f µs); %.0f setups/s achieved",
			s.OfferP99, s.AnswerP99, s.DeleteP99, s.SetupP99, s.SetupsPerSec)
		t.Status = status(worst < 1000 && s.Errors == 0 && s.SetupsPerSec >= 950)
		return t
	}
	t.Measured, t.Status = "no paced-1000 run", "undetermined"
	return t
}

func status(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func boundText(b string) string {
	switch b {
	case "relay":
		return "relay-bound"
	case "generator":
		return "generator-bound"
	case "ceiling":
		return "ramp ceiling"
	}
	return b
}

// PPS formats packets per second compactly.
func PPS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
