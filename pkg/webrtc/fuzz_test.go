// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"net/netip"
	"testing"

	"github.com/relayd/relayd/pkg/media"
)

// classifyForFuzz sets Kind the way the demultiplexer does for what the
// stages look at (RFC 7983 first byte, RFC 5761 packet type).
func classifyForFuzz(b []byte) media.Kind {
	switch {
	case len(b) == 0:
		return media.KindOther
	case b[0] <= 3:
		return media.KindSTUN
	case b[0] >= 20 && b[0] <= 63:
		return media.KindDTLS
	case b[0]>>6 == 2 && len(b) >= 12 && b[1] >= 192 && b[1] <= 223:
		return media.KindRTCP
	case b[0]>>6 == 2 && len(b) >= 12:
		return media.KindRTP
	}
	return media.KindOther
}

// STUN from the network: whatever arrives, the ICE stage answers or drops,
// never panics, and never latches without the password.
func FuzzICE(f *testing.F) {
	t := &testing.T{}
	f.Add(check(t, "relayUfr:brws", "relaypasswordrelaypassword", true, true))
	f.Add(check(t, "relayUfr:brws", "wrong", true, true))
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	e, err := media.NewEngine(media.Config{Workers: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	var c Counters
	ice := NewICE(Credentials{Ufrag: "relayUfr", Pwd: "relaypasswordrelaypassword"}, &c)
	s := relaySocket(&testing.T{}, e, e.NewGroup())
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &media.Packet{Data: b, Source: netip.MustParseAddrPort("192.0.2.1:4000"), Stream: s, Kind: classifyForFuzz(b)}
		before := c.ICENominations.Load()
		ice.Handle(p)
		if c.ICENominations.Load() != before && !s.Stats().Confirmed {
			t.Fatal("nomination counted without a latch")
		}
	})
}

// SRTP from the network: bad tags, replays and garbage are dropped and
// counted; nothing panics.
func FuzzUnprotect(f *testing.F) {
	f.Add(rtpPacket(1, []byte("payload and a tag...")))
	f.Add(rtcpRR())
	f.Add([]byte{0x80})
	e, err := media.NewEngine(media.Config{Workers: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	var stages []*Unprotect
	var c Counters
	for _, name := range []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_32"} {
		suite, _ := SuiteByName(name)
		k, _ := NewKeys(suite)
		u := NewUnprotect(&c)
		if err := u.SetKeys(k); err != nil {
			f.Fatal(err)
		}
		stages = append(stages, u)
	}
	s := relaySocket(&testing.T{}, e, e.NewGroup())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, u := range stages {
			buf := append(make([]byte, 0, len(b)+64), b...)
			p := &media.Packet{Data: buf, Source: netip.MustParseAddrPort("192.0.2.1:4000"), Stream: s,
				Kind: classifyForFuzz(buf)}
			if u.Handle(p) == media.Continue && (p.Kind == media.KindRTP || p.Kind == media.KindRTCP) {
				t.Fatalf("forged packet % x authenticated", b)
			}
		}
	})
}
