// SPDX-License-Identifier: Apache-2.0

package sdes

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func TestFormatParseRoundTrip(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			s, err := Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			k, err := NewKey(s)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(Format(7, k))
			if err != nil {
				t.Fatalf("Parse(Format) = %v", err)
			}
			if c.Tag != 7 || !c.Key.Equal(k) {
				t.Errorf("round trip: tag %d, key %x/%x; want 7, %x/%x", c.Tag, c.Key.Key, c.Key.Salt, k.Key, k.Salt)
			}
		})
	}
}

func TestParse(t *testing.T) {
	// 30 bytes 0x00..0x1d, with and without base64 padding (the
	// incumbent strips it unless asked to pad).
	const key30 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
	tests := []struct {
		name, in string
		tag      int
		suite    string
		err      error
	}{
		{"RFC 4568 example form", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|", 1, "AES_CM_128_HMAC_SHA1_80", nil},
		{"session parameters", "2 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + " UNENCRYPTED_SRTCP", 2, "AES_CM_128_HMAC_SHA1_32", nil},
		{"lifetime", "3 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31", 3, "AES_CM_128_HMAC_SHA1_80", nil},
		{"second key ignored", "4 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30, 4, "AES_CM_128_HMAC_SHA1_80", nil},
		{"lower case suite", "5 aes_cm_128_hmac_sha1_80 inline:" + key30, 5, "AES_CM_128_HMAC_SHA1_80", nil},
		{"GCM 28 bytes unpadded", "1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw", 1, "AEAD_AES_128_GCM", nil},
		{"GCM 28 bytes padded", "1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==", 1, "AEAD_AES_128_GCM", nil},
		{"MKI", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4", 0, "", ErrBadCrypto},
		{"wrong key size", "1 AEAD_AES_128_GCM inline:" + key30, 0, "", ErrBadCrypto},
		{"not base64", "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", 0, "", ErrBadCrypto},
		{"no inline", "1 AES_CM_128_HMAC_SHA1_80 uri:http://x", 0, "", ErrBadCrypto},
		{"F8", "1 F8_128_HMAC_SHA1_80 inline:" + key30, 0, "", ErrUnknownSuite},
		{"bad tag", "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, 0, "", ErrBadCrypto},
		{"too short", "1 AES_CM_128_HMAC_SHA1_80", 0, "", ErrBadCrypto},
		{"empty", "", 0, "", ErrBadCrypto},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Errorf("Parse = %+v, %v; want %v", c, err, tc.err)
				}
				return
			}
			if err != nil || c.Tag != tc.tag || c.Key.Suite.Name != tc.suite {
				t.Fatalf("Parse = %+v, %v; want tag %d suite %s", c, err, tc.tag, tc.suite)
			}
			if c.Key.Key[0] != 0 || c.Key.Salt[0] != byte(c.Key.Suite.KeyLen) {
				t.Errorf("key and salt split wrong: %x | %x", c.Key.Key, c.Key.Salt)
			}
		})
	}
}

// TestContexts protects and unprotects a packet with contexts made from the
// same key, and fails to with another key: what the generator relies on to
// tell a relay that encrypted with its announced key from one that did not.
func TestContexts(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			s, _ := Lookup(name)
			k, _ := NewKey(s)
			other, _ := NewKey(s)
			tx, err := k.Context()
			if err != nil {
				t.Fatal(err)
			}
			plain := make([]byte, 172, 172+MaxTagLen)
			plain[0], plain[1], plain[11] = 0x80, 8, 42
			for i := 12; i < len(plain); i++ {
				plain[i] = byte(i)
			}
			want := append([]byte(nil), plain...)
			var h rtp.Header
			enc, err := tx.EncryptRTP(plain, plain, &h)
			if err != nil {
				t.Fatal(err)
			}
			if len(enc) != len(want)+s.TagLen || &enc[0] != &plain[0] {
				t.Errorf("encrypted %d bytes (in place: %v), want %d in place", len(enc), &enc[0] == &plain[0], len(want)+s.TagLen)
			}
			if bytes.Equal(enc[12:len(want)], want[12:]) {
				t.Errorf("payload not encrypted")
			}
			wrong, _ := other.Context()
			if _, err := wrong.DecryptRTP(nil, append([]byte(nil), enc...), &h); err == nil {
				t.Errorf("another key authenticated the packet")
			}
			rx, _ := k.Context()
			dec, err := rx.DecryptRTP(enc, enc, &h)
			if err != nil || !bytes.Equal(dec, want) {
				t.Errorf("decrypt = %v, equal %v", err, bytes.Equal(dec, want))
			}
		})
	}
}

// FuzzParse feeds arbitrary a=crypto values, as a relay's answer could
// carry them: never a panic, and an accepted line has key material of the
// suite's size that formats back to an equal key.
func FuzzParse(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^31")
	f.Add("1 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|1:4")
	f.Fuzz(func(t *testing.T, v string) {
		c, err := Parse(v)
		if err != nil {
			if !errors.Is(err, ErrBadCrypto) && !errors.Is(err, ErrUnknownSuite) {
				t.Errorf("error %v is neither ErrBadCrypto nor ErrUnknownSuite", err)
			}
			return
		}
		if len(c.Key.Key) != c.Key.Suite.KeyLen || len(c.Key.Salt) != c.Key.Suite.SaltLen {
			t.Fatalf("accepted key %x salt %x for %s", c.Key.Key, c.Key.Salt, c.Key.Suite.Name)
		}
		again, err := Parse(Format(c.Tag, c.Key))
		if err != nil || !again.Key.Equal(c.Key) || again.Tag != c.Tag {
			t.Errorf("re-parse of %q: %+v, %v", Format(c.Tag, c.Key), again, err)
		}
	})
}
