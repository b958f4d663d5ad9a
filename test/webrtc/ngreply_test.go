// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/session"
)

// ngOver serves the relay's session manager with the production ng
// dispatcher on a real socket and returns a function that sends one request
// as a SIP proxy does.
func ngOver(t *testing.T, r *relay) func(map[string]any) map[string]any {
	t.Helper()
	srv, err := ngproto.NewServer(ngproto.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")},
		ngproto.NewControl(r.m, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ctx)
	}()
	cl, err := ngproto.Dial(srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close(); cancel(); <-served })
	return func(req map[string]any) map[string]any {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		reply, err := cl.Do(rctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if reply["result"] != "ok" {
			t.Fatalf("%v: %v", req["command"], reply)
		}
		return reply
	}
}

// A flag relayd accepts but cannot honour is answered with a warning (the
// developers' guide). The session layer says which (session.Outcome's
// Warnings); the ng reply must carry them to the SIP proxy. Kamailio's seed
// routes send DTLS=passive with a WebRTC caller's offer: towards a SIP phone
// (RTP/AVP) it has no effect, and the session layer says so, but the reply
// over ng has no "warning" and the daemon logs nothing either.
func TestNGReplyCarriesSessionWarnings(t *testing.T) {
	r := newRelay(t)
	ph := newPhone(t, "")
	flags := "replace-origin replace-session-connection ICE=remove DTLS=passive SDES-off RTP/AVP rtcp-mux-demux"
	dict := func(callID string) map[string]any {
		d := ngproto.FlagString(flags)
		d["command"], d["call-id"], d["from-tag"], d["sdp"] = "offer", callID, "caller", ph.sdp()
		return d
	}

	// The session layer's verdict on this request.
	req, err := ngproto.ParseRequest(dict("direct"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.m.OfferOutcome(session.Signal{CallID: "direct", FromTag: "caller", SDP: req.SDP, Options: req.Options})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) == 0 {
		t.Fatalf("the session layer has no warning for %q: nothing to carry", flags)
	}
	t.Logf("session warnings: %q", out.Warnings)

	// The same request over ng, as the SIP proxy sends it.
	reply := ngOver(t, r)(dict("over-ng"))
	w, _ := reply["warning"].(string)
	for _, want := range out.Warnings {
		if !strings.Contains(w, want) {
			t.Errorf("the ng reply's warning is %q: it lacks the session layer's %q", w, want)
		}
	}
}

// The incumbent's query shows how each party's media is secured: the media
// flag "DTLS-SRTP" (or "SDES") and each stream's "crypto suite" (reference
// notes §1.8). relayd's session layer knows (MediaInfo.Security: keying, DTLS
// state, suite), but the ng query reply leaves it out.
func TestNGQueryShowsSecurity(t *testing.T) {
	r := newRelay(t)
	ng := ngOver(t, r)
	b := newBrowser(t, nil, pion.DTLSRoleAuto)
	ph := newPhone(t, "")
	toPhone, err := r.m.OfferOutcome(session.Signal{CallID: "call", FromTag: "browser",
		SDP: []byte(b.offer()), Options: sipOpts(false)})
	if err != nil {
		t.Fatal(err)
	}
	ph.takeSDP(string(toPhone.SDP))
	aopts := webrtcOpts("passive")
	aopts.TransportProtocol = ""
	toBrowser, err := r.m.AnswerOutcome(session.Signal{CallID: "call", FromTag: "browser", ToTag: "phone",
		SDP: []byte(ph.sdp()), Options: aopts})
	if err != nil {
		t.Fatal(err)
	}
	b.setAnswer(string(toBrowser.SDP))
	b.waitConnected()

	// What the session layer knows once the relay's handshake is done.
	var suite string
	waitFor(t, "the relay's DTLS connected", func() bool {
		ci, err := r.m.Query("call", "", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range ci.Tags {
			for _, md := range tag.Medias {
				if tag.Tag == "browser" && md.Security != nil && md.Security.DTLSState == "connected" {
					suite = md.Security.Suite
					return true
				}
			}
		}
		return false
	})
	t.Logf("session layer: the browser's media is DTLS-SRTP, connected, %s", suite)

	q := ng(map[string]any{"command": "query", "call-id": "call"})
	tags, _ := q["tags"].(map[string]any)
	tag, _ := tags["browser"].(map[string]any)
	medias, _ := tag["medias"].([]any)
	if len(medias) != 1 {
		t.Fatalf("query: tag browser has %d medias: %v", len(medias), q)
	}
	md, _ := medias[0].(map[string]any)
	flags, _ := md["flags"].([]any)
	if !slices.Contains(flags, any("DTLS-SRTP")) {
		t.Errorf("query: the browser's media flags are %v, without DTLS-SRTP", flags)
	}
	streams, _ := md["streams"].([]any)
	if len(streams) == 0 {
		t.Fatalf("query: the browser's media has no streams: %v", md)
	}
	st, _ := streams[0].(map[string]any) // the RTP stream
	if got, _ := st["crypto suite"].(string); got != suite {
		t.Errorf("query: the browser's RTP stream (port %v) has crypto suite %q, want %q", st["local port"], got, suite)
	}
}
