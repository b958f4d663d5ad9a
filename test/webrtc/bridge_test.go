// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"github.com/pion/dtls/v3"
	"strings"
	"testing"

	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/session"
)

// sipOpts is what Kamailio's routes send towards a SIP phone from a WebRTC
// call: plain RTP (or SDES), no ICE, rtcp-mux taken apart.
func sipOpts(sdes bool) session.Options {
	o := session.Options{ICE: "remove", RTCPMux: []string{"demux"}, TransportProtocol: "RTP/AVP"}
	if sdes {
		o.TransportProtocol = "RTP/SAVP"
	}
	return o
}

// webrtcOpts is the WebRTC flag's expansion towards a browser.
func webrtcOpts(dtls string) session.Options {
	return session.Options{ICE: "force", DTLS: dtls, TransportProtocol: "UDP/TLS/RTP/SAVPF",
		RTCPMux: []string{"offer", "require"}, SDES: []string{"off"}, Flags: session.Flags{GenerateMid: true}}
}

// dtlsProfiles are the DTLS-SRTP profiles a pion/webrtc peer negotiates.
// (pion/webrtc's transport has no AES_CM_128_HMAC_SHA1_32; that profile is
// proven with pion/dtls and pion/srtp directly in pkg/webrtc, and here with
// an SDES phone.)
var dtlsProfiles = []struct {
	name string
	p    dtls.SRTPProtectionProfile
}{
	{"AES_CM_128_HMAC_SHA1_80", dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	{"AEAD_AES_128_GCM", dtls.SRTP_AEAD_AES_128_GCM},
	{"AEAD_AES_256_GCM", dtls.SRTP_AEAD_AES_256_GCM},
}

// The browser calls the phone: its offer goes to the phone as RTP/AVP (or
// SDES), the phone's answer back as DTLS-SRTP with ICE; the relay is the
// DTLS server (DTLS=passive, as the seed routes ask) or the client.
func TestBrowserCallsPhone(t *testing.T) {
	type tc struct {
		name    string
		dtls    string
		profile dtls.SRTPProtectionProfile
		sdes    string // the SDES phone's suite, "" for plain RTP
	}
	var cases []tc
	for _, p := range dtlsProfiles {
		cases = append(cases, tc{"passive/" + p.name, "passive", p.p, ""})
	}
	cases = append(cases, tc{"active", "active", 0, ""}, tc{"default role", "", 0, ""})
	for _, s := range []string{"AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32", "AEAD_AES_128_GCM",
		"AEAD_AES_256_GCM", "AES_256_CM_HMAC_SHA1_80"} {
		cases = append(cases, tc{"to an SDES phone/" + s, "passive", 0, s})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRelay(t)
			var profiles []dtls.SRTPProtectionProfile
			if c.profile != 0 {
				profiles = []dtls.SRTPProtectionProfile{c.profile}
			}
			b := newBrowser(t, profiles, pion.DTLSRoleAuto)
			ph := newPhone(t, c.sdes)
			toPhone, err := r.m.OfferOutcome(session.Signal{CallID: "call", FromTag: "browser",
				SDP: []byte(b.offer()), Options: sipOpts(c.sdes != "")})
			if err != nil {
				t.Fatal(err)
			}
			ph.takeSDP(string(toPhone.SDP))
			aopts := webrtcOpts(c.dtls)
			aopts.TransportProtocol = ""
			toBrowser, err := r.m.AnswerOutcome(session.Signal{CallID: "call", FromTag: "browser", ToTag: "phone",
				SDP: []byte(ph.sdp()), Options: aopts})
			if err != nil {
				t.Fatal(err)
			}
			want := "a=setup:active"
			if c.dtls == "passive" {
				want = "a=setup:passive"
			}
			if !strings.Contains(string(toBrowser.SDP), want) {
				t.Fatalf("answer to the browser lacks %s:\n%s", want, toBrowser.SDP)
			}
			b.setAnswer(string(toBrowser.SDP))
			b.waitConnected()
			go b.send(packets)
			go ph.send(packets)
			ph.rx.check(t, "phone", browserHz)
			b.rx.check(t, "browser", phoneHz)
		})
	}
}

// The phone calls the browser: its offer goes to the browser as DTLS-SRTP
// with ICE and rtcp-mux (the WebRTC flag), the browser answers active (the
// relay is the server) or passive (the relay is the client).
func TestPhoneCallsBrowser(t *testing.T) {
	for _, c := range []struct {
		name string
		role pion.DTLSRole
		sdes string
	}{
		{"browser active", pion.DTLSRoleClient, ""},
		{"browser passive", pion.DTLSRoleServer, ""},
		{"SDES phone", pion.DTLSRoleAuto, "AES_CM_128_HMAC_SHA1_80"},
		{"SDES phone GCM", pion.DTLSRoleAuto, "AEAD_AES_128_GCM"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRelay(t)
			b := newBrowser(t, nil, c.role)
			ph := newPhone(t, c.sdes)
			toBrowser, err := r.m.OfferOutcome(session.Signal{CallID: "call", FromTag: "phone",
				SDP: []byte(ph.sdp()), Options: webrtcOpts("")})
			if err != nil {
				t.Fatal(err)
			}
			if len(toBrowser.Warnings) > 0 {
				t.Errorf("warnings: %v", toBrowser.Warnings)
			}
			t.Logf("offer to the browser:\n%s", toBrowser.SDP)
			answer := b.answer(string(toBrowser.SDP))
			toPhone, err := r.m.AnswerOutcome(session.Signal{CallID: "call", FromTag: "phone", ToTag: "browser",
				SDP: []byte(answer), Options: sipOpts(c.sdes != "")})
			if err != nil {
				t.Fatal(err)
			}
			ph.takeSDP(string(toPhone.SDP))
			b.waitConnected()
			go b.send(packets)
			go ph.send(packets)
			ph.rx.check(t, "phone", browserHz)
			b.rx.check(t, "browser", phoneHz)
		})
	}
}
