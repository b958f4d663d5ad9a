// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"net"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/relayd/relayd/pkg/media"
)

// check builds a Binding request as a browser's controlling agent does.
func check(t *testing.T, user, pwd string, useCandidate, fingerprint bool) []byte {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user),
		stun.RawAttribute{Type: stun.AttrICEControlling, Value: []byte{0, 0, 0, 0, 0, 0, 0, 42}},
		stun.RawAttribute{Type: stun.AttrPriority, Value: []byte{0x7e, 0xff, 0xff, 0xff}}}
	if useCandidate {
		setters = append(setters, stun.RawAttribute{Type: stun.AttrUseCandidate})
	}
	setters = append(setters, stun.NewShortTermIntegrity(pwd))
	if fingerprint {
		setters = append(setters, stun.Fingerprint)
	}
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// iceRelay is a relay socket answering STUN as ICE-lite agent "relayUfr"
// to a peer "brws", and that peer's socket.
func iceRelay(t *testing.T) (relay *media.Stream, ice *ICE, local Credentials, c *Counters, browser *net.UDPConn) {
	t.Helper()
	e := newEngine(t)
	relay = relaySocket(t, e, e.NewGroup())
	local = Credentials{Ufrag: "relayUfr", Pwd: "relaypasswordrelaypassword"}
	c = new(Counters)
	ice = NewICE(local, c)
	ice.SetRemote("brws")
	relay.Configure(media.StreamConfig{Handlers: []media.Stage{ice}})
	return relay, ice, local, c, peerSocket(t)
}

func TestICELite(t *testing.T) {
	relay, _, local, c, browser := iceRelay(t)
	send := func(b []byte) {
		if _, err := browser.WriteToUDPAddrPort(b, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	answer := func() *stun.Message {
		t.Helper()
		b, from := read(t, browser)
		if from != relay.LocalAddr() {
			t.Fatalf("answer from %v, want the relay socket %v", from, relay.LocalAddr())
		}
		m := &stun.Message{Raw: b}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		return m
	}

	tests := []struct {
		name      string
		req       []byte
		wantClass stun.MessageClass
		wantCode  stun.ErrorCode
		counter   func() uint64
	}{
		{"authenticated check", check(t, "relayUfr:brws", local.Pwd, false, true), stun.ClassSuccessResponse, 0,
			c.STUNAnswered.Load},
		{"wrong password", check(t, "relayUfr:brws", "not the relay's password!!", false, true), stun.ClassErrorResponse,
			stun.CodeUnauthorized, c.STUNBadIntegrity.Load},
		{"someone else's ufrag", check(t, "otherUfr:brws", local.Pwd, false, true), stun.ClassErrorResponse,
			stun.CodeUnauthorized, c.STUNBadUsername.Load},
		{"not the peer's ufrag", check(t, "relayUfr:evil", local.Pwd, false, true), stun.ClassErrorResponse,
			stun.CodeUnauthorized, c.STUNBadUsername.Load},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.counter()
			send(tc.req)
			m := answer()
			if m.Type.Class != tc.wantClass {
				t.Fatalf("answer class %v, want %v", m.Type.Class, tc.wantClass)
			}
			if tc.wantClass == stun.ClassSuccessResponse {
				var xor stun.XORMappedAddress
				if err := xor.GetFrom(m); err != nil {
					t.Fatal(err)
				}
				if xor.IP.String() != "127.0.0.1" || xor.Port != int(addrOf(browser).Port()) {
					t.Errorf("XOR-MAPPED-ADDRESS %v, want %v", xor, addrOf(browser))
				}
				if err := stun.NewShortTermIntegrity(local.Pwd).Check(m); err != nil {
					t.Errorf("answer integrity: %v", err)
				}
				if err := stun.Fingerprint.Check(m); err != nil {
					t.Errorf("answer fingerprint: %v", err)
				}
			} else {
				var code stun.ErrorCodeAttribute
				if err := code.GetFrom(m); err != nil || code.Code != tc.wantCode {
					t.Errorf("error code %v (%v), want %v", code.Code, err, tc.wantCode)
				}
			}
			waitFor(t, tc.name+" counted", func() bool { return tc.counter() == before+1 })
			if _, ok := relay.Destination(); ok {
				t.Errorf("a check without USE-CANDIDATE set a destination")
			}
		})
	}

	// A broken FINGERPRINT gets no answer at all, and neither does an
	// unauthenticated USE-CANDIDATE move anything.
	bad := check(t, "relayUfr:brws", local.Pwd, true, true)
	bad[len(bad)-1] ^= 0xff
	send(bad)
	send(check(t, "relayUfr:brws", "not the relay's password!!", true, true))
	if m := answer(); m.Type.Class != stun.ClassErrorResponse {
		t.Fatalf("unauthenticated nomination answered %v", m.Type)
	}
	waitFor(t, "bad fingerprint counted", func() bool { return c.STUNMalformed.Load() == 1 })
	if _, ok := relay.Destination(); ok {
		t.Fatal("an unauthenticated check set the destination")
	}

	// The nomination latches the browser's address.
	send(check(t, "relayUfr:brws", local.Pwd, true, true))
	if m := answer(); m.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("nomination answered %v", m.Type)
	}
	waitFor(t, "nomination", func() bool { return c.ICENominations.Load() == 1 })
	if dst, ok := relay.Destination(); !ok || dst != addrOf(browser) {
		t.Fatalf("destination %v %v after the nomination, want %v", dst, ok, addrOf(browser))
	}
	if !relay.Stats().Confirmed {
		t.Error("nominated source not latched")
	}
}

