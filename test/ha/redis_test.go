// SPDX-License-Identifier: Apache-2.0

package ha

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Redis load of the restart test: idle calls kept up, replaced at this
// rate, beside calls that carry media.
const (
	idleCalls  = 200
	churnRate  = 20 // calls replaced per second
	mediaCalls = 2
	outage     = 3 * time.Second
)

// TestRedisRestart kills redis-server with SIGKILL while calls are set up
// and deleted at 20 a second and others carry media, keeps the churn going
// through the outage, and restarts it empty (no persistence). No call may
// be lost or ended by it, signalling must not fail, media must not stop,
// and once Redis is back the active relay must have written every live call
// again (and no deleted one) and the standby hold exactly those as foreign.
func TestRedisRestart(t *testing.T) {
	p := newPair(t)
	a, b := p.nodes[0], p.nodes[1]
	agent := p.startAgent(agentConfig{Plain: mediaCalls, Idle: idleCalls, Churn: churnRate})
	eventually(t, "the standby holds the calls foreign", 15*time.Second, func() bool {
		own, _ := p.sessions(a)
		_, foreign := p.sessions(b)
		return own >= idleCalls && foreign >= idleCalls
	})

	p.redis.Kill()
	down := time.Now()
	time.Sleep(outage)
	p.redis.Start()
	t.Logf("Redis down for %v, restarted empty", time.Since(down).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // the churn goes on against the new server
	res := agent.finish(t)

	if len(res.Errors) > 0 || len(res.Failed) > 0 {
		t.Errorf("agent errors %q, failed requests %q", res.Errors, res.Failed)
	}
	for _, s := range res.Streams {
		t.Logf("%-20s received %4d, longest gap %v (ended %v after Redis was killed)", s.Name, s.Received,
			s.MaxGap.Round(time.Millisecond), s.MaxGapEnd.Sub(down).Round(time.Millisecond))
		if s.MaxGap >= maxGap {
			t.Errorf("%s: media stopped for %v", s.Name, s.MaxGap.Round(time.Millisecond))
		}
	}
	want := slices.Clone(res.Live)
	for i := range mediaCalls {
		want = append(want, fmt.Sprintf("plain-%d", i))
	}
	slices.Sort(want)
	var resynced time.Duration
	start := time.Now()
	eventually(t, "Redis holds every live call and nothing else", 20*time.Second, func() bool {
		keys, err := p.redisKeys()
		resynced = time.Since(start)
		return err == nil && slices.Equal(keys, want)
	})
	own := p.callIDs(a, "own")
	if !slices.Equal(own, want) {
		t.Errorf("the active relay has %d calls, the agent %d live: lost %q, extra %q",
			len(own), len(want), missing(want, own), missing(own, want))
	}
	eventually(t, "the standby holds exactly the live calls foreign", 20*time.Second, func() bool {
		return slices.Equal(p.callIDs(b, "foreign"), want)
	})
	totals, _ := p.ctl(a, "list totals")
	for _, re := range []string{`via TIMEOUT\s+:0`, `via SILENT_TIMEOUT\s+:0`, `forced terminated sessions\s+:0`} {
		if !regexp.MustCompile(re).MatchString(totals) {
			t.Errorf("the active relay's totals do not show %s:\n%s", re, totals)
		}
	}
	// The floating address stayed on a: a late VRRP advert (a stalled
	// machine) would have moved the calls, which this test is not about.
	if ka, _ := os.ReadFile(b.keepalived.LogPath); strings.Contains(string(ka), "Entering MASTER STATE") {
		t.Errorf("keepalived moved the floating address to b during the test (a late VRRP advert)")
	}
	log, _ := os.ReadFile(a.relayd.LogPath)
	for _, want := range []string{"call state store failing", "writing every call again"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the active relay's log does not say %q", want)
		}
	}
	line := fmt.Sprintf("REDIS RESTART: %d live calls, churn %d/s, outage %v: no call lost, %d failed requests; "+
		"Redis complete again %v after the agent stopped", len(want), churnRate, outage, len(res.Failed),
		resynced.Round(time.Millisecond))
	t.Log(line)
	if f := os.Getenv("HA_FIGURES"); f != "" {
		appendLine(t, f, line)
	}
}

var callIDRE = regexp.MustCompile(`(?m)^callid:\s+(\S+) \|`)

// callIDs lists the node's own or foreign calls.
func (p *pair) callIDs(n *relayNode, which string) []string {
	out, err := p.ctl(n, "list sessions "+which)
	if err != nil {
		return nil
	}
	var ids []string
	for _, m := range callIDRE.FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[1])
	}
	slices.Sort(ids)
	return ids
}

// missing lists what of want got lacks.
func missing(want, got []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, w)
		}
	}
	return out
}
