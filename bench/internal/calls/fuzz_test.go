// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzParseAudio feeds arbitrary SDP, as a relay's reply could carry it, to
// the parser: it must never panic, and whatever it accepts must be a usable
// media address.
func FuzzParseAudio(f *testing.F) {
	f.Add(BuildOffer(netip.MustParseAddrPort("198.51.100.7:10002"), 1))
	f.Add(BuildAnswer(netip.MustParseAddrPort("203.0.113.9:15000"), 2))
	f.Add("v=0\nc=IN IP6 2001:db8::1\nm=audio 4000 RTP/AVP 8\na=rtcp:4001 IN IP6 2001:db8::1\n")
	f.Add("m=audio 0 RTP/AVP 8\nc=IN IP4 0.0.0.0\n")
	f.Fuzz(func(t *testing.T, sdp string) {
		a, err := ParseAudio(sdp)
		if err != nil {
			if !errors.Is(err, ErrSDP) {
				t.Errorf("error %v is not ErrSDP", err)
			}
			return
		}
		if !a.Addr.IsValid() || a.Addr.Port() == 0 || a.Addr.Addr().IsUnspecified() {
			t.Errorf("accepted unusable address %v", a.Addr)
		}
		for _, pt := range a.Payloads {
			if pt < 0 || pt > 127 {
				t.Errorf("payload type %d out of range", pt)
			}
		}
	})
}
