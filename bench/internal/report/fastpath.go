// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// IsCeiling says whether a relay name is the bare bounce program's, the
// machine's ceiling rather than a relay.
func IsCeiling(relay string) bool { return strings.HasPrefix(relay, "ceiling") }

// isFastPath says whether a relay name is one of relayd's kernel modes.
func isFastPath(relay string) bool { return strings.HasPrefix(relay, "relayd:xdp") }

// ScalingSummary is the median over repetitions of the fast path at one
// rule-table size.
type ScalingSummary struct {
	Relay        string  `json:"relay"`
	Installed    int     `json:"installed_rules"` // the size asked for (Asked)
	Reps         int     `json:"reps"`
	Calls        int     `json:"calls"`
	DeliveredPPS float64 `json:"delivered_pps"`
	LossPct      float64 `json:"loss_pct"`
	RelayCPUPct  float64 `json:"relay_cpu_pct"`
	NsPerPacket  float64 `json:"cpu_ns_per_packet"`
	LatP99Us     float64 `json:"lat_p99_us"`
	InstallMs    float64 `json:"filler_install_ms"`
	Fillers      int     `json:"fillers"`
}

// SummarizeScaling groups the streams mode's windows by relay and table
// size (rounded to the size asked for: the count itself moves by the odd
// rule as streams re-latch) and takes medians.
func SummarizeScaling(points []ScalingPoint, relays []string) []ScalingSummary {
	var out []ScalingSummary
	for _, r := range relays {
		groups := map[int][]ScalingPoint{}
		for _, p := range points {
			if p.Relay == r {
				groups[p.Asked] = append(groups[p.Asked], p)
			}
		}
		sizes := make([]int, 0, len(groups))
		for k := range groups {
			sizes = append(sizes, k)
		}
		slices.Sort(sizes)
		for _, k := range sizes {
			ps := groups[k]
			med := func(f func(ScalingPoint) float64) float64 {
				v := make([]float64, len(ps))
				for i, p := range ps {
					v[i] = f(p)
				}
				return Median(v)
			}
			out = append(out, ScalingSummary{
				Relay: r, Installed: k, Reps: len(ps), Calls: ps[0].Calls, Fillers: ps[0].Fillers,
				DeliveredPPS: med(func(p ScalingPoint) float64 { return p.DeliveredPPS }),
				LossPct:      med(func(p ScalingPoint) float64 { return p.LossPct }),
				RelayCPUPct:  med(func(p ScalingPoint) float64 { return p.RelayCPUPct }),
				NsPerPacket:  med(func(p ScalingPoint) float64 { return p.NsPerPacket }),
				LatP99Us:     med(func(p ScalingPoint) float64 { return p.LatP99Us }),
				InstallMs:    med(func(p ScalingPoint) float64 { return p.InstallMs }),
			})
		}
	}
	return out
}

// fastPathPick returns the fast path, the ceiling and the incumbent the
// fast-path targets compare (the first of each; "" when absent).
func (c Comparison) fastPathPick() (fp, ceiling, inc string) {
	for _, r := range c.Relays {
		switch {
		case fp == "" && isFastPath(r):
			fp = r
		case ceiling == "" && IsCeiling(r):
			ceiling = r
		case inc == "" && IsIncumbent(r) && !strings.Contains(r, "kernel"):
			inc = r
		}
	}
	return fp, ceiling, inc
}

// cpuComparable says whether a load's CPU per packet can be compared: the
// relay delivered nearly everything and was not saturated (a saturated
// relay batches, which flatters its cost per packet). Whether the
// generator kept its schedule does not matter here: the relay's CPU is
// divided by what it really delivered.
func cpuComparable(p PointSummary) bool {
	return p.LossPct < 1 && p.RelayCPUPct < 85 && !math.IsNaN(p.NsPerPacket) && p.NsPerPacket > 0
}

// commonLoads pairs a's and b's comparable fixed loads.
func (c Comparison) commonLoads(a, b string) (pa, pb []PointSummary) {
	for _, p := range c.Points {
		if p.Relay != a || !cpuComparable(p) {
			continue
		}
		for _, q := range c.Points {
			if q.Relay == b && q.Calls == p.Calls && cpuComparable(q) {
				pa, pb = append(pa, p), append(pb, q)
			}
		}
	}
	return pa, pb
}

