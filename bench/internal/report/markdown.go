// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"strings"
)

// Summary is everything the tables show.
type Summary struct {
	Points   []PointSummary   `json:"points"`
	Ramps    []RampSummary    `json:"ramps,omitempty"`
	Controls []ControlSummary `json:"controls,omitempty"`
	Scaling  []ScalingSummary `json:"scaling,omitempty"`
	// SRTP are the srtp mode's loads, per suite, relay and load.
	SRTP []PointSummary `json:"srtp,omitempty"`
	// Transcode are the transcode mode's fixed loads, per pair, relay and
	// load, and TranscodeRamps its ramps, per pair and relay.
	Transcode      []PointSummary   `json:"transcode,omitempty"`
	TranscodeRamps []RampSummary    `json:"transcode_ramps,omitempty"`
	Targets        []Target         `json:"targets,omitempty"`
	Restarts       []RestartSummary `json:"restarts,omitempty"`
}

// Summarize computes the medians and judges the targets.
func Summarize(r *Run) Summary {
	var fixed []Point
	for _, p := range r.Points {
		// Ramp probes and soak windows sit at loads of their own; the
		// tables and plots compare the fixed loads every relay ran.
		if p.Mode == "fixed" || p.Mode == "" {
			fixed = append(fixed, p)
		}
	}
	s := Summary{
		Points:   SummarizePoints(fixed, r.Relays),
		Ramps:    SummarizeRamps(r.Ramps, r.Relays),
		Controls: SummarizeControls(r.Controls, r.Relays),
		Scaling:  SummarizeScaling(r.Scaling, r.Relays),
		SRTP:     SummarizeSRTP(r.Points, r.Relays),
		Restarts: SummarizeRestarts(r.Restarts, r.Relays),
	}
	s.Transcode, s.TranscodeRamps = SummarizeTranscode(r.Points, r.Ramps, r.Relays)
	if !restartOnly(r) { // the restart mode has its own checks
		s.Targets = s.comparison(r).Targets()
	}
	return s
}

