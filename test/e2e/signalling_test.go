// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// TestKamailioSignalling places one call caller → Kamailio → callee with a
// re-INVITE, in each network layout, and checks that the relay, driven only
// by Kamailio's rtpengine module, hands each side its own interface's address
// and a port it really allocated for the call, keeps those ports across the
// re-INVITE, and frees the call on BYE.
func TestKamailioSignalling(t *testing.T) {
	requireEnvironment(t, false)
	forEachVariant(t, testSignalling)
}

func testSignalling(t *testing.T, v variant) {
	dir := testenv.ArtifactDir(t, "E2E_ARTIFACTS")
	tp := newTopology(t, v)
	r := startRelay(t, tp, v, dir)
	startKamailio(t, tp, v, dir)

	params := sippParams{CalleeAddr: v.calleeAddr, CalleePort: sipPort, ReInvite: true, HoldMS: 2000}
	uas := startSippUAS(t, tp, dir, params, 1)
	watch := watchCalls(r.ng, 100*time.Millisecond)
	uac := startSippUAC(t, tp, dir, params, 1)
	uac.wait(t, 30*time.Second)
	watch.stop()
	uas.wait(t, 5*time.Second)

	// What each side received, as sipp logged it off the wire.
	callerMsgs, calleeMsgs := uac.messages(t), uas.messages(t)
	legs := []struct {
		name   string
		msgs   []SIPMessage
		status int
		cseq   int
		relay  string // the relay address this side must be given
		other  string // the far endpoint's address, which must not leak
	}{
		{"INVITE at the callee", calleeMsgs, 0, 1, v.relayCalleeAddr, callerAddr},
		{"200 OK at the caller", callerMsgs, 200, 1, relayExtAddr, v.calleeAddr},
		{"re-INVITE at the callee", calleeMsgs, 0, 2, v.relayCalleeAddr, callerAddr},
		{"re-INVITE's 200 OK at the caller", callerMsgs, 200, 2, relayExtAddr, v.calleeAddr},
	}
	got := make([]SDPMedia, len(legs))
	for i, l := range legs {
		m, ok := findMessage(l.msgs, l.status, l.cseq, "INVITE")
		if !ok {
			t.Fatalf("%s: not in the sipp trace", l.name)
		}
		sdp, audio := audioOf(t, l.name, m)
		got[i] = audio
		t.Logf("%s: c=%s m=audio %d %s %v, o= %s version %s", l.name, audio.Connection, audio.Port, audio.Proto, audio.Formats, sdp.OriginAddress, sdp.OriginVersion)
		if strings.Contains(m.Body, l.other) {
			t.Errorf("%s: SDP still carries the far endpoint's address %s:\n%s", l.name, l.other, m.Body)
		}
		if audio.Connection != l.relay {
			t.Errorf("%s: c= %s, want the relay's %s", l.name, audio.Connection, l.relay)
		}
		if sdp.OriginAddress != l.relay {
			t.Errorf("%s: o= address %s, want %s (replace-origin)", l.name, sdp.OriginAddress, l.relay)
		}
		if audio.Port < relayPortMin || audio.Port > relayPortMax {
			t.Errorf("%s: m=audio port %d outside the relay's range %d-%d", l.name, audio.Port, relayPortMin, relayPortMax)
		}
		if want := []string{"8", "101"}; audio.Proto != "RTP/AVP" || !slices.Equal(audio.Formats, want) {
			t.Errorf("%s: m=audio %s %v, want RTP/AVP %v", l.name, audio.Proto, audio.Formats, want)
		}
	}
	if got[2].Connection != got[0].Connection || got[2].Port != got[0].Port {
		t.Errorf("callee side: re-INVITE offers %s:%d, initial INVITE %s:%d; the same SDP must keep the relay's port",
			got[2].Connection, got[2].Port, got[0].Connection, got[0].Port)
	}
	if got[3].Connection != got[1].Connection || got[3].Port != got[1].Port {
		t.Errorf("caller side: re-INVITE's 200 answers %s:%d, initial 200 %s:%d; the same SDP must keep the relay's port",
			got[3].Connection, got[3].Port, got[1].Connection, got[1].Port)
	}

	// The relay's own view while the call was up: the one call, and the
	// sockets the SDPs point at.
	if watch.polls == 0 {
		t.Fatalf("the relay never answered list during the call (last error: %v)", watch.lastErr)
	}
	if watch.maxCalls != 1 {
		t.Errorf("relay listed at most %d calls during the call, want 1", watch.maxCalls)
	}
	invite, _ := findMessage(calleeMsgs, 0, 1, "INVITE")
	callID, _ := invite.Header("Call-ID")
	eps, ok := watch.endpoints[callID]
	if !ok {
		t.Fatalf("query never returned sockets for Call-ID %q (calls seen: %v, last error: %v)", callID, slices.Sorted(maps.Keys(watch.endpoints)), watch.lastErr)
	}
	t.Logf("relay sockets for %s (last query before BYE): %v", callID, eps)
	for i, l := range legs {
		if !hasEndpoint(eps, got[i].Connection, got[i].Port) {
			t.Errorf("%s: %s:%d is not among the relay's sockets for the call %v", l.name, got[i].Connection, got[i].Port, eps)
		}
	}

	requireNoCalls(t, r)
}
