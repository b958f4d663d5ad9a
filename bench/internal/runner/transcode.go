// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
)

// ModeTranscodeRamp names the points of a transcoded ramp's probes.
const ModeTranscodeRamp = "transcode-ramp"

// tcMedia is one transcoding pair with the frames its parties send,
// encoded once per run.
type tcMedia struct {
	pair           audio.Pair
	caller, callee *audio.Frames
}

// prepareTranscode encodes each pair's frames. A pair this build of the
// bench cannot send (Opus without cgo and libopus) is left out, said once.
func (e *env) prepareTranscode() {
	for _, name := range e.cfg.TranscodePairs {
		p, err := audio.Lookup(name)
		if err == nil {
			err = p.Available()
		}
		var m *tcMedia
		if err == nil {
			m = &tcMedia{pair: p}
			if m.caller, err = audio.Encode(p.Caller, audio.CallerTone); err == nil {
				m.callee, err = audio.Encode(p.Callee, audio.CalleeTone)
			}
		}
		if err != nil {
			e.warn("transcode mode: %s left out: %v (the bench needs cgo and -tags nolibopusfile for Opus, as `make bench` builds it)", name, err)
			continue
		}
		e.tc = append(e.tc, m)
	}
}

// transcodeName is the pair of the session's calls, "" when they are not
// transcoded.
func (s *session) transcodeName() string {
	if s.pair == nil {
		return ""
	}
	return s.pair.pair.Name
}

// transcodeLoads measures every pair: its fixed loads, a profile at the
// highest of them, and the ramp to the most calls under the loss target.
// A relay that will not transcode a pair is recorded as such and the next
// pair goes on.
func (s *session) transcodeLoads(ctx context.Context) error {
	cfg := s.e.cfg
	loads := slices.Clone(cfg.TranscodeCalls)
	slices.Sort(loads)
	for _, m := range s.e.tc {
		if err := s.useKind(ctx, "", m); err != nil {
			return err
		}
		t0 := s.e.gen.TranscodeTotals()
		var fixed []report.Point
		refused := false
		for _, n := range loads {
			if err := s.ensureCalls(ctx, n); err != nil {
				if fatal(ctx, err) {
					return err
				}
				if errors.Is(err, calls.ErrNotTranscoded) {
					s.unsupported(m, err)
					refused = true
					break
				}
				s.e.warn("%s rep %d: %s loads stop at %d calls: %v", s.spec.Name, s.rep, m.pair.Label, n, err)
				s.e.run.Checks = append(s.e.run.Checks, report.Check{Relay: s.spec.Name, Rep: s.rep,
					Name: fmt.Sprintf("set up %d transcoded calls (%s)", n, m.pair.Label), OK: false, Detail: err.Error()})
				break
			}
			p, err := s.measure(ctx, ModeTranscode)
			if err != nil {
				return err
			}
			fixed = append(fixed, p)
			s.e.run.Points = append(s.e.run.Points, p)
		}
		if refused {
			continue
		}
		if cfg.Profile && s.rep == 1 && len(fixed) > 0 {
			if err := s.profile(ctx, fixed[len(fixed)-1].Calls); err != nil {
				s.e.warn("%s: %s profile: %v", s.spec.Name, m.pair.Label, err)
			}
		}
		if cfg.TranscodeRamp && len(fixed) > 0 {
			r, err := s.ramp(ctx, fixed, ModeTranscodeRamp, loads[0])
			s.e.run.Ramps = append(s.e.run.Ramps, r)
			if err != nil {
				return err
			}
		}
		// Every call gone and its packets in: the far ends' figures of
		// this pair are complete.
		if err := s.useKind(ctx, "", nil); err != nil {
			return err
		}
		s.transcodeChecks(m, s.e.gen.TranscodeTotals().Sub(t0))
	}
	return s.useKind(ctx, "", nil)
}

// unsupported records a pair the relay would not transcode. relayd built
// without libopus must refuse Opus so (with a warning naming the codec);
// any other refusal is a failure.
func (s *session) unsupported(m *tcMedia, err error) {
	// From "N of M call setups failed on R, first: offer reply of call
	// C: relay did not transcode: ..." keep what the relay did.
	reason := err.Error()
	if i := strings.Index(reason, calls.ErrNotTranscoded.Error()); i >= 0 {
		reason = reason[i:]
	}
	s.e.run.Unsupported = append(s.e.run.Unsupported, report.Unsupported{Relay: s.spec.Name, Transcode: m.pair.Name, Reason: reason})
	b := s.e.relaydBuild
	expected := s.spec.Kind == relay.Relayd && b.Known && !b.Opus && needsOpus(m.pair)
	name := fmt.Sprintf("transcode %s: set up", m.pair.Label)
	if expected {
		name = fmt.Sprintf("transcode %s: refused by a relayd built without libopus", m.pair.Label)
	}
	s.e.run.Checks = append(s.e.run.Checks, report.Check{Relay: s.spec.Name, Rep: s.rep, Name: name, OK: expected, Detail: reason})
	s.e.warn("%s rep %d: does not transcode %s: %s", s.spec.Name, s.rep, m.pair.Label, reason)
}