func (s Summary) comparison(r *Run) Comparison {
	return Comparison{Points: s.Points, Ramps: s.Ramps, Controls: s.Controls, Scaling: s.Scaling, SRTP: s.SRTP,
		Transcode: s.Transcode, TranscodeRamps: s.TranscodeRamps, RelayCPUs: len(r.Setup.RelayCPUs),
		Relays: r.Relays, LossTargetPct: r.Setup.LossTargetPct}
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func f1(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v != 0 && v < 0.01 {
		return fmt.Sprintf("%.4f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Markdown renders the run: machine, command, targets, tables, checks,
// profiles and warnings.
func Markdown(r *Run, s Summary, plots []string) string {
	return markdown(r, s, plots, false)
}

// markdown renders the run; markSRTP puts the srtp mode's tables between
// the SRTP markers (BENCHMARKS.md), so a later run of that mode alone can
// replace them without touching the rest.
func markdown(r *Run, s Summary, plots []string, markSRTP bool) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := r.Machine
	w("Measured %s with:\n\n```\n%s\n```\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Command)
	w("| machine | |\n|---|---|\n")
	w("| CPU | %s, `nproc` = %d%s |\n", m.CPUModel, m.NumCPU, map[bool]string{true: " (virtual machine)"}[m.Hypervisor])
	w("| kernel | %s |\n| memory | %d MiB |\n| Go | %s |\n", m.Kernel, m.MemTotalMB, m.GoVersion)
	for _, name := range r.Relays {
		w("| %s | %s `%s` |\n", name, m.Versions[name], r.RelayArgs[name])
	}
	st := r.Setup
	w("| topology | %s; relay on CPU %v, generator on CPU %v |\n", st.Topology, st.RelayCPUs, st.GenCPUs)
	w("| media | %.0f packets/s per stream, %d-byte payloads, 2 streams per call; %gs windows after %gs warm-up; %d repetition(s), relays alternating |\n",
		st.PPSPerStream, st.PayloadBytes, st.WindowSec, st.WarmupSec, st.Reps)
	w("| run time | %.0f s |\n\n", r.DurationSec)
	for _, n := range st.TopologyNotes {
		w("- %s\n", n)
	}
	if len(st.TopologyNotes) > 0 {
		w("\n")
	}

	if len(s.Targets) > 0 {
		w("### Targets\n\n| target | goal | measured | status |\n|---|---|---|---|\n")
		for _, t := range s.Targets {
			w("| %s | %s | %s | **%s** |\n", t.Name, t.Goal, t.Measured, t.Status)
		}
		w("\n")
	}

	if len(s.Points) > 0 {
		w("### Fixed loads (medians over repetitions)\n\n")
		w("| relay | calls | offered pps | delivered pps | loss %% | latency p50 / p99 / p99.9 µs | jitter µs | reordered | relay CPU %% | **CPU ns / packet** | memory / call KiB | generator CPU %% |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, p := range s.Points {
			delivered := PPS(p.DeliveredPPS)
			if p.GenBound {
				delivered = fmt.Sprintf("(generator-bound %d/%d)", p.GenBoundReps, p.Reps)
			}
			w("| %s | %d | %s | %s | %s | %s / %s / %s | %s | %s | %s | **%s** | %s | %s |\n",
				p.Relay, p.Calls, PPS(p.OfferedPPS), delivered, pct(p.LossPct), f0(p.LatP50Us), f0(p.LatP99Us), f0(p.LatP999Us),
				f1(p.JitterUs), f0(p.Reordered), f0(p.RelayCPUPct), f0(p.NsPerPacket), f1(p.MemPerCallKB), f0(p.GenCPUPct))
		}
		w("\n")
		w("CPU ns / packet is the relay's CPU time (the process and all softirq work on its CPU: receiving, forwarding, sending) divided by the packets delivered through it — the primary figure, because on a small machine the generator saturates before a fast relay does.\n\n")
	}

	if len(s.Ramps) > 0 {
		w("### Highest load with loss under %.1f %%\n\n| relay | calls | delivered pps | stopped by | recovers after overload (same process, half the load) |\n|---|---:|---:|---|---|\n", r.Setup.LossTargetPct)
		for _, rs := range s.Ramps {
			rec := rs.Recovery
			if rec == "" {
				rec = "–"
			}
			w("| %s | %s | %s | %s | %s |\n", rs.Relay, f0(rs.MaxCalls), PPS(rs.MaxPPS), boundText(rs.Bound), rec)
		}
		w("\n")
	}

	if len(s.Controls) > 0 {
		w("### Control plane (offer + answer + delete cycles, no media)\n\n")
		w("| relay | run | setups/s | offer p50 / p99 µs | answer p50 / p99 µs | delete p99 µs | offer+answer p50 / p99 µs | errors | relay CPU µs / setup | relay CPU %% | bench CPU %% |\n")
		w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range s.Controls {
			w("| %s | %s | %s | %s / %s | %s / %s | %s | %s / %s | %d | %s | %s | %s |\n", c.Relay, c.Name, f0(c.SetupsPerSec),
				f0(c.OfferP50), f0(c.OfferP99), f0(c.AnswerP50), f0(c.AnswerP99), f0(c.DeleteP99), f0(c.SetupP50), f0(c.SetupP99), c.Errors,
				f0(c.RelayCPUPerSetupUs), f0(c.RelayBusyPct), f0(c.BenchBusyPct))
		}
		w("\nRelay CPU is the relay process's user and system time over the run (all its threads; softirq work the kernel charges to it included), per completed offer+answer+delete; bench CPU is the load generator's, on its own CPU. A relay well under 100 %% did not bound the rate: the generator or the round trip did. The ceiling's rows are an ng responder that does no relay work (`bench/internal/ngceiling`: it answers offer and answer with the offered SDP and delete with ok, on one blocking thread pinned to the relay's CPUs): the most any relay could reach on this rig.\n\n")
	}

	if t := fastPathTable(s.comparison(r)); t != "" {
		w("### Fast path against the ceiling and the incumbent (CPU per relayed packet, medians)\n\n%s\n", t)
		w("The ceiling is the bare rewrite-and-bounce XDP program (`bpf.Ceiling`: the same per-packet rewrite, no rule lookup, `XDP_TX` back to the sender) attached to the relay's interfaces in the same XDP mode while relayd only allocates ports; what it costs on the relay's CPU is the floor for any XDP forwarding on this rig. XDP program ns/run is the kernel's BPF run-time accounting of the program alone (on for the whole run, for every relay alike); the rest of the CPU per packet is the kernel's receive and transmit work around it.\n\n")
	}

	if len(s.Scaling) > 0 {
		w("### Fast path with more streams installed (medians)\n\n")
		w("| relay | rules installed | of which fillers | filler install ms | calls | delivered pps | loss %% | latency p99 µs | relay CPU %% | **CPU ns / packet** | vs smallest table |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		base := map[string]float64{}
		for _, x := range s.Scaling {
			if _, ok := base[x.Relay]; !ok {
				base[x.Relay] = x.NsPerPacket
			}
			w("| %s | %d | %d | %s | %d | %s | %s | %s | %s | **%s** | %s |\n", x.Relay, x.Installed, x.Fillers, f1(x.InstallMs), x.Calls,
				PPS(x.DeliveredPPS), pct(x.LossPct), f0(x.LatP99Us), f0(x.RelayCPUPct), f0(x.NsPerPacket), ratio(x.NsPerPacket, base[x.Relay]))
		}
		w("\n")
		w("Fillers are rules for local addresses in 198.18.0.0/15, on no interface: no packet matches them, but every lookup of the calls' streams searches a table that big. They are installed in one batch into the running relayd's pinned rule map and removed after the window.\n\n")
	}

	if len(s.Points) > 0 {
		if t := ratioTable(r.Relays, s.Points); t != "" {
			w("### Ratios (incumbent ÷ relayd; above 1 favours relayd)\n\n%s\n", t)
		}
	}

	if t := srtpSection(r, s); t != "" {
		if markSRTP {
			t = SRTPBeginMarker + "\n" + t + SRTPEndMarker + "\n\n"
		}
		w("%s", t)
	}
	w("%s", restartSection(r, s))

	if t := transcodeSection(r, s); t != "" {
		if markSRTP {
			t = TranscodeBeginMarker + "\n" + t + TranscodeEndMarker + "\n\n"
		}
		w("%s", t)
	}

	for _, so := range r.Soaks {
		w("### Soak: %s (rep %d)\n\n", so.Relay, so.Rep)
		w("%d calls kept up for %.0f s with %.1f calls/s replaced: %d created, %d deleted, %d setup and %d delete errors, %d calls silent in a direction; loss %s %%, latency p99 %s µs; RSS %.1f → %.1f MiB (max %.1f); descriptors %d → %d; sessions left %d.\n\n",
			so.Calls, so.DurationSec, so.ChurnPerSec, so.Created, so.Deleted, so.SetupErrors, so.DeleteErrors, so.SilentCalls,
			pct(so.Media.LossPct), f0(so.Media.LatP99Us), mib(so.RSSStart), mib(so.RSSEnd), mib(so.RSSMax), so.FDsStart, so.FDsEnd, so.SessionsEnd)
	}

	if len(plots) > 0 {
		w("### Plots\n\n")
		for _, p := range plots {
			w("![%s](%s)\n", p, p)
		}
		w("\n")
	}

	for _, p := range r.Profiles {
		w("### Where %s's CPU goes: %s (`%s`)\n\n", p.Relay, p.What, p.Tool)
		if len(p.ByDSO) > 0 {
			w("By object:\n\n```\n%s\n```\n\n", strings.Join(p.ByDSO, "\n"))
		}
		w("Top symbols:\n\n```\n%s\n```\n\n", strings.Join(p.Top, "\n"))
		if len(p.Inclusive) > 0 {
			w("The relay's own functions, including what they call:\n\n```\n%s\n```\n\n", strings.Join(p.Inclusive, "\n"))
		}
	}

	if len(r.Checks) > 0 {
		bad := 0
		for _, c := range r.Checks {
			if !c.OK {
				bad++
			}
		}
		w("### Checks (%d of %d passed)\n\n", len(r.Checks)-bad, len(r.Checks))
		for _, c := range r.Checks {
			mark := "ok"
			if !c.OK {
				mark = "**FAILED**"
			}
			w("- %s rep %d, %s: %s — %s\n", c.Relay, c.Rep, c.Name, mark, c.Detail)
		}
		w("\n")
	}
	if len(r.Warnings) > 0 {
		w("### Warnings\n\n")
		for _, x := range r.Warnings {
			w("- %s\n", x)
		}
		w("\n")
	}
	return b.String()
}

// ratioTable compares every non-incumbent relay with the incumbent at the
// loads both measured.
func ratioTable(relays []string, ps []PointSummary) string {
	inc := ""
	for _, r := range relays {
		if IsIncumbent(r) {
			inc = r
			break
		}
	}
	if inc == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("| relay | calls | CPU ns/packet ratio | latency p99 ratio | memory/call ratio |\n|---|---:|---:|---:|---:|\n")
	rows := 0
	for _, r := range relays {
		if IsIncumbent(r) || IsCeiling(r) {
			continue
		}
		for _, p := range ps {
			if p.Relay != r {
				continue
			}
			for _, q := range ps {
				if q.Relay == inc && q.Calls == p.Calls {
					fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", r, p.Calls, ratio(q.NsPerPacket, p.NsPerPacket),
						ratio(q.LatP99Us, p.LatP99Us), ratio(q.MemPerCallKB, p.MemPerCallKB))
					rows++
				}
			}
		}
	}
	if rows == 0 {
		return ""
	}
	return b.String()
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 || a <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
