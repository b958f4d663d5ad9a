// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// Short and distinct, so each call can only end by its own timeout: the
// timer runs once per second, hence the one-second slack in the windows
// below. final-timeout is the longest because it applies to every call.
const (
	tmoTimeout = 3 * time.Second
	tmoOffer   = 4 * time.Second
	tmoSilent  = 5 * time.Second
	tmoFinal   = 9 * time.Second
	// tmoEarly and tmoLate bound when a call may disappear around its
	// deadline: the relay checks once per second, and list is polled.
	tmoEarly = 300 * time.Millisecond
	tmoLate  = 2 * time.Second
)

// timedCall is one call expected to end by itself.
type timedCall struct {
	name     string
	id       string
	reason   string        // expected end reason, as logged
	stat     string        // totalstatistics counter it increments
	from     time.Time     // what the deadline counts from
	after    time.Duration // deadline after from
	gone     time.Time
	streamed []*streamer // media to stop when the call is gone
}

// 7: timeouts. One relayd with short distinct values runs four calls at
// once: one whose media stops (timeout), one never answered
// (offer-timeout), one on hold without media (silent-timeout, not timeout)
// and one with media flowing until the end (final-timeout).
func TestMediaTimeouts(t *testing.T) {
	requireEnvironment(t)
	t.Parallel()
	dir := testenv.ArtifactDir(t, "MEDIA_ARTIFACTS")
	tp := newTopology(t)
	r := startRelayd(t, tp, dir,
		fmt.Sprintf("--timeout=%d", int(tmoTimeout.Seconds())),
		fmt.Sprintf("--offer-timeout=%d", int(tmoOffer.Seconds())),
		fmt.Sprintf("--silent-timeout=%d", int(tmoSilent.Seconds())),
		fmt.Sprintf("--final-timeout=%d", int(tmoFinal.Seconds())))
	const every = 20 * time.Millisecond

	// timeout: media both ways for a second, then silence.
	aT, bT := newParty(t, tp.a, "a (timeout call)", partyA4), newParty(t, tp.b, "b (timeout call)", partyB4)
	cT := setupCall(t, r, aT, bT, callOptions{callIDPrefix: "tmoT"})
	faT, fbT := newFlow("timeout call a→b", false), newFlow("timeout call b→a", false)
	sT := []*streamer{
		startStreamer(faT, aT.rtp, ap(relayExt4, cT.toA.port), every),
		startStreamer(fbT, bT.rtp, ap(relayInt4, cT.toB.port), every),
	}
	mediaStart := time.Now()

	// final-timeout: media both ways until the call is gone.
	fCreated := time.Now()
	aF, bF := newParty(t, tp.a, "a (final call)", partyA4), newParty(t, tp.b, "b (final call)", partyB4)
	cF := setupCall(t, r, aF, bF, callOptions{callIDPrefix: "tmoF"})
	faF, fbF := newFlow("final call a→b", false), newFlow("final call b→a", false)
	sF := []*streamer{
		startStreamer(faF, aF.rtp, ap(relayExt4, cF.toA.port), every),
		startStreamer(fbF, bF.rtp, ap(relayInt4, cF.toB.port), every),
	}

	// offer-timeout: an offer nobody answers.
	aO := newParty(t, tp.a, "a (unanswered call)", partyA4)
	idO := newCallID(t, "tmoO")
	replySDP(t, "unanswered offer", r.must(t, offerReq(idO, "tag-a-unanswered", aO.spec(1), nil, nil)))
	offered := time.Now()

	// silent-timeout: answered, then both sides go inactive (hold) and send
	// nothing.
	aS, bS := newParty(t, tp.a, "a (held call)", partyA4), newParty(t, tp.b, "b (held call)", partyB4)
	cS := setupCall(t, r, aS, bS, callOptions{callIDPrefix: "tmoS"})
	hold := aS.spec(2)
	hold.addr, hold.dir = ip("0.0.0.0"), "inactive"
	replySDP(t, "hold offer", r.must(t, offerReq(cS.id, cS.aTag, hold, nil, nil)))
	bHold := bS.spec(2)
	bHold.dir = "inactive"
	replySDP(t, "hold answer", r.must(t, answerReq(cS.id, cS.aTag, cS.bTag, bHold, nil, nil)))
	held := time.Now()

	time.Sleep(time.Until(mediaStart.Add(time.Second)))
	for _, s := range sT {
		if _, err := s.halt(); err != nil {
			t.Error(err)
		}
	}
	mediaStopped := time.Now()

	calls := []*timedCall{
		{name: "media stopped", id: cT.id, reason: "timeout", stat: "timeoutsessions", from: mediaStopped, after: tmoTimeout},
		{name: "unanswered offer", id: idO, reason: "offer-timeout", stat: "offertimeoutsessions", from: offered, after: tmoOffer},
		{name: "on hold without media", id: cS.id, reason: "silent-timeout", stat: "silenttimeoutsessions", from: held, after: tmoSilent},
		{name: "live media", id: cF.id, reason: "final-timeout", stat: "finaltimeoutsessions", from: fCreated, after: tmoFinal, streamed: sF},
	}
	if ids := r.list(t); len(ids) != len(calls) {
		t.Errorf("relay lists %d calls %q right after setup, want %d", len(ids), ids, len(calls))
	}

	deadline := fCreated.Add(tmoFinal + tmoLate + time.Second)
	for time.Now().Before(deadline) {
		ids := r.list(t)
		now := time.Now()
		left := 0
		for _, c := range calls {
			if !c.gone.IsZero() {
				continue
			}
			if slices.Contains(ids, c.id) {
				left++
				continue
			}
			c.gone = now
			for _, s := range c.streamed {
				if _, err := s.halt(); err != nil {
					t.Error(err)
				}
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range sF {
		c.halt() // in case the final-timeout call never ended
	}

	for _, c := range calls {
		if c.gone.IsZero() {
			t.Errorf("call %s (%s) still listed %v after its start; want it ended by %s after %v",
				c.id, c.name, time.Since(c.from).Round(100*time.Millisecond), c.reason, c.after)
			continue
		}
		took := c.gone.Sub(c.from)
		t.Logf("call %s (%s) gone %v after its reference point (want %s at %v)", c.id, c.name, took.Round(10*time.Millisecond), c.reason, c.after)
		if took < c.after-tmoEarly || took > c.after+tmoLate {
			t.Errorf("call %s (%s) ended %v after its reference point, want %v (%s) within -%v/+%v",
				c.id, c.name, took.Round(10*time.Millisecond), c.after, c.reason, tmoEarly, tmoLate)
		}
	}

	stats := r.statistics(t)
	for _, c := range calls {
		if n := totalStatistic(t, stats, c.stat); n != 1 {
			t.Errorf("statistics totalstatistics.%s = %d, want 1 (the %q call)", c.stat, n, c.name)
		}
	}
	checkExpiryLog(t, readFile(r.proc.LogPath), calls)

	// The timeout and final-timeout calls are only what they claim if media
	// really flowed.
	for _, m := range []struct {
		what string
		e    *endpoint
		f    *flow
	}{
		{"timeout call: b", bT.rtp, faT},
		{"timeout call: a", aT.rtp, fbT},
		{"final-timeout call: b", bF.rtp, faF},
		{"final-timeout call: a", aF.rtp, fbF},
	} {
		pkts := m.e.collect(50 * time.Millisecond)
		n := 0
		var last time.Time
		for _, p := range pkts {
			if ssrc, _, _, ok := identify(p.data); ok && ssrc == m.f.ssrc {
				n++
				last = p.at
			}
		}
		switch {
		case n == 0:
			t.Errorf("%s received none of the other side's media: the call never had media through the relay", m.what)
		case m.f == faF || m.f == fbF:
			gone := calls[3].gone
			if !gone.IsZero() && gone.Sub(last) > 1500*time.Millisecond {
				t.Errorf("%s: last relayed packet %v before the call ended: media was not live until final-timeout", m.what, gone.Sub(last).Round(10*time.Millisecond))
			}
			t.Logf("%s received %d relayed packets", m.what, n)
		default:
			t.Logf("%s received %d relayed packets", m.what, n)
		}
	}
}

// checkExpiryLog requires one log line per timed-out call naming its call-id
// and its reason, and no line naming another expiry reason for it.
func checkExpiryLog(t *testing.T, log string, calls []*timedCall) {
	t.Helper()
	expiryReasons := []string{"timeout", "silent-timeout", "offer-timeout", "final-timeout"}
	reasonRE := map[string]*regexp.Regexp{}
	for _, r := range expiryReasons {
		reasonRE[r] = regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(r) + `($|[^\w-])`)
	}
	lines := strings.Split(log, "\n")
	for _, c := range calls {
		idRE := regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(c.id) + `($|[^\w-])`)
		var matching, wrong []string
		for _, l := range lines {
			if !idRE.MatchString(l) {
				continue
			}
			for _, r := range expiryReasons {
				if !reasonRE[r].MatchString(l) {
					continue
				}
				if r == c.reason {
					matching = append(matching, l)
				} else {
					wrong = append(wrong, l)
				}
			}
		}
		if len(matching) != 1 {
			t.Errorf("relayd log: %d lines name call %s with reason %q, want exactly 1: %q", len(matching), c.id, c.reason, matching)
		}
		if len(wrong) > 0 {
			t.Errorf("relayd log names call %s (%s) with another expiry reason: %q", c.id, c.name, wrong)
		}
	}
}
