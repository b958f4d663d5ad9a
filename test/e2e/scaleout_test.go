// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// Scale-out: two relayd under one Kamailio rtpengine set. The first has the
// larger weight and room for two calls (max-sessions=2): once it is full it
// refuses new offers with the incumbent's "Parallel session limit reached",
// and Kamailio's rtpengine module retries them on the second relay, so
// every call is placed. (The "load limit" reply that clients announcing
// supports: [load limit] get instead is relayd's overload refusal; the error
// reason works with every Kamailio.)
const (
	scaleCalls    = 8
	scaleLimit    = 2
	scaleNG2      = 2226
	scalePortMid  = 30499
	scaleHoldMS   = 4000
	scaleWeight1  = 9
	scaleWeight2  = 1
	scaleLogLevel = 6
)

// README's Kamailio example for a set of relays, with this test's
// addresses: node 1 takes 9 of 10 new calls while it has room.
func scaleSock() string {
	return fmt.Sprintf("udp:127.0.0.1:%d=%d udp:127.0.0.1:%d=%d", ngPort, scaleWeight1, scaleNG2, scaleWeight2)
}

func TestKamailioScaleOut(t *testing.T) {
	requireEnvironment(t, false)
	if relayUnderTest(t) != relayRelayd {
		t.Skip("scale-out is tested with relayd nodes")
	}
	v := variants()[0]
	dir := testenv.ArtifactDir(t, "E2E_ARTIFACTS")
	tp := newTopology(t, v)
	bin := testenv.RelaydBinary(t, dir)
	start := func(name string, ngAt, portMin, portMax int, extra ...string) *relay {
		args := append([]string{bin, "--config-file=none", "--foreground", "--interface=" + relayExtAddr,
			fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngAt), fmt.Sprintf("--port-min=%d", portMin),
			fmt.Sprintf("--port-max=%d", portMax), "--delete-delay=0", "--xdp=off",
			fmt.Sprintf("--log-level=%d", scaleLogLevel)}, extra...)
		p := startProcess(t, tp.relay, name, filepath.Join(dir, name+".log"), args...)
		conn, err := ListenUDPInNetns(testenv.NSPath(tp.relay), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		ng := NewNGClient(conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ngAt}, 500*time.Millisecond, 3)
		t.Cleanup(func() { ng.Close() })
		waitUntil(t, 15*time.Second, name+" to answer an ng ping", func() (bool, error) {
			if p.Exited() {
				return false, fmt.Errorf("%s exited: %v", name, p.Err())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			return ng.Ping(ctx) == nil, nil
		})
		return &relay{kind: relayRelayd, proc: p, ng: ng}
	}
	node1 := start("relayd-1", ngPort, relayPortMin, scalePortMid, fmt.Sprintf("--max-sessions=%d", scaleLimit))
	node2 := start("relayd-2", scaleNG2, scalePortMid+1, relayPortMax)
	startKamailioWith(t, tp, v, dir, func(p *kamailioParams) { p.RTPEngineSock = scaleSock() })

	params := sippParams{CalleeAddr: v.calleeAddr, CalleePort: sipPort, HoldMS: scaleHoldMS}
	uas := startSippUAS(t, tp, dir, params, scaleCalls)
	w1 := watchCalls(node1.ng, 100*time.Millisecond)
	w2 := watchCalls(node2.ng, 100*time.Millisecond)
	uac := startSippUAC(t, tp, dir, params, scaleCalls)
	uac.wait(t, 45*time.Second) // exits non-zero if a call failed
	w1.stop()
	w2.stop()
	uas.wait(t, 5*time.Second)

	if w1.maxCalls != scaleLimit {
		t.Errorf("relay 1 held at most %d calls, want its limit %d", w1.maxCalls, scaleLimit)
	}
	if w2.maxCalls != scaleCalls-scaleLimit {
		t.Errorf("relay 2 held at most %d calls, want the %d relay 1 had no room for", w2.maxCalls, scaleCalls-scaleLimit)
	}
	st, err := node1.statistics()
	if err != nil {
		t.Fatal(err)
	}
	rejected := int64(-1)
	if stats, ok := st["statistics"].(map[string]any); ok {
		if tot, ok := stats["totalstatistics"].(map[string]any); ok {
			if n, err := intValue(tot["rejectedsessions"]); err == nil {
				rejected = n
			}
		}
	}
	if rejected < 1 {
		t.Errorf("relay 1 refused %d offers: Kamailio never tried it while full (statistics %v)", rejected, st)
	}
	t.Logf("%d calls: relay 1 held %d (refused %d offers over its limit), relay 2 held %d; all placed",
		scaleCalls, w1.maxCalls, rejected, w2.maxCalls)
	requireNoCalls(t, node1)
	requireNoCalls(t, node2)
}
