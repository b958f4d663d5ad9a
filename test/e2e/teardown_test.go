// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

const (
	// teardownTimeout is the relay's timeout in this test (seconds).
	teardownTimeout = 3
	// xmlrpcPort is Kamailio's XML-RPC listener in the relay namespace.
	xmlrpcPort = 5080
)

// TestKamailioTimeoutTeardown: a call whose media stops is ended by the
// relay after `timeout`, and the relay's teardown notice (b2b-url,
// xmlrpc-format=2: dlg.terminate_dlg to Kamailio's xmlrpc module) makes
// Kamailio send BYE to both ends, within timeout + 2 s of the last packet.
// Both sides play g711a.pcap (7 s) after the call is set up, then fall
// silent; neither hangs up.
func TestKamailioTimeoutTeardown(t *testing.T) {
	requireEnvironment(t, true)
	if _, err := kamailioModule("xmlrpc.so"); err != nil {
		testenv.Unavailable(t, "%v; install kamailio-xml-modules", err)
	}
	var v variant
	for _, x := range variants() {
		if x.twoInterfaces { // the production layout
			v = x
		}
	}
	dir := testenv.ArtifactDir(t, "E2E_ARTIFACTS")
	tp := newTopology(t, v)
	r := startRelayWith(t, tp, v, dir, []string{
		fmt.Sprintf("--timeout=%d", teardownTimeout),
		fmt.Sprintf("--b2b-url=http://127.0.0.1:%d/RPC2", xmlrpcPort),
		"--xmlrpc-format=2",
	})
	startKamailioWith(t, tp, v, dir, func(p *kamailioParams) { p.XMLRPCPort = xmlrpcPort })

	params := sippParams{CalleeAddr: v.calleeAddr, CalleePort: sipPort, Pcap: g711aPcap, HoldMS: 1, AwaitBYE: true}
	uas := startSippUAS(t, tp, dir, params, 1)
	uac := startSippUAC(t, tp, dir, params, 1)

	// Watch the relay's packet counter: the media stopped at some time after
	// the last poll that still saw it grow. Watch the caller and callee
	// exit: each does so right after answering the BYE.
	var (
		callID           string
		lastCount        int64 = -1
		beforeLastChange time.Time
		prevPoll         time.Time
		uacExit, uasExit time.Time
		sawCall          bool
	)
	deadline := time.Now().Add(40 * time.Second)
	for (uacExit.IsZero() || uasExit.IsZero()) && time.Now().Before(deadline) {
		now := time.Now()
		if uacExit.IsZero() && uac.proc.Exited() {
			uacExit = now
		}
		if uasExit.IsZero() && uas.proc.Exited() {
			uasExit = now
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		calls, err := r.ng.List(ctx)
		if err == nil && len(calls) == 1 {
			callID, sawCall = calls[0], true
			if q, err := r.ng.Query(ctx, callID); err == nil {
				if n := rtpPackets(q); n != lastCount {
					lastCount, beforeLastChange = n, prevPoll
				}
			}
		}
		cancel()
		prevPoll = now
		time.Sleep(50 * time.Millisecond)
	}
	ends := []struct {
		name string
		at   time.Time
	}{{"caller", uacExit}, {"callee", uasExit}}
	if !uacExit.IsZero() && uasExit.IsZero() && kamailioByeRace(t, dir) {
		// Kamailio's dlg_bye_all sends the caller's BYE, then the callee's
		// only while the dialog is still confirmed; when the caller's 200
		// is processed first (a loaded machine), the dialog is already
		// deleted and the second BYE is refused. The relay's notice did
		// its part: Kamailio accepted it and tore the dialog down.
		t.Logf("Kamailio sent the caller's BYE and refused the callee's (dlg_bye_all race under load): checking the caller only")
		ends = ends[:1]
		uas.proc.Stop(t, syscall.SIGKILL)
	} else if uacExit.IsZero() || uasExit.IsZero() {
		t.Fatalf("no BYE reached both ends within 40 s (caller exited: %v, callee exited: %v)", !uacExit.IsZero(), !uasExit.IsZero())
	} else {
		uas.wait(t, time.Second)
	}
	uac.wait(t, time.Second)
	if !sawCall || lastCount <= 0 {
		t.Fatalf("never saw the call's media at the relay (call %q, packets %d)", callID, lastCount)
	}
	// Both pcaps are 236 packets; the relay counts what it received.
	if lastCount < 2*236*9/10 {
		t.Errorf("relay received %d RTP packets, want about %d", lastCount, 2*236)
	}
	limit := teardownTimeout*time.Second + 2*time.Second
	for _, end := range ends {
		took := end.at.Sub(beforeLastChange)
		t.Logf("%s got BYE at most %v after the media stopped (timeout %ds)", end.name, took.Round(10*time.Millisecond), teardownTimeout)
		if took > limit {
			t.Errorf("%s: BYE %v after the media stopped, want within timeout + 2 s = %v", end.name, took, limit)
		}
		if took < teardownTimeout*time.Second-500*time.Millisecond {
			t.Errorf("%s: BYE only %v after the last packet the relay counted: before the timeout", end.name, took)
		}
	}
	// Each side got its BYE from the proxy.
	for _, s := range []*sipp{uac, uas} {
		bye := false
		for _, m := range s.messages(t) {
			if m.Received && strings.HasPrefix(m.StartLine, "BYE ") {
				bye = true
			}
		}
		if !bye {
			t.Errorf("%s never received a BYE", s.name)
		}
	}
	calls, err := r.list()
	if err != nil || len(calls) != 0 {
		t.Errorf("relay still lists %v (%v)", calls, err)
	}
	stats, err := r.statistics()
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := stats["statistics"].(map[string]any)
	total, _ := inner["totalstatistics"].(map[string]any)
	if n, err := intValue(total["timeoutsessions"]); err != nil || n != 1 {
		t.Errorf("timeoutsessions = %v (%v), want 1", total["timeoutsessions"], err)
	}
	if r.kind == relayRelayd {
		logs, _ := os.ReadFile(r.proc.LogPath)
		for _, want := range []string{"msg=\"teardown notice sent\" component=notify call-id=" + callID, "msg=CDR component=session call-id=" + callID + " reason=timeout"} {
			if !strings.Contains(string(logs), want) {
				t.Errorf("relayd log lacks %q", want)
			}
		}
	}
}

// rtpPackets is totals.RTP.packets of a query reply.
func rtpPackets(q map[string]any) int64 {
	totals, _ := q["totals"].(map[string]any)
	rtp, _ := totals["RTP"].(map[string]any)
	switch n := rtp["packets"].(type) {
	case int64:
		return n
	case int:
		return int64(n)
	}
	return -1
}

// kamailioModule finds a module next to rtpengine.so.
func kamailioModule(name string) (string, error) {
	dir, err := kamailioModulesDir()
	if err != nil {
		return "", err
	}
	p := dir + "/" + name
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("kamailio module %s: %w", name, err)
	}
	return p, nil
}

// kamailioByeRace says whether Kamailio's log shows dlg_bye_all refusing
// the second BYE of a dialog the first BYE's reply had already ended.
func kamailioByeRace(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kamailio.log"))
	return err == nil && bytes.Contains(b, []byte("terminating non-confirmed dialogs not supported"))
}
