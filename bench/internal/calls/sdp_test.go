// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/relayd/relayd/bench/internal/sdes"
)

func TestBuildParseRoundTrip(t *testing.T) {
	ep := netip.MustParseAddrPort("198.51.100.7:10002")
	tests := []struct {
		name     string
		sdp      string
		payloads []int
		rtcp     int
	}{
		{"offer", BuildOffer(ep, 42), []int{0, 8, 101}, 0},
		{"answer", BuildAnswer(ep, 42), []int{8, 101}, 10003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.HasSuffix(tc.sdp, "\r\n") || strings.Contains(strings.ReplaceAll(tc.sdp, "\r\n", ""), "\n") {
				t.Errorf("SDP lines must end in CRLF:\n%q", tc.sdp)
			}
			for _, want := range []string{"a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=ptime:20"} {
				if !strings.Contains(tc.sdp, want) {
					t.Errorf("SDP lacks %q", want)
				}
			}
			a, err := ParseAudio(tc.sdp)
			if err != nil {
				t.Fatal(err)
			}
			if a.Addr != ep || !slices.Equal(a.Payloads, tc.payloads) || a.RTCPPort != tc.rtcp {
				t.Errorf("ParseAudio = %+v, want %v %v rtcp %d", a, ep, tc.payloads, tc.rtcp)
			}
		})
	}
}

func TestParseAudio(t *testing.T) {
	tests := []struct {
		name    string
		sdp     string
		want    string
		wantErr bool
	}{
		{"media-level c= wins", "v=0\nc=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.2\n", "192.0.2.2:4000", false},
		{"session-level c=", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0\r\n", "192.0.2.1:4000", false},
		{"video first", "c=IN IP4 192.0.2.1\nm=video 5000 RTP/AVP 96\nc=IN IP4 192.0.2.9\nm=audio 4000 RTP/AVP 8\n", "192.0.2.1:4000", false},
		{"second audio ignored", "c=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 8\nm=audio 6000 RTP/AVP 8\nc=IN IP4 192.0.2.5\n", "192.0.2.1:4000", false},
		{"ipv6", "c=IN IP6 2001:db8::1\nm=audio 4000 RTP/AVP 8\n", "[2001:db8::1]:4000", false},
		{"no audio", "c=IN IP4 192.0.2.1\nm=video 5000 RTP/AVP 96\n", "", true},
		{"rejected", "c=IN IP4 192.0.2.1\nm=audio 0 RTP/AVP 8\n", "", true},
		{"hold", "c=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 8\n", "", true},
		{"no c=", "m=audio 4000 RTP/AVP 8\n", "", true},
		{"bad port", "c=IN IP4 192.0.2.1\nm=audio 70000 RTP/AVP 8\n", "", true},
		{"bad payload type", "c=IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP x\n", "", true},
		{"bad address", "c=IN IP4 nowhere\nm=audio 4000 RTP/AVP 8\n", "", true},
		{"family mismatch", "c=IN IP4 ::1\nm=audio 4000 RTP/AVP 8\n", "", true},
		{"empty", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseAudio(tc.sdp)
			if tc.wantErr {
				if !errors.Is(err, ErrSDP) {
					t.Errorf("error = %v, want ErrSDP (got %+v)", err, a)
				}
				return
			}
			if err != nil || a.Addr.String() != tc.want {
				t.Errorf("ParseAudio = %v, %v; want %s", a.Addr, err, tc.want)
			}
		})
	}
}

// The field-notes examples are real SDPs from phones, trunks and browsers:
// the parser must find their first audio stream.
func TestParseAudioExamples(t *testing.T) {
	files := []string{
		"/work/shared/examples/sdp/sip-trunk-offer.sdp",
		"/work/shared/examples/sdp/freeswitch-answer.sdp",
		"/work/shared/examples/sdp/browser-chromium-offer.sdp",
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Skipf("example SDPs not available: %v", err)
		}
		if _, err := ParseAudio(string(data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseStatistics(t *testing.T) {
	reply := map[string]any{"result": "ok", "statistics": map[string]any{
		"currentstatistics": map[string]any{"sessionsown": int64(3), "media_kernel": "0", "media_userspace": int64(6)},
		"totalstatistics":   map[string]any{"relayedpackets": []byte("12345"), "relayedpacketerrors": 2.0, "managedsessions": 9},
	}}
	got, err := ParseStatistics(reply)
	want := RelayStats{Sessions: 3, MediaUserspace: 6, RelayedPackets: 12345, RelayedErrors: 2, ManagedSessions: 9}
	if err != nil || got != want {
		t.Errorf("ParseStatistics = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseStatistics(map[string]any{"result": "ok"}); !errors.Is(err, ErrRelay) {
		t.Errorf("empty statistics: error %v, want ErrRelay", err)
	}
}

func TestSecureOffer(t *testing.T) {
	ep := netip.MustParseAddrPort("198.51.100.7:10002")
	s, _ := sdes.Lookup("AES_CM_128_HMAC_SHA1_80")
	k, _ := sdes.NewKey(s)
	offer := BuildSecureOffer(ep, 1, sdes.Format(cryptoTag, k))
	a, err := ParseAudio(offer)
	if err != nil {
		t.Fatal(err)
	}
	if a.Proto != "RTP/SAVP" || len(a.Crypto) != 1 {
		t.Fatalf("offer: proto %q, crypto %q", a.Proto, a.Crypto)
	}
	c, err := sdes.Parse(a.Crypto[0])
	if err != nil || c.Tag != cryptoTag || !c.Key.Equal(k) {
		t.Errorf("offer's a=crypto: %+v, %v", c, err)
	}
	if plain, _ := ParseAudio(BuildOffer(ep, 1)); plain.Proto != "RTP/AVP" || len(plain.Crypto) != 0 {
		t.Errorf("plain offer: proto %q, crypto %q", plain.Proto, plain.Crypto)
	}
}

func TestRelayKey(t *testing.T) {
	s80, _ := sdes.Lookup("AES_CM_128_HMAC_SHA1_80")
	s32, _ := sdes.Lookup("AES_CM_128_HMAC_SHA1_32")
	ours, _ := sdes.NewKey(s80)
	theirs, _ := sdes.NewKey(s80)
	other, _ := sdes.NewKey(s32)
	tests := []struct {
		name string
		a    Audio
		ok   bool
	}{
		{"answer with the relay's key", Audio{Proto: "RTP/SAVP", Crypto: []string{sdes.Format(1, theirs)}}, true},
		{"unusable line first", Audio{Proto: "RTP/SAVP", Crypto: []string{"1 F8_128_HMAC_SHA1_80 inline:AAAA", sdes.Format(1, theirs)}}, true},
		{"plain answer", Audio{Proto: "RTP/AVP"}, false},
		{"SAVP without a key", Audio{Proto: "RTP/SAVP"}, false},
		{"another tag", Audio{Proto: "RTP/SAVP", Crypto: []string{sdes.Format(2, theirs)}}, false},
		{"another suite", Audio{Proto: "RTP/SAVP", Crypto: []string{sdes.Format(1, other)}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := relayKey(tc.a, ours)
			if !tc.ok {
				if !errors.Is(err, ErrSDP) {
					t.Errorf("relayKey = %v, want ErrSDP", err)
				}
				return
			}
			if err != nil || !k.Equal(theirs) {
				t.Errorf("relayKey = %x, %v; want the relay's key", k.Key, err)
			}
		})
	}
}
