// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/test/testenv"
)

const (
	restartCalls = 5
	// restartGap is how long relayd stays down: long enough that an ng
	// request sent right after the stop is certainly sent to nobody.
	restartGap = 300 * time.Millisecond
)

// TestKamailioRestart places calls through Kamailio that play g711a.pcap both
// ways while relayd, started with a state-dir and its fast path pinned on a
// bpffs that outlives it, is stopped with SIGTERM and started again with the
// same command line. The new relayd lists the same calls, every packet of
// every call still arrives at the far ends (the kernel forwarded them while no
// relayd ran), and the calls end normally: each BYE's delete from Kamailio
// reaches the new relayd, which knows the call and writes its CDR. An ng offer
// sent while relayd was down is answered once it is up (the client
// retransmits with the same cookie, as a proxy does).
func TestKamailioRestart(t *testing.T) {
	requireEnvironment(t, true)
	if relayUnderTest(t) != relayRelayd {
		t.Skip("calls handed over across a restart are relayd's (state-dir); the incumbent's equivalent is Redis")
	}
	forEachVariant(t, testRestart)
}

func testRestart(t *testing.T, v variant) {
	dir := testenv.ArtifactDir(t, "E2E_ARTIFACTS")
	tp := newTopology(t, v)
	// The pins must outlive relayd: on a bpffs mounted here, in the test's
	// mount namespace, not in the private /sys `ip netns exec` gives
	// relayd. Unmounted after relayd's cleanup (cleanups run last-in
	// first-out), which detaches the program the last relayd left.
	bpffs := filepath.Join(dir, "bpffs")
	if err := os.MkdirAll(bpffs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		testenv.Unavailable(t, "mount bpffs on %s: %v", bpffs, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(bpffs, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", bpffs, err)
		}
	})
	extra := []string{"--state-dir=" + filepath.Join(dir, "state"), "--xdp-pin-path=" + filepath.Join(bpffs, "relayd")}
	r1 := startRelayAs(t, tp, v, dir, "relayd-1", extra)
	kam := startKamailio(t, tp, v, dir)

	callerCap := startCapture(t, tp.caller, dir, "caller")
	calleeCap := startCapture(t, tp.callee, dir, "callee")
	params := sippParams{CalleeAddr: v.calleeAddr, CalleePort: sipPort, Pcap: g711aPcap, HoldMS: mediaHoldMS}
	uas := startSippUAS(t, tp, dir, params, restartCalls)
	uac := startSippUAC(t, tp, dir, params, restartCalls)

	// Every call up, both its RTP streams latched and in the kernel.
	var before []string
	waitUntil(t, 10*time.Second, "the calls' streams to be forwarded in the kernel", func() (bool, error) {
		calls, err := r1.list()
		if err != nil || len(calls) != restartCalls {
			return false, nil
		}
		before = calls
		stats, err := r1.statistics()
		if err != nil {
			return false, nil
		}
		return mediaKernel(stats) >= 2*restartCalls, nil
	})
	time.Sleep(time.Second) // into the middle of the plays

	stopping := time.Now()
	r1.proc.Stop(t, syscall.SIGTERM)
	if err := r1.proc.Err(); err != nil {
		t.Errorf("relayd stopped with %v", err)
	}
	t.Logf("relayd handed its calls over and exited %v after SIGTERM", time.Since(stopping).Round(time.Millisecond))
	// An offer while no relayd runs, from a client that retries the way
	// Kamailio's rtpengine module does (same cookie).
	gap := make(chan gapOffer, 1)
	go func() { gap <- offerDuringGap(tp) }()
	time.Sleep(restartGap)
	r2 := startRelayAs(t, tp, v, dir, "relayd-2", extra)

	after, err := r2.list()
	if err != nil {
		t.Fatalf("list after the restart: %v", err)
	}
	slices.Sort(before)
	slices.Sort(after)
	if !slices.Equal(after, before) {
		t.Errorf("after the restart relayd lists %q, want the calls it had %q", after, before)
	}
	g := <-gap
	switch {
	case g.err != nil:
		t.Errorf("offer sent while relayd was down: %v", g.err)
	case g.took < restartGap/2:
		t.Errorf("offer answered after %v: it did not wait for the restart", g.took)
	default:
		t.Logf("offer sent while relayd was down answered after %v", g.took.Round(time.Millisecond))
	}

	uac.wait(t, 45*time.Second)
	uas.wait(t, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	callerCap.interrupt()
	calleeCap.interrupt()
	// Every packet of every call, in both directions, through the relay's
	// advertised ports: none lost across the restart.
	checkRelayedMedia(t, v, uac, uas, callerCap.packets(t), calleeCap.packets(t), restartCalls)

	// Kamailio's deletes reached the new relayd and it knew every call.
	requireNoCalls(t, r2)
	logs, err := os.ReadFile(r2.proc.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range before {
		cdr := regexp.MustCompile(`msg=CDR .*call-id=` + regexp.QuoteMeta(id) + ` reason=deleted`)
		if !cdr.Match(logs) {
			t.Errorf("relayd-2 wrote no CDR with reason=deleted for call %s", id)
		}
	}
	if !strings.Contains(string(logs), "calls restored") {
		t.Errorf("relayd-2 did not log the restore")
	}
	if klog, err := os.ReadFile(kam.LogPath); err == nil && strings.Contains(string(klog), "rtpengine_delete() failed") {
		t.Errorf("Kamailio could not delete a call on the new relayd (see kamailio.log)")
	}
}

type gapOffer struct {
	took time.Duration
	err  error
}

// offerDuringGap offers a call to the relay's ng address from inside its
// namespace, with tries spanning two seconds, and deletes it once answered.
func offerDuringGap(tp *topology) gapOffer {
	var c *ngproto.Client
	err := DoInNetns(testenv.NSPath(tp.relay), func() error {
		var err error
		c, err = ngproto.Dial(fmt.Sprintf("127.0.0.1:%d", ngPort))
		return err
	})
	if err != nil {
		return gapOffer{err: err}
	}
	defer c.Close()
	c.Timeout, c.Tries = 250*time.Millisecond, 8
	ctx := context.Background()
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\n", callerAddr, callerAddr)
	start := time.Now()
	reply, err := c.Do(ctx, map[string]any{"command": "offer", "call-id": "offered-while-down", "from-tag": "gap", "sdp": sdp})
	took := time.Since(start)
	if err != nil {
		return gapOffer{took: took, err: err}
	}
	if reply["result"] != "ok" || !strings.Contains(fmt.Sprint(reply["sdp"]), "c=IN IP4 "+relayExtAddr) {
		return gapOffer{took: took, err: fmt.Errorf("reply %v: want result ok and an SDP with the relay's %s", reply, relayExtAddr)}
	}
	if _, err := c.Do(ctx, map[string]any{"command": "delete", "call-id": "offered-while-down", "from-tag": "gap", "delete delay": 0}); err != nil {
		return gapOffer{took: took, err: fmt.Errorf("delete: %w", err)}
	}
	return gapOffer{took: took}
}

// mediaKernel is statistics' current count of sockets forwarded in the
// kernel.
func mediaKernel(stats map[string]any) int64 {
	st, _ := stats["statistics"].(map[string]any)
	cur, _ := st["currentstatistics"].(map[string]any)
	n, _ := intValue(cur["media_kernel"])
	return n
}