// FastPathTargets judges issue 5's figures: CPU per packet against the
// incumbent (≤ 1/6) and the ceiling (≤ 1.25×), loss at every load, the
// ramp, and flat CPU per packet from the smallest to the largest table.
func (c Comparison) FastPathTargets() []Target {
	fp, ceil, inc := c.fastPathPick()
	if fp == "" {
		return nil
	}
	var out []Target
	if inc != "" {
		t := Target{Name: "fast path CPU vs incumbent", Goal: fmt.Sprintf("%s ≤ 1/6 of %s's CPU per packet at the same load", fp, inc)}
		c.cpuRatio(&t, inc, fp, func(m float64, ns string) string {
			return fmt.Sprintf("%s: %s needs %.2f× less CPU", ns, fp, m)
		}, func(m float64) bool { return m >= 6 })
		out = append(out, t)
	}
	if ceil != "" {
		t := Target{Name: "fast path CPU vs ceiling", Goal: fmt.Sprintf("%s ≤ 1.25× the CPU per packet of %s (bare rewrite-and-bounce XDP program)", fp, ceil)}
		c.cpuRatio(&t, fp, ceil, func(m float64, ns string) string {
			return fmt.Sprintf("%s: %.2f× the ceiling", ns, m)
		}, func(m float64) bool { return m <= 1.25 })
		out = append(out, t)
	}
	out = append(out, c.fastPathLoss(fp, inc), c.fastPathRamp(fp))
	if t, ok := c.scalingTarget(fp); ok {
		out = append(out, t)
	}
	return out
}

func (c Comparison) fastPathLoss(fp, inc string) Target {
	t := Target{Name: "fast path loss", Goal: fmt.Sprintf("%s < %.1f %% loss at every load the generator offered", fp, c.LossTargetPct)}
	var parts, bad []string
	n := 0
	for _, p := range c.Points {
		if p.Relay != fp {
			continue
		}
		// Loads the generator could not offer cleanly (it fell behind, or
		// its catch-up bursts overflowed a veth ring while the relay idled)
		// say nothing about the relay.
		if p.OfferedPPS < 0.97*p.TargetPPS || p.GenBound {
			parts = append(parts, fmt.Sprintf("%d calls generator-bound (%s %%)", p.Calls, pct(p.LossPct)))
			continue
		}
		n++
		part := fmt.Sprintf("%d calls %s %%", p.Calls, pct(p.LossPct))
		for _, q := range c.Points {
			if inc != "" && q.Relay == inc && q.Calls == p.Calls {
				part += fmt.Sprintf(" (%s %s %%)", inc, pct(q.LossPct))
			}
		}
		parts = append(parts, part)
		if p.LossPct >= c.LossTargetPct {
			bad = append(bad, fmt.Sprint(p.Calls))
		}
	}
	if n == 0 {
		t.Measured, t.Status = "no load the generator offered cleanly: "+strings.Join(parts, "; "), "undetermined"
		return t
	}
	t.Measured = strings.Join(parts, "; ")
	t.Status = status(len(bad) == 0)
	return t
}

func (c Comparison) fastPathRamp(fp string) Target {
	t := Target{Name: "fast path ramp", Goal: fmt.Sprintf("%s's ramp stops at the generator's limit, not the relay's", fp)}
	r, ok := c.ramp(fp)
	if !ok {
		t.Measured, t.Status = "no ramp", "undetermined"
		return t
	}
	t.Measured = fmt.Sprintf("%s pps at %s calls, %s", PPS(r.MaxPPS), f0(r.MaxCalls), boundText(r.Bound))
	t.Status = status(r.Bound == "generator" || r.Bound == "ceiling")
	return t
}

