// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/stun/v4"
	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/session"
)

// call sets up browser → relay → phone and returns the relay's SDP to each.
func browserCall(t *testing.T, r *relay, id string, b *browser, ph *phone) (toBrowser, toPhone string) {
	t.Helper()
	out, err := r.m.OfferOutcome(session.Signal{CallID: id, FromTag: "browser", SDP: []byte(b.offer()),
		Options: sipOpts(ph.sdes)})
	if err != nil {
		t.Fatal(err)
	}
	ph.takeSDP(string(out.SDP))
	ans, err := r.m.AnswerOutcome(session.Signal{CallID: id, FromTag: "browser", ToTag: "phone",
		SDP: []byte(ph.sdp()), Options: session.Options{ICE: "force", DTLS: "passive"}})
	if err != nil {
		t.Fatal(err)
	}
	b.setAnswer(string(ans.SDP))
	b.waitConnected()
	return string(ans.SDP), string(out.SDP)
}

// mPortOf is the m=audio port of an SDP.
func mPortOf(t *testing.T, sdp string) netip.AddrPort {
	t.Helper()
	for _, l := range strings.Split(sdp, "\r\n") {
		var port int
		if n, _ := fmt.Sscanf(l, "m=audio %d", &port); n == 1 {
			return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		}
	}
	t.Fatalf("no m=audio in\n%s", sdp)
	return netip.AddrPort{}
}

func attrOf(sdp, name string) string {
	for _, l := range strings.Split(sdp, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a="+name+":"); ok {
			return v
		}
	}
	return ""
}

// Hostile input on both legs of one call — STUN without the password, DTLS
// garbage from a stranger, SRTP with bad tags, replayed SRTP — is dropped
// and counted; nothing is learned from it, and neither that call nor another
// one loses its media.
func TestHostileInput(t *testing.T) {
	r := newRelay(t)
	b1, ph1 := newBrowser(t, nil, pion.DTLSRoleAuto), newPhone(t, "AES_CM_128_HMAC_SHA1_80")
	toBrowser, toPhone := browserCall(t, r, "attacked", b1, ph1)
	b2, ph2 := newBrowser(t, nil, pion.DTLSRoleAuto), newPhone(t, "")
	browserCall(t, r, "bystander", b2, ph2)

	for _, x := range []func(int){b1.send, ph1.send, b2.send, ph2.send} {
		go x(packets)
	}
	attacker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	browserPort, phonePort := mPortOf(t, toBrowser), mPortOf(t, toPhone)
	ufrag := attrOf(toBrowser, "ice-ufrag")
	browserUfrag := attrOf(b1.pc.LocalDescription().SDP, "ice-ufrag")
	send := func(to netip.AddrPort, b []byte) {
		if _, err := attacker.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	// A connectivity check naming the relay's ufrag (it is in the SDP) but
	// signed with a guessed password, with USE-CANDIDATE.
	m, _ := stun.Build(stun.TransactionID, stun.BindingRequest, stun.NewUsername(ufrag+":"+browserUfrag),
		stun.RawAttribute{Type: stun.AttrUseCandidate},
		stun.NewShortTermIntegrity("guessedguessedguessedguessed"), stun.Fingerprint)
	const n = 10
	for range n {
		send(browserPort, m.Raw)
		garbage := make([]byte, 100)
		_, _ = rand.Read(garbage)
		garbage[0] = 22 // a DTLS record type
		send(browserPort, garbage)
		forged := make([]byte, 12+160+10)
		_, _ = rand.Read(forged)
		forged[0], forged[1] = 0x80, 0
		send(browserPort, forged)
		send(phonePort, forged)
	}
	// A replay of what the phone really sent: captured off the wire.
	waitFor(t, "the phone sending", func() bool { return len(ph1.lastSent()) > 0 })
	replay := ph1.lastSent()
	for range n {
		send(phonePort, replay)
	}

	defer func() { t.Logf("security totals: %+v", r.m.Statistics().Security) }()
	waitFor(t, "attack counted", func() bool {
		s := r.m.Statistics().Security
		return s.STUNBadIntegrity >= n && s.DTLSDropped >= n && s.SRTPAuthFailed >= 2*n && s.SRTPReplayed >= n
	})
	info, err := r.m.Query("attacked", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range info.Tags {
		for _, md := range tag.Medias {
			for _, st := range md.Streams {
				if st.Endpoint.Port() == attacker.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
					t.Errorf("%s: the attacker became the endpoint %v", tag.Tag, st.Endpoint)
				}
			}
			if md.Security == nil {
				t.Errorf("%s: no security state in query", tag.Tag)
			} else {
				t.Logf("%s: %s %s %s %+v", tag.Tag, md.Security.Keying, md.Security.DTLSState, md.Security.Suite, md.Security.Counters)
			}
		}
	}
	ph1.rx.check(t, "attacked call's phone", browserHz)
	b1.rx.check(t, "attacked call's browser", phoneHz)
	ph2.rx.check(t, "bystander phone", browserHz)
	b2.rx.check(t, "bystander browser", phoneHz)
}
