// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"strings"
)

// ModeTranscode is the mode name of the transcode mode's fixed loads.
const ModeTranscode = "transcode"

// pairLabels are the tables' names of the pairs the bench knows (the
// report does not import the bench's audio package for them).
var pairLabels = map[string]string{"opus-pcmu": "Opus⇄PCMU", "g722-pcmu": "G.722⇄PCMU"}

// PairLabel is a pair's name in tables.
func PairLabel(pair string) string {
	if l, ok := pairLabels[pair]; ok {
		return l
	}
	return pair
}

// SummarizeTranscode takes the transcode mode's medians: per pair, in the
// order the run measured them, the fixed loads per relay and load, and the
// ramps per relay.
func SummarizeTranscode(points []Point, ramps []Ramp, relays []string) ([]PointSummary, []RampSummary) {
	var pairs []string
	byPair := map[string][]Point{}
	for _, p := range points {
		if p.Mode != ModeTranscode || p.Transcode == "" {
			continue
		}
		if _, ok := byPair[p.Transcode]; !ok {
			pairs = append(pairs, p.Transcode)
		}
		byPair[p.Transcode] = append(byPair[p.Transcode], p)
	}
	for _, r := range ramps {
		if _, ok := byPair[r.Transcode]; r.Transcode != "" && !ok {
			pairs = append(pairs, r.Transcode)
			byPair[r.Transcode] = nil
		}
	}
	var out []PointSummary
	var rs []RampSummary
	for _, pair := range pairs {
		for _, s := range SummarizePoints(byPair[pair], relays) {
			s.Transcode = pair
			out = append(out, s)
		}
		rs = append(rs, summarizeRamps(ramps, relays, pair)...)
	}
	return out, rs
}

// transcodePairs lists the pairs of a summary in order.
func (c Comparison) transcodePairs() []string {
	var out []string
	add := func(p string) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	for _, p := range c.Transcode {
		add(p.Transcode)
	}
	for _, r := range c.TranscodeRamps {
		add(r.Transcode)
	}
	return out
}

func (c Comparison) transcodePoints(pair string) []PointSummary {
	var out []PointSummary
	for _, p := range c.Transcode {
		if p.Transcode == pair {
			out = append(out, p)
		}
	}
	return out
}

func (c Comparison) transcodeRamp(pair, relay string) (RampSummary, bool) {
	for _, r := range c.TranscodeRamps {
		if r.Transcode == pair && r.Relay == relay {
			return r, true
		}
	}
	return RampSummary{}, false
}

// perCore divides a ramp's calls by the relay's CPUs.
func (c Comparison) perCore(calls float64) float64 { return calls / float64(max(c.RelayCPUs, 1)) }

// transcodeRelays are the relays (not the ceiling) that measured a pair,
// in the run's order.
func (c Comparison) transcodeRelays(pair string) []string {
	var out []string
	for _, r := range c.Relays {
		if IsCeiling(r) {
			continue
		}
		found := false
		for _, p := range c.Transcode {
			found = found || (p.Transcode == pair && p.Relay == r)
		}
		if _, ok := c.transcodeRamp(pair, r); found || ok {
			out = append(out, r)
		}
	}
	return out
}

// cpuPerTranscoded is a relay's CPU per transcoded packet for a pair: the
// median over its fixed loads carried below saturation (CPU under 85 %,
// loss under the target, the generator not limiting), and those loads.
func (c Comparison) cpuPerTranscoded(pair, relay string) (float64, []int) {
	var v []float64
	var loads []int
	for _, p := range c.transcodePoints(pair) {
		if p.Relay == relay && !p.GenBound && p.LossPct < c.LossTargetPct && p.RelayCPUPct < 85 && !math.IsNaN(p.NsPerPacket) {
			v, loads = append(v, p.NsPerPacket), append(loads, p.Calls)
		}
	}
	return Median(v), loads
}

// TranscodeTargets judges issue 11's figure for every pair and relayd
// entry: at least the incumbent's transcoded calls per core at the loss
// target, from the ramps.
func (c Comparison) TranscodeTargets() []Target {
	inc := c.incumbent()
	if inc == "" || len(c.TranscodeRamps) == 0 {
		return nil // no ramp (--transcode-ramp=false, the smoke test): no calls per core
	}
	var out []Target
	for _, pair := range c.transcodePairs() {
		for _, r := range c.transcodeRelays(pair) {
			if IsIncumbent(r) {
				continue
			}
			t := Target{Name: "transcoded calls per core, " + PairLabel(pair),
				Goal: fmt.Sprintf("%s ≥ %s calls per core at < %.1f %% loss", r, inc, c.LossTargetPct)}
			ro, ok1 := c.transcodeRamp(pair, r)
			ri, ok2 := c.transcodeRamp(pair, inc)
			switch {
			case !ok1 || !ok2:
				t.Measured, t.Status = "no ramp for both relays", "undetermined"
			case ri.MaxCalls <= 0:
				t.Measured, t.Status = fmt.Sprintf("%s met the loss target at no load", inc), "undetermined"
			default:
				ratio := ro.MaxCalls / ri.MaxCalls
				t.Measured = fmt.Sprintf("%s %.0f (%s), %s %.0f (%s): %.2f×", r, c.perCore(ro.MaxCalls), boundText(ro.Bound),
					inc, c.perCore(ri.MaxCalls), boundText(ri.Bound), ratio)
				switch {
				case ratio >= 1:
					t.Status = "met"
				case ro.Bound != "relay":
					t.Status = "undetermined"
					t.Measured += fmt.Sprintf(" — %s did not reach its limit", r)
				default:
					t.Status = "not met"
				}
			}
			out = append(out, t)
		}
	}
	return out
}

