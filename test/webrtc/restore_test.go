// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"encoding/json"
	"testing"

	pion "github.com/pion/webrtc/v4"
)

// A relay that stops and a new one that restores the call's saved state (as
// JSON, as a store keeps it) carries on with the same ports and the keys the
// DTLS handshake exported: the browser's DTLS session and SRTP go on without
// a new handshake, and the phone hears it again.
func TestRestoreKeepsDTLSCall(t *testing.T) {
	for _, sdes := range []string{"", "AES_CM_128_HMAC_SHA1_80"} {
		t.Run("phone SDES="+sdes, func(t *testing.T) {
			r := newRelay(t)
			b, ph := newBrowser(t, nil, pion.DTLSRoleAuto), newPhone(t, sdes)
			browserCall(t, r, "survivor", b, ph)
			go b.send(15)
			go ph.send(15)
			ph.rx.check2(t, "phone before the restart", browserHz, 10)
			b.rx.check2(t, "browser before the restart", phoneHz, 10)

			cs, ok := r.m.Snapshot("survivor")
			if !ok {
				t.Fatal("no state for the call")
			}
			raw, err := json.Marshal(cs)
			if err != nil {
				t.Fatal(err)
			}
			// The old relay goes away (its sockets close), a new one
			// restores.
			r.m.Close()
			_ = r.eng.Close()
			r2 := newRelay(t)
			var back = cs
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if err := r2.m.Restore(back); err != nil {
				t.Fatalf("restore: %v\n%s", err, raw)
			}
			ph.rx.reset()
			b.rx.reset()
			go b.send(packets)
			go ph.send(packets)
			ph.rx.check(t, "phone after the restart", browserHz)
			b.rx.check(t, "browser after the restart", phoneHz)
			info, err := r2.m.Query("survivor", "", "")
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range info.Tags {
				if sec := tag.Medias[0].Security; sec != nil && sec.Counters.DTLSHandshakes != 0 {
					t.Errorf("%s: %d new DTLS handshakes after the restart, want 0", tag.Tag, sec.Counters.DTLSHandshakes)
				}
			}
		})
	}
}
