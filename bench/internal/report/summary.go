// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Median returns the median of xs (mean of the middle two for an even
// count), NaN for none. NaN inputs are ignored.
func Median(xs []float64) float64 {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// PointSummary is the median over repetitions of one relay at one load.
type PointSummary struct {
	Relay        string  `json:"relay"`
	Calls        int     `json:"calls"`
	Reps         int     `json:"reps"`
	TargetPPS    float64 `json:"target_pps"`
	OfferedPPS   float64 `json:"offered_pps"`
	DeliveredPPS float64 `json:"delivered_pps"`
	LossPct      float64 `json:"loss_pct"`
	LatP50Us     float64 `json:"lat_p50_us"`
	LatP99Us     float64 `json:"lat_p99_us"`
	LatP999Us    float64 `json:"lat_p999_us"`
	JitterUs     float64 `json:"jitter_us"`
	Reordered    float64 `json:"reordered"`
	RelayCPUPct  float64 `json:"relay_cpu_pct"`
	NsPerPacket  float64 `json:"cpu_ns_per_packet"`
	ProgNsPerRun float64 `json:"xdp_prog_ns_per_run"`
	MemPerCallKB float64 `json:"mem_per_call_kib"`
	GenCPUPct    float64 `json:"gen_cpu_pct"`
	// GenBoundReps is how many repetitions the generator limited; the
	// summary is generator-bound when that is at least half.
	GenBoundReps int  `json:"generator_bound_reps"`
	GenBound     bool `json:"generator_bound"`
	// KernelRelayed is the median of the relay's kernel-forwarded packets
	// per window (statistics relayedpackets_kernel).
	KernelRelayed float64 `json:"kernel_relayed"`
	// SRTP mode: the suite, and the packets of SRTP legs that failed their
	// checks, summed over the repetitions.
	Suite      string `json:"srtp_suite,omitempty"`
	SRTPFailed uint64 `json:"srtp_failed,omitempty"`
	// Transcode mode: the pair; the median share of packets the relay
	// concealed (in LossPct); summed over the repetitions, packets in a
	// payload type not announced and decoded content checks that failed.
	Transcode      string  `json:"transcode,omitempty"`
	ConcealedPct   float64 `json:"concealed_pct,omitempty"`
	TCWrongPT      uint64  `json:"transcode_wrong_pt,omitempty"`
	TCChecksFailed uint64  `json:"transcode_checks_failed,omitempty"`
}

// SummarizePoints groups points by relay and load (in the order relays
// first appear, loads ascending) and takes medians.
func SummarizePoints(points []Point, relays []string) []PointSummary {
	type key struct {
		relay string
		calls int
	}
	groups := map[key][]Point{}
	for _, p := range points {
		k := key{p.Relay, p.Calls}
		groups[k] = append(groups[k], p)
	}
	var out []PointSummary
	for _, r := range relays {
		var loads []int
		for k := range groups {
			if k.relay == r {
				loads = append(loads, k.calls)
			}
		}
		slices.Sort(loads)
		for _, c := range loads {
			out = append(out, summarize(r, c, groups[key{r, c}]))
		}
	}
	return out
}

func summarize(relay string, calls int, ps []Point) PointSummary {
	med := func(f func(Point) float64) float64 {
		v := make([]float64, len(ps))
		for i, p := range ps {
			v[i] = f(p)
		}
		return Median(v)
	}
	s := PointSummary{Relay: relay, Calls: calls, Reps: len(ps)}
	s.TargetPPS = med(func(p Point) float64 { return p.TargetPPS })
	s.OfferedPPS = med(func(p Point) float64 { return p.OfferedPPS })
	s.DeliveredPPS = med(func(p Point) float64 { return p.DeliveredPPS })
	s.LossPct = med(func(p Point) float64 { return p.LossPct })
	s.LatP50Us = med(func(p Point) float64 { return p.LatP50Us })
	s.LatP99Us = med(func(p Point) float64 { return p.LatP99Us })
	s.LatP999Us = med(func(p Point) float64 { return p.LatP999Us })
	s.JitterUs = med(func(p Point) float64 { return p.JitterUs })
	s.Reordered = med(func(p Point) float64 { return float64(p.Reordered) })
	s.RelayCPUPct = med(func(p Point) float64 { return p.RelayCPUPct })
	s.NsPerPacket = med(func(p Point) float64 { return p.NsPerPacket })
	s.ProgNsPerRun = med(func(p Point) float64 { return p.ProgNsPerRun })
	s.MemPerCallKB = med(func(p Point) float64 { return p.MemPerCallKB })
	s.GenCPUPct = med(func(p Point) float64 { return p.GenCPUPct })
	s.KernelRelayed = med(func(p Point) float64 { return float64(p.KernelRelayed) })
	s.ConcealedPct = med(func(p Point) float64 { return p.ConcealedPct })
	for _, p := range ps {
		if p.GenBound {
			s.GenBoundReps++
		}
		s.SRTPFailed += p.SRTPFailed
		s.TCWrongPT += p.TCWrongPT
		s.TCChecksFailed += p.TCChecksFailed
	}
	s.GenBound = 2*s.GenBoundReps >= len(ps) && s.GenBoundReps > 0
	return s
}

// RampSummary is the median over repetitions of a relay's ramp.
type RampSummary struct {
	Relay string `json:"relay"`
	// Transcode is the pair of a ramp of transcoded calls.
	Transcode string  `json:"transcode,omitempty"`
	Reps      int     `json:"reps"`
	MaxCalls  float64 `json:"max_calls"`
	MaxPPS    float64 `json:"max_pps"`
	Bound     string  `json:"bound"` // the most common reason the ramp stopped
	// Recovery describes the recovery check after an overload: "yes",
	// "no (X% loss at N calls)" or "" when not run.
	Recovery string `json:"recovery,omitempty"`
}

// SummarizeRamps takes medians per relay of the ramps of plain calls.
func SummarizeRamps(ramps []Ramp, relays []string) []RampSummary {
	return summarizeRamps(ramps, relays, "")
}

// summarizeRamps takes medians per relay of the ramps of one kind of
// calls (a transcoding pair, "" for plain ones).
func summarizeRamps(ramps []Ramp, relays []string, pair string) []RampSummary {
	var out []RampSummary
	for _, r := range relays {
		var calls, pps []float64
		bounds := map[string]int{}
		recovery := ""
		for _, x := range ramps {
			if x.Relay != r || x.Transcode != pair {
				continue
			}
			calls = append(calls, float64(x.MaxCalls))
			pps = append(pps, x.MaxPPS)
			bounds[x.Bound]++
			if x.Recovered == nil && x.Recovery != nil {
				recovery = "undetermined (the generator stumbled during the check)"
			}
			if x.Recovered != nil && x.Recovery != nil {
				if *x.Recovered {
					recovery = fmt.Sprintf("yes (%.2f%% loss at %d calls)", x.Recovery.LossPct, x.Recovery.Calls)
				} else {
					recovery = fmt.Sprintf("**no**: %.1f%% loss at %d calls, %d of %d streams silent", x.Recovery.LossPct, x.Recovery.Calls, x.Recovery.DeadStreams, x.Recovery.Streams)
				}
			}
		}
		if len(calls) == 0 {
			continue
		}
		best, n := "", 0
		for _, b := range []string{"relay", "generator", "ceiling", "none"} {
			if bounds[b] > n {
				best, n = b, bounds[b]
			}
		}
		out = append(out, RampSummary{Relay: r, Transcode: pair, Reps: len(calls), MaxCalls: Median(calls), MaxPPS: Median(pps), Bound: best, Recovery: recovery})
	}
	return out
}

// ControlSummary is the median over repetitions of one control-plane run.
type ControlSummary struct {
	Relay        string  `json:"relay"`
	Name         string  `json:"name"`
	Reps         int     `json:"reps"`
	SetupsPerSec float64 `json:"setups_per_s"`
	OfferP50     float64 `json:"offer_p50_us"`
	OfferP99     float64 `json:"offer_p99_us"`
	AnswerP50    float64 `json:"answer_p50_us"`
	AnswerP99    float64 `json:"answer_p99_us"`
	DeleteP99    float64 `json:"delete_p99_us"`
	SetupP50     float64 `json:"setup_p50_us"`
	SetupP99     float64 `json:"setup_p99_us"`
	MaxLagMs     float64 `json:"max_lag_ms"`
	Errors       int64   `json:"errors"`
	// What one setup cost the relay, and how busy the relay and the bench
	// were: a relay well under 100 % was not what bounded the rate.
	RelayCPUPerSetupUs float64 `json:"relay_cpu_per_setup_us"`
	RelayBusyPct       float64 `json:"relay_busy_pct"`
	BenchBusyPct       float64 `json:"bench_busy_pct"`
}

// SummarizeControls takes medians per relay and run name, in first-seen
// order of the names.
func SummarizeControls(cs []Control, relays []string) []ControlSummary {
	var names []string
	for _, c := range cs {
		for _, r := range c.Results {
			if !slices.Contains(names, r.Name) {
				names = append(names, r.Name)
			}
		}
	}
	var out []ControlSummary
	for _, relay := range relays {
		for _, name := range names {
			var rs []float64
			var o50, o99, a50, a99, d99, s50, s99, lag, cpu, rbusy, bbusy []float64
			var errs int64
			for _, c := range cs {
				if c.Relay != relay {
					continue
				}
				for _, r := range c.Results {
					if r.Name != name {
						continue
					}
					rs = append(rs, r.SetupsPerSec)
					o50, o99 = append(o50, r.Offer.P50), append(o99, r.Offer.P99)
					a50, a99 = append(a50, r.Answer.P50), append(a99, r.Answer.P99)
					d99 = append(d99, r.Delete.P99)
					s50, s99 = append(s50, r.Setup.P50), append(s99, r.Setup.P99)
					lag = append(lag, r.MaxLagMs)
					if r.RelayCPUSec > 0 {
						cpu = append(cpu, r.RelayCPUPerSetupUs())
						rbusy, bbusy = append(rbusy, r.RelayBusyPct()), append(bbusy, r.BenchBusyPct())
					}
					errs += r.Errors
				}
			}
			if len(rs) == 0 {
				continue
			}
			out = append(out, ControlSummary{
				Relay: relay, Name: name, Reps: len(rs), SetupsPerSec: Median(rs),
				OfferP50: Median(o50), OfferP99: Median(o99), AnswerP50: Median(a50), AnswerP99: Median(a99),
				DeleteP99: Median(d99), SetupP50: Median(s50), SetupP99: Median(s99), MaxLagMs: Median(lag), Errors: errs,
				RelayCPUPerSetupUs: Median(cpu), RelayBusyPct: Median(rbusy), BenchBusyPct: Median(bbusy),
			})
		}
	}
	return out
}

// IsIncumbent says whether a relay name is the incumbent's.
func IsIncumbent(relay string) bool { return strings.HasPrefix(relay, "rtpengine") }