// transcodeSection renders the transcode mode: the side-by-side summary,
// then per pair its fixed loads and ramps, then what was not supported.
func transcodeSection(r *Run, s Summary) string {
	c := s.comparison(r)
	pairs := c.transcodePairs()
	if len(pairs) == 0 && len(r.Unsupported) == 0 {
		return ""
	}
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	cpus := max(c.RelayCPUs, 1)
	if len(pairs) > 0 {
		w("### Transcoding side by side (medians over repetitions)\n\n")
		w("| pair | relay | transcoded calls per core at < %.1f %% loss | stopped by | CPU ns per transcoded packet | at loads |\n", c.LossTargetPct)
		w("|---|---|---:|---|---:|---|\n")
		for _, pair := range pairs {
			for _, rl := range c.transcodeRelays(pair) {
				calls, bound := "–", "–"
				if ra, ok := c.transcodeRamp(pair, rl); ok {
					calls, bound = f0(c.perCore(ra.MaxCalls)), boundText(ra.Bound)
				}
				ns, loads := c.cpuPerTranscoded(pair, rl)
				w("| %s | %s | **%s** | %s | **%s** | %s |\n", PairLabel(pair), rl, calls, bound, f0(ns), joinInts(loads))
			}
		}
		w("\nCalls per core are the ramp's highest load with loss under the target (the relay on %d CPU%s); CPU per transcoded packet is the relay's CPU time over the packets delivered, the median over the fixed loads it carried below saturation (CPU under 85 %%, loss under the target).\n\n",
			cpus, map[bool]string{true: "s"}[cpus > 1])
	}
	for _, pair := range pairs {
		pts := c.transcodePoints(pair)
		w("### Transcoding %s (medians over repetitions)\n\n", PairLabel(pair))
		if len(pts) > 0 {
			w("| relay | calls | offered pps | delivered pps | loss %% | of which concealed %% | latency p50 / p99 / p99.9 µs | relay CPU %% | **CPU ns / packet** | failed content checks | generator CPU %% |\n")
			w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, p := range pts {
				delivered := PPS(p.DeliveredPPS)
				if p.GenBound {
					delivered = fmt.Sprintf("(generator-bound %d/%d)", p.GenBoundReps, p.Reps)
				}
				w("| %s | %d | %s | %s | %s | %s | %s / %s / %s | %s | **%s** | %d | %s |\n",
					p.Relay, p.Calls, PPS(p.OfferedPPS), delivered, pct(p.LossPct), pct(p.ConcealedPct), f0(p.LatP50Us), f0(p.LatP99Us), f0(p.LatP999Us),
					f0(p.RelayCPUPct), f0(p.NsPerPacket), p.TCChecksFailed, f0(p.GenCPUPct))
			}
			w("\n")
		}
		var rs []RampSummary
		for _, x := range c.TranscodeRamps {
			if x.Transcode == pair {
				rs = append(rs, x)
			}
		}
		if len(rs) > 0 {
			w("| relay | most calls at < %.1f %% loss | per core | delivered pps | stopped by | recovers after overload |\n|---|---:|---:|---:|---|---|\n", c.LossTargetPct)
			for _, x := range rs {
				rec := x.Recovery
				if rec == "" {
					rec = "–"
				}
				w("| %s | %s | %s | %s | %s | %s |\n", x.Relay, f0(x.MaxCalls), f0(c.perCore(x.MaxCalls)), PPS(x.MaxPPS), boundText(x.Bound), rec)
			}
			w("\n")
		}
	}
	if len(r.Unsupported) > 0 {
		w("Not transcoded:\n\n")
		seen := map[string]bool{}
		for _, u := range r.Unsupported {
			k := u.Relay + "\x00" + u.Transcode
			if seen[k] {
				continue
			}
			seen[k] = true
			w("- %s, %s: %s\n", u.Relay, PairLabel(u.Transcode), u.Reason)
		}
		w("\n")
	}
	w("Each call's caller offers one codec only (Opus `opus/48000/2` or G.722, 20 ms) and the proxy asks for `codec: {transcode: [PCMU], mask: [<caller's codec>]}`; " +
		"the callee answers PCMU only, so the relay must decode and re-encode both ways. The caller sends real frames of a 1 kHz tone, the callee of a 600 Hz one, " +
		"encoded once with relayd's codecs (Opus as a browser sends it: 48 kHz, 32 kbit/s). " +
		"The relays rewrite SSRC, sequence numbers, timestamps and payload, so the far end ties each packet to the one it was made from by its RTP timestamp " +
		"(a relay advances them with the sender's, rescaled) and counts loss, duplicates and one-way latency (send syscall to the kernel's receive timestamp, through both codecs) " +
		"exactly as for plain calls. A packet a relay lost before its decoder and concealed reaches the far end as a packet of the relay's own making: " +
		"such packets are counted from the relay's own figures (the ng query of every call around each window: relayd's `concealed`; rtpengine reports none and passes a lost packet on as a gap) " +
		"and included in the loss as *of which concealed*. " +
		"A few runs of consecutive packets per stream are decoded at both ends (the callee's PCMU, the caller's Opus or G.722) and must carry the other party's tone; " +
		"a packet in a payload type the relay did not announce (a codec passed through) is not counted as received. *CPU ns / packet* is the relay's CPU time over the packets delivered.\n\n")
	return b.String()
}

func joinInts(v []int) string {
	if len(v) == 0 {
		return "–"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}