// scalingTarget: CPU per packet within ±10 % of the smallest table's at
// every size, and the largest batch of fillers installed in < 200 ms.
func (c Comparison) scalingTarget(fp string) (Target, bool) {
	var ss []ScalingSummary
	for _, s := range c.Scaling {
		if s.Relay == fp {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return Target{}, false
	}
	t := Target{Name: "installed streams", Goal: fmt.Sprintf("%s CPU per packet flat (±10 %%) from %d to %d installed rules; installing them < 200 ms",
		fp, ss[0].Installed, ss[len(ss)-1].Installed)}
	base := ss[0].NsPerPacket
	worst := 0.0
	var parts []string
	for _, s := range ss {
		d := s.NsPerPacket/base - 1
		if math.Abs(d) > math.Abs(worst) {
			worst = d
		}
		parts = append(parts, fmt.Sprintf("%d: %.0f ns (%+.1f %%)", s.Installed, s.NsPerPacket, 100*d))
	}
	last := ss[len(ss)-1]
	t.Measured = fmt.Sprintf("%s; %d fillers installed in %s ms", strings.Join(parts, ", "), last.Fillers, f1(last.InstallMs))
	if math.IsNaN(base) || base <= 0 {
		t.Status = "undetermined"
		return t, true
	}
	t.Status = status(math.Abs(worst) <= 0.10 && (math.IsNaN(last.InstallMs) || last.InstallMs < 200))
	return t, true
}

// cpuRatio fills t with num's CPU per packet over den's at their common
// loads: the median ratio, judged by ok, and the ratio at each load.
func (c Comparison) cpuRatio(t *Target, num, den string, say func(median float64, ns string) string, ok func(median float64) bool) {
	pn, pd := c.commonLoads(num, den)
	if len(pn) == 0 {
		t.Measured, t.Status = "no common load below saturation", "undetermined"
		return
	}
	var rs, nn, nd []float64
	var parts []string
	for i := range pn {
		r := pn[i].NsPerPacket / pd[i].NsPerPacket
		rs, nn, nd = append(rs, r), append(nn, pn[i].NsPerPacket), append(nd, pd[i].NsPerPacket)
		parts = append(parts, fmt.Sprintf("%d calls %.2f×", pn[i].Calls, r))
	}
	m := Median(rs)
	// The fast path is named first whichever side of the ratio it is on.
	a, na, b, nb := num, Median(nn), den, Median(nd)
	if IsIncumbent(num) {
		a, na, b, nb = b, nb, a, na
	}
	ns := fmt.Sprintf("%s %.0f ns, %s %.0f ns per packet (medians)", a, na, b, nb)
	t.Measured = fmt.Sprintf("%s (%s)", say(m, ns), strings.Join(parts, ", "))
	t.Status = status(ok(m))
}

// fastPathTable lays the fast path, the ceiling and the incumbent side by
// side per fixed load.
func fastPathTable(c Comparison) string {
	fp, ceil, inc := c.fastPathPick()
	if fp == "" || (ceil == "" && inc == "") {
		return ""
	}
	get := func(relay string, calls int) (PointSummary, bool) {
		for _, p := range c.Points {
			if p.Relay == relay && p.Calls == calls {
				return p, true
			}
		}
		return PointSummary{}, false
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| calls | offered pps | %s ns/packet | %s ns/packet | %s ns/packet | %s ÷ %s | %s ÷ %s | XDP program ns/run %s / %s | loss %% %s / %s |\n",
		fp, orDash(ceil), orDash(inc), fp, orDash(ceil), orDash(inc), fp, fp, orDash(ceil), fp, orDash(inc))
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	rows := 0
	for _, p := range c.Points {
		if p.Relay != fp {
			continue
		}
		rows++
		pc, okc := get(ceil, p.Calls)
		pi, oki := get(inc, p.Calls)
		nc, ni, li, prc := math.NaN(), math.NaN(), math.NaN(), math.NaN()
		if okc {
			nc, prc = pc.NsPerPacket, pc.ProgNsPerRun
		}
		if oki {
			ni, li = pi.NsPerPacket, pi.LossPct
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s |\n", p.Calls, PPS(p.OfferedPPS), f0(p.NsPerPacket), f0(nc), f0(ni),
			ratio(p.NsPerPacket, nc), ratio(ni, p.NsPerPacket), f0(p.ProgNsPerRun), f0(prc), pct(p.LossPct), pct(li))
	}
	if rows == 0 {
		return "" // no plain fixed loads (a run of the srtp mode alone)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
