// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"testing"

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

func TestICELite(t *testing.T) {
	e := newEngine(t)
	relay := relaySocket(t, e, e.NewGroup())
	local := Credentials{Ufrag: "relayUfr", Pwd: "relaypasswordrelaypassword"}
	var c Counters
	ice := NewICE(local, &c)
	ice.SetRemote("brws")
	relay.Configure(media.StreamConfig{Handlers: []media.Stage{ice}})
	browser := peerSocket(t)
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
