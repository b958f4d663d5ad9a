// SPDX-License-Identifier: Apache-2.0

package ha

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// maxGap is the bound: media of every call resumes through the
// standby within a second of the active relay's death.
const maxGap = time.Second

// plainCalls is how many plain RTP calls run beside the WebRTC one.
const plainCalls = 4

// TestFailover kills the active relay with SIGKILL while calls carry media
// both ways — plain RTP, and a browser's DTLS-SRTP leg bridged to an SDES
// phone — and requires media of every stream to resume through the standby
// within a second, with the browser's DTLS session kept (no new handshake,
// the peer connection never leaves "connected"), every call now the
// standby's own and written to Redis under its name.
//
// Two ways to die: "relayd-killed" kills relayd alone and the node's
// service manager tells keepalived at once (the packaged systemd drop-in's
// ExecStopPost runs relayd-vrrp-track down; here the test does what systemd
// does); "node-killed" kills relayd and keepalived together and takes the
// node off the segment, as a crashed machine, and the standby notices the
// missing VRRP adverts.
func TestFailover(t *testing.T) {
	for _, how := range []string{"relayd-killed", "node-killed"} {
		t.Run(how, func(t *testing.T) { failover(t, how) })
	}
}

func failover(t *testing.T, how string) {
	p := newPair(t)
	a, b := p.nodes[0], p.nodes[1]
	agent := p.startAgent(agentConfig{Plain: plainCalls, WebRTC: true})
	calls := plainCalls + 1
	eventually(t, "the standby holds every call foreign", 10*time.Second, func() bool {
		own, foreign := p.sessions(b)
		return own == 0 && foreign == calls
	})
	if keys, err := p.redisKeys(); err != nil || len(keys) != calls {
		t.Fatalf("Redis holds %q (%v), want %d calls", keys, err, calls)
	}
	time.Sleep(time.Second) // media before the kill

	killed := time.Now()
	switch how {
	case "relayd-killed":
		a.relayd.Stop(t, syscall.SIGKILL)
		// What systemd does once the main process is gone: ExecStopPost.
		testenv.Run(t, p.trackSh, "down", a.track)
	case "node-killed":
		a.relayd.Stop(t, syscall.SIGKILL)
		killPIDFile(a.kaPIDs + "-vrrp.pid")
		a.keepalived.Stop(t, syscall.SIGKILL)
		testenv.Run(t, "ip", "-n", a.ns, "link", "set", ifName, "down")
	}
	moved := p.waitVIP(b, 5*time.Second)
	t.Logf("floating address on the standby %v after the kill", moved.Sub(killed).Round(time.Millisecond))
	eventually(t, "every call the standby's own", 10*time.Second, func() bool {
		own, foreign := p.sessions(b)
		return own == calls && foreign == 0
	})
	eventually(t, "every record written by the standby", 10*time.Second, func() bool {
		keys, err := p.redisKeys()
		if err != nil || len(keys) != calls {
			return false
		}
		for _, k := range keys {
			if p.redisNode(k) != "relay-b" {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // media after the takeover
	res := agent.finish(t)

	if len(res.Errors) > 0 {
		t.Errorf("agent: %q", res.Errors)
	}
	var gaps []time.Duration
	for _, s := range res.Streams {
		gaps = append(gaps, s.MaxGap)
		t.Logf("%-28s received %4d, longest gap %6v (ended %v after the kill), %d undecryptable",
			s.Name, s.Received, s.MaxGap.Round(time.Millisecond), s.MaxGapEnd.Sub(killed).Round(time.Millisecond), s.Errors)
		if s.MaxGap >= maxGap {
			t.Errorf("%s: media stopped for %v, want under %v", s.Name, s.MaxGap.Round(time.Millisecond), maxGap)
		}
		if d := killed.Sub(s.Last); d > 0 {
			t.Errorf("%s: nothing after the kill (last packet %v before it)", s.Name, d)
		}
	}
	if len(res.Streams) != 2*calls {
		t.Errorf("%d streams measured, want %d", len(res.Streams), 2*calls)
	}
	// The browser's DTLS session went on: it never left "connected".
	for _, s := range res.BrowserStates {
		if !strings.HasSuffix(s, "connecting") && !strings.HasSuffix(s, "connected") && !strings.HasSuffix(s, "closed") {
			t.Errorf("browser went %s", s)
		}
	}
	// The standby ran no DTLS handshake: it took the keys over.
	if res.DTLSHandshakes != 0 {
		t.Errorf("the standby counts %d DTLS handshakes for the WebRTC call, want 0", res.DTLSHandshakes)
	}
	slices.Sort(gaps)
	line := fmt.Sprintf("FAILOVER %s: %d streams, gap median %v max %v; floating address moved in %v",
		how, len(gaps), gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond),
		moved.Sub(killed).Round(time.Millisecond))
	t.Log(line)
	if f := os.Getenv("HA_FIGURES"); f != "" {
		appendLine(t, f, line)
	}
}

func appendLine(t *testing.T, path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