func needsOpus(p audio.Pair) bool { return p.Caller.Name == "opus" || p.Callee.Name == "opus" }

// queryLive sums what the relay says about the live calls' transcoding.
func (s *session) queryLive(ctx context.Context) (calls.Transcoding, error) {
	cs := make([]*calls.Call, len(s.live))
	for i, lc := range s.live {
		cs[i] = lc.c
	}
	return s.drv.QueryAll(ctx, cs, max(s.e.cfg.SetupConc, 1))
}

// transcodePoint adds a transcoded window's figures: the far ends' checks,
// and the packets the relay concealed, which count as lost (the far end got
// a packet for each, made up by the relay).
func (s *session) transcodePoint(p *report.Point, m *measurement, q1 calls.Transcoding) {
	p.Transcode = s.pair.pair.Name
	d := s.e.gen.TranscodeTotals().Sub(m.tc0)
	p.TCWrongPT, p.TCUnmatched = d.WrongPT, d.Unmatched
	p.TCChecksPassed, p.TCChecksFailed = d.Passed[0]+d.Passed[1], d.Failed[0]+d.Failed[1]
	if m.tcErr != nil {
		p.Concealed, p.ConcealedPct = -1, math.NaN()
		p.Warnings = append(p.Warnings, "the relay's concealment could not be read (query failed: "+m.tcErr.Error()+"): loss counts only what the far ends missed")
		return
	}
	p.TCReported = m.tcq0.Reported || q1.Reported
	p.Concealed = q1.Concealed - m.tcq0.Concealed
	p.QueueFull = q1.QueueFull - m.tcq0.QueueFull
	if p.Sent > 0 {
		lost := float64(p.Sent) - float64(p.Received) + float64(p.Concealed)
		p.LossPct = 100 * min(max(lost, 0)/float64(p.Sent), 1)
		p.ConcealedPct = 100 * float64(p.Concealed) / float64(p.Sent)
	}
	if d.WrongPT > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d packets arrived in a payload type the relay had not announced (not transcoded?)", d.WrongPT))
	}
	if p.TCChecksFailed > 0 {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%d decoded content checks failed: %s", p.TCChecksFailed, d.Failure))
	}
}

// transcodeChecks records what the far ends found of one pair's calls on
// this relay: media in the codec the relay announced to each party, each
// decoding to the other party's tone, and tied to what was sent.
func (s *session) transcodeChecks(m *tcMedia, d gen.TranscodeTotals) {
	if d.Matched+d.WrongPT+d.Unmatched == 0 {
		return
	}
	add := func(name string, ok bool, detail string) {
		s.e.run.Checks = append(s.e.run.Checks, report.Check{Relay: s.spec.Name, Rep: s.rep,
			Name: "transcode " + m.pair.Label + ": " + name, OK: ok, Detail: detail})
	}
	p := m.pair
	add("media in the codec announced to each party", d.WrongPT == 0 && d.Matched > 0,
		fmt.Sprintf("%d packets in %s to the callers and %s to the callees, %d in another payload type", d.Matched, p.Caller.Name, p.Callee.Name, d.WrongPT))
	judge := func(i int, what string) {
		detail := fmt.Sprintf("%d of %d decoded checks passed (%d consecutive packets each, dominant frequency within 30 Hz, level at least a quarter of the tone's)",
			d.Passed[i], d.Passed[i]+d.Failed[i], audio.CheckPackets)
		if d.Failed[i] > 0 {
			detail += "; latest failure: " + d.Failure
		}
		add(what, d.Failed[i] == 0 && d.Passed[i] > 0, detail)
	}
	judge(0, fmt.Sprintf("the callees hear the callers' %.0f Hz in %s", audio.CallerTone, p.Callee.Name))
	judge(1, fmt.Sprintf("the callers hear the callees' %.0f Hz in %s", audio.CalleeTone, p.Caller.Name))
	// A packet the relay made for one the generator never sent (it fell
	// >100 ms behind and skipped it, and the relay concealed the gap) is
	// unmatched too: a trace of them is no fault.
	add("every packet tied to one sent", d.Unmatched <= d.Matched/1000,
		fmt.Sprintf("%d packets tied to the one they were made from by timestamp, %d not (%d SSRC changes, %d ties moved back)", d.Matched, d.Unmatched, d.SSRCChanges, d.Retied))
}
