// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"strings"
	"testing"
	"time"

	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/session"
)

// The seed routes send DTLS=passive with the answer to a browser's offer,
// after the phone rang: the relay must not have started a handshake after
// the offer in the role the answer then reverses (the incumbent does, and
// the call stays silent), so it is the server when the answer says so.
func TestPassiveAnswerAfterRinging(t *testing.T) {
	r := newRelay(t)
	b, ph := newBrowser(t, nil, pion.DTLSRoleAuto), newPhone(t, "")
	seed := session.Options{ICE: "force", DTLS: "passive", SDES: []string{"off"},
		Replace: []string{"origin", "session-connection"}}
	offer := seed
	offer.ICE, offer.RTCPMux, offer.TransportProtocol = "remove", []string{"demux"}, "RTP/AVP"
	toPhone, err := r.m.OfferOutcome(session.Signal{CallID: "ring", FromTag: "browser", SDP: []byte(b.offer()), Options: offer})
	if err != nil {
		t.Fatal(err)
	}
	ph.takeSDP(string(toPhone.SDP))
	time.Sleep(time.Second) // ringing
	toBrowser, err := r.m.AnswerOutcome(session.Signal{CallID: "ring", FromTag: "browser", ToTag: "phone",
		SDP: []byte(ph.sdp()), Options: seed})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(toBrowser.SDP), "a=setup:passive") {
		t.Fatalf("answer to the browser is not passive:\n%s", toBrowser.SDP)
	}
	b.setAnswer(string(toBrowser.SDP))
	b.waitConnected()
	go b.send(packets)
	go ph.send(packets)
	ph.rx.check(t, "phone", browserHz)
	b.rx.check(t, "browser", phoneHz)
}

// A re-INVITE from a new browser (new certificate, new ICE credentials: an
// ICE restart) on the same call gets a new handshake and media flows again;
// a re-INVITE from the same browser keeps the session running.
func TestReinviteNewFingerprint(t *testing.T) {
	r := newRelay(t)
	b1, ph := newBrowser(t, nil, pion.DTLSRoleAuto), newPhone(t, "")
	toBrowser, _ := browserCall(t, r, "re", b1, ph)
	go b1.send(20)
	go ph.send(20)
	ph.rx.check2(t, "phone before the re-INVITE", browserHz, 15)

	// Same browser, same SDP: nothing changes, media keeps flowing.
	if _, err := r.m.OfferOutcome(session.Signal{CallID: "re", FromTag: "browser", ToTag: "phone",
		SDP: []byte(b1.pc.LocalDescription().SDP), Options: sipOpts(false)}); err != nil {
		t.Fatal(err)
	}
	again, err := r.m.AnswerOutcome(session.Signal{CallID: "re", FromTag: "browser", ToTag: "phone",
		SDP: []byte(ph.sdp()), Options: session.Options{ICE: "force", DTLS: "passive"}})
	if err != nil {
		t.Fatal(err)
	}
	if attrOf(string(again.SDP), "ice-ufrag") != attrOf(toBrowser, "ice-ufrag") {
		t.Error("the relay's ICE credentials changed on a re-INVITE without an ICE restart")
	}

	// A new browser takes the call over (its own certificate and ICE
	// credentials): a new DTLS session and SRTP keys.
	b2 := newBrowser(t, nil, pion.DTLSRoleAuto)
	ph.rx.reset()
	out, err := r.m.OfferOutcome(session.Signal{CallID: "re", FromTag: "browser", ToTag: "phone",
		SDP: []byte(b2.offer()), Options: sipOpts(false)})
	if err != nil {
		t.Fatal(err)
	}
	ph.takeSDP(string(out.SDP))
	ans, err := r.m.AnswerOutcome(session.Signal{CallID: "re", FromTag: "browser", ToTag: "phone",
		SDP: []byte(ph.sdp()), Options: session.Options{ICE: "force", DTLS: "passive"}})
	if err != nil {
		t.Fatal(err)
	}
	if attrOf(string(ans.SDP), "ice-ufrag") == attrOf(toBrowser, "ice-ufrag") {
		t.Error("ICE restart: the relay kept its old credentials")
	}
	b2.setAnswer(string(ans.SDP))
	b2.waitConnected()
	go b2.send(packets)
	go ph.send(packets)
	ph.rx.check(t, "phone after the new browser", browserHz)
	b2.rx.check(t, "new browser", phoneHz)
}
