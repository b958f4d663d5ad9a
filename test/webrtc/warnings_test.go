// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/session"
)

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
	t.Cleanup(func() { cancel(); <-served })
	cl, err := ngproto.Dial(srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	reply, err := cl.Do(rctx, dict("over-ng"))
	if err != nil {
		t.Fatal(err)
	}
	if reply["result"] != "ok" {
		t.Fatalf("offer: %v", reply)
	}
	w, _ := reply["warning"].(string)
	for _, want := range out.Warnings {
		if !strings.Contains(w, want) {
			t.Errorf("the ng reply's warning is %q: it lacks the session layer's %q", w, want)
		}
	}
}