// A controlling agent may send on any pair its checks validated, whichever
// it nominated last: Chromium switches its media to a better pair before the
// check that nominates it arrives, and nominates several. Media from the
// source of an authenticated check gets through without moving where the
// relay sends; a source that never passed a check stays refused.
func TestICEValidPairsCarryMedia(t *testing.T) {
	e := newEngine(t)
	g := e.NewGroup()
	relay, toPhone := relaySocket(t, e, g), relaySocket(t, e, g)
	local := Credentials{Ufrag: "relayUfr", Pwd: "relaypasswordrelaypassword"}
	var c Counters
	ice := NewICE(local, &c)
	ice.SetRemote("brws")
	pairA, pairB, stranger, phone := peerSocket(t), peerSocket(t), peerSocket(t), peerSocket(t)
	relay.Configure(media.StreamConfig{Sink: toPhone, Peer: addrOf(pairA), Handlers: []media.Stage{ice}})
	toPhone.Configure(media.StreamConfig{Sink: relay, Peer: addrOf(phone)})

	send := func(from *net.UDPConn, b []byte) {
		t.Helper()
		if _, err := from.WriteToUDPAddrPort(b, relay.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	checkFrom := func(from *net.UDPConn, pwd string, nominate bool) {
		t.Helper()
		send(from, check(t, "relayUfr:brws", pwd, nominate, true))
		read(t, from) // the answer: the check has been handled
	}
	seq := uint16(0)
	rtpFrom := func(from *net.UDPConn) []byte {
		t.Helper()
		seq++
		p := make([]byte, 12+160)
		p[0], p[1] = 0x80, 0
		p[2], p[3] = byte(seq>>8), byte(seq)
		p[8] = 0x42
		send(from, p)
		return p
	}
	forwarded := func(what string, want []byte) {
		t.Helper()
		got, _ := read(t, phone)
		if string(got) != string(want) {
			t.Fatalf("%s: the phone got another packet than the one sent", what)
		}
	}
	refused := func(what string, before uint64) {
		t.Helper()
		waitFor(t, what+" refused", func() bool { return relay.Stats().Dropped == before+1 })
	}
	dest := func(what string, want *net.UDPConn) {
		t.Helper()
		if dst, ok := relay.Destination(); !ok || dst != addrOf(want) {
			t.Fatalf("%s: the relay sends to %v (%v), want %v", what, dst, ok, addrOf(want))
		}
	}

	checkFrom(pairA, local.Pwd, true)
	dest("A nominated", pairA)
	forwarded("media on the nominated pair", rtpFrom(pairA))

	// B has passed no check: its media is someone else's.
	refused("media on an unchecked pair", func() uint64 { d := relay.Stats().Dropped; rtpFrom(pairB); return d }())

	// B's check validates the pair without nominating it: its media gets
	// through, and the relay still sends to A.
	checkFrom(pairB, local.Pwd, false)
	forwarded("media on a valid pair before its nomination", rtpFrom(pairB))
	dest("B checked, not nominated", pairA)

	// B nominated: the relay sends there, and A, valid still, is heard.
	checkFrom(pairB, local.Pwd, true)
	dest("B nominated", pairB)
	forwarded("media on a pair nominated before", rtpFrom(pairA))

	// A check that does not authenticate validates nothing.
	send(stranger, check(t, "relayUfr:brws", "not the relay's password!!", false, true))
	read(t, stranger)
	refused("media after an unauthenticated check", func() uint64 { d := relay.Stats().Dropped; rtpFrom(stranger); return d }())
	dest("after the stranger", pairB)

	// A new Configure (a re-INVITE, an ICE restart) forgets the valid pairs:
	// they are checked again.
	relay.Configure(media.StreamConfig{Sink: toPhone, Peer: addrOf(pairA), Handlers: []media.Stage{ice}})
	checkFrom(pairA, local.Pwd, true)
	forwarded("the nominated pair after a new Configure", rtpFrom(pairA))
	refused("a pair not checked since the new Configure", func() uint64 { d := relay.Stats().Dropped; rtpFrom(pairB); return d }())
	checkFrom(pairB, local.Pwd, false)
	forwarded("a pair checked after the new Configure", rtpFrom(pairB))
	dest("after the new Configure", pairA)
}

// TestNominationBeforeCallback: a browser's nomination can arrive before the
// answer that makes relayd the DTLS client; the callback set afterwards must
// still get the nominated pair, and one set before gets every nomination.
func TestNominationBeforeCallback(t *testing.T) {
	relay, ice, local, _, browser := iceRelay(t)
	if _, err := browser.WriteToUDPAddrPort(check(t, "relayUfr:brws", local.Pwd, true, true), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	read(t, browser) // the success response: the nomination was handled
	got := make(chan net.Addr, 2)
	ice.SetOnNominated(func(a net.Addr) { got <- a })
	select {
	case a := <-got:
		if a.String() != browser.LocalAddr().String() {
			t.Fatalf("nominated %v, want the browser's %v", a, browser.LocalAddr())
		}
	default:
		t.Fatal("a callback set after the nomination was not called")
	}
	if _, err := browser.WriteToUDPAddrPort(check(t, "relayUfr:brws", local.Pwd, true, true), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	read(t, browser)
	select {
	case <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("a later nomination did not call the callback")
	}
	ice.SetOnNominated(nil) // cleared: a nomination must not call the old one
	if _, err := browser.WriteToUDPAddrPort(check(t, "relayUfr:brws", local.Pwd, true, true), relay.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	read(t, browser)
	if len(got) != 0 {
		t.Fatal("cleared callback called")
	}
}
