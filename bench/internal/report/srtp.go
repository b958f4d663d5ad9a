// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"strings"
)

// ModeSRTP is the mode name of the srtp mode's points.
const ModeSRTP = "srtp"

// SummarizeSRTP takes the srtp mode's medians: per suite, in the order the
// run measured them, then per relay and load as SummarizePoints does.
func SummarizeSRTP(points []Point, relays []string) []PointSummary {
	var suites []string
	bySuite := map[string][]Point{}
	for _, p := range points {
		if p.Mode != ModeSRTP {
			continue
		}
		if _, ok := bySuite[p.SRTPSuite]; !ok {
			suites = append(suites, p.SRTPSuite)
		}
		bySuite[p.SRTPSuite] = append(bySuite[p.SRTPSuite], p)
	}
	var out []PointSummary
	for _, suite := range suites {
		for _, s := range SummarizePoints(bySuite[suite], relays) {
			s.Suite = suite
			out = append(out, s)
		}
	}
	return out
}

// srtpSuites lists the suites of the summaries in order.
func srtpSuites(ss []PointSummary) []string {
	var out []string
	for _, s := range ss {
		if len(out) == 0 || out[len(out)-1] != s.Suite {
			out = append(out, s.Suite)
		}
	}
	return out
}

func (c Comparison) srtpPoints(suite string) []PointSummary {
	var out []PointSummary
	for _, p := range c.SRTP {
		if p.Suite == suite {
			out = append(out, p)
		}
	}
	return out
}

// incumbent is the first incumbent of the list in userspace ("" when none).
func (c Comparison) incumbent() string {
	for _, r := range c.Relays {
		if IsIncumbent(r) && !strings.Contains(r, "kernel") {
			return r
		}
	}
	return ""
}

// srtpRelays are relayd's entries that carried SRTP calls among pts (the
// ceiling cannot: it bounces packets untouched).
func (c Comparison) srtpRelays(pts []PointSummary) []string {
	var out []string
	for _, r := range c.Relays {
		if IsIncumbent(r) || IsCeiling(r) {
			continue
		}
		for _, p := range pts {
			if p.Relay == r {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// SRTPTargets judges issue 10's figure for every suite and relayd entry:
// CPU per relayed packet at most the incumbent's ÷ 1.5 with one leg SRTP,
// on the rules of the plain CPU target (medians over repetitions, loads
// both carried below saturation and without the generator limiting).
func (c Comparison) SRTPTargets() []Target {
	inc := c.incumbent()
	if inc == "" {
		return nil
	}
	var out []Target
	for _, suite := range srtpSuites(c.SRTP) {
		pts := c.srtpPoints(suite)
		for _, r := range c.srtpRelays(pts) {
			t := Target{Name: "SRTP CPU per packet, " + suite,
				Goal: fmt.Sprintf("%s ≤ %s / 1.5 with SDES-SRTP on the callers' leg, plain RTP on the callees'", r, inc)}
			cpuVsIncumbent(&t, pts, r, inc)
			out = append(out, t)
		}
	}
	return out
}

// srtpSection renders the srtp mode's tables, one pair per suite.
func srtpSection(r *Run, s Summary) string {
	if len(s.SRTP) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	c := s.comparison(r)
	inc := c.incumbent()
	for _, suite := range srtpSuites(s.SRTP) {
		pts := c.srtpPoints(suite)
		ours := c.srtpRelays(pts)
		w("### SRTP on the callers' leg: %s (medians over repetitions)\n\n", suite)
		w("| relay | calls | offered pps | delivered pps | loss %% | latency p50 / p99 / p99.9 µs | relay CPU %% | **CPU ns / packet** | vs plain RTP | kernel-forwarded packets | SRTP failures | generator CPU %% |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, p := range pts {
			delivered := PPS(p.DeliveredPPS)
			if p.GenBound {
				delivered = fmt.Sprintf("(generator-bound %d/%d)", p.GenBoundReps, p.Reps)
			}
			plain := "–"
			for _, q := range s.Points {
				if q.Relay == p.Relay && q.Calls == p.Calls {
					plain = ratio(p.NsPerPacket, q.NsPerPacket)
				}
			}
			w("| %s | %d | %s | %s | %s | %s / %s / %s | %s | **%s** | %s | %s | %d | %s |\n",
				p.Relay, p.Calls, PPS(p.OfferedPPS), delivered, pct(p.LossPct), f0(p.LatP50Us), f0(p.LatP99Us), f0(p.LatP999Us),
				f0(p.RelayCPUPct), f0(p.NsPerPacket), plain, f0(p.KernelRelayed), p.SRTPFailed, f0(p.GenCPUPct))
		}
		w("\n")
		if inc != "" && len(ours) > 0 {
			w("| calls |")
			for _, o := range ours {
				w(" %s ns/packet |", o)
			}
			w(" %s ns/packet |", inc)
			for _, o := range ours {
				w(" %s ÷ %s |", inc, o)
			}
			w(" loss %% %s / %s |\n|---:|", strings.Join(ours, " / "), inc)
			w("%s\n", strings.Repeat("---:|", 2*len(ours)+2))
			get := func(relay string, calls int) PointSummary {
				for _, p := range pts {
					if p.Relay == relay && p.Calls == calls {
						return p
					}
				}
				return PointSummary{NsPerPacket: math.NaN(), LossPct: math.NaN()}
			}
			var loads []int
			for _, p := range pts {
				if p.Relay == ours[0] {
					loads = append(loads, p.Calls)
				}
			}
			for _, n := range loads {
				pi := get(inc, n)
				w("| %d |", n)
				var losses []string
				for _, o := range ours {
					w(" %s |", f0(get(o, n).NsPerPacket))
					losses = append(losses, pct(get(o, n).LossPct))
				}
				w(" %s |", f0(pi.NsPerPacket))
				for _, o := range ours {
					w(" %s |", ratio(pi.NsPerPacket, get(o, n).NsPerPacket))
				}
				w(" %s / %s |\n", strings.Join(losses, " / "), pct(pi.LossPct))
			}
			w("\n")
		}
	}
	w("Each call's caller offers `RTP/SAVP` with one `a=crypto` line of the suite (a fresh key per call); " +
		"the proxy asks for `RTP/AVP` towards the callee and `RTP/SAVP` in the answer, so the relay must decrypt what " +
		"the caller sends, forward it in the clear, and encrypt what the callee sends with the key of its own answer. " +
		"The generator encrypts the callers' packets and decrypts and authenticates what reaches them with the relay's key " +
		"(pion/srtp); payloads are checked in full at both ends, so loss, latency and the per-call counters stay exact. " +
		"*SRTP failures* are packets that did not authenticate, arrived in the clear where SRTP was due, or came out " +
		"damaged; one packet per call is sent with a broken tag and must not reach the callee (see the checks). " +
		"*vs plain RTP* is the CPU per packet against the same relay's plain fixed load in the same run.\n\n")
	return b.String()
}
