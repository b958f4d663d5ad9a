// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"testing"
	"time"
)

// The identity a relay hands over comes back with the same fingerprint, and
// a Keeper takes it unless it is about to expire.
func TestIdentityPEMRoundTrip(t *testing.T) {
	now := time.Now()
	id, err := NewIdentity(now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := id.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIdentityPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := id.Fingerprint("sha-256")
	if got, _ := back.Fingerprint("sha-256"); got != want || back.NotAfter.Unix() != id.NotAfter.Unix() {
		t.Fatalf("fingerprint %s (not after %v), want %s (%v)", got, back.NotAfter, want, id.NotAfter)
	}
	k, err := NewKeeper(func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	if !k.Adopt(back) || k.Current() != back {
		t.Fatal("a fresh identity was not adopted")
	}
	late, err := NewKeeper(func() time.Time { return now.Add(certLifetime - time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	if late.Adopt(back) {
		t.Error("an identity about to expire was adopted")
	}
	if _, err := ParseIdentityPEM([]byte("not pem")); err == nil {
		t.Error("garbage parsed as an identity")
	}
}
