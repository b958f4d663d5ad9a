// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseCrypto(t *testing.T) {
	tests := []struct {
		in      string
		want    error
		suite   string
		mki     []byte
		unencry bool
	}{
		{"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:32", ErrBadCrypto, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4", nil, "AES_CM_128_HMAC_SHA1_80", []byte{0, 0, 0, 1}, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", nil, "AES_CM_128_HMAC_SHA1_80", nil, false},
		{"2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj UNENCRYPTED_SRTP", nil, "AES_CM_128_HMAC_SHA1_32", nil, true},
		{"3 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==", nil, "AEAD_AES_128_GCM", nil, false},
		{"3 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw", nil, "AEAD_AES_128_GCM", nil, false},
		{"1 F8_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", ErrUnknownSuite, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:dG9vIHNob3J0", ErrBadCrypto, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj KDR=3", ErrBadCrypto, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj UNAUTHENTICATED_SRTP", ErrBadCrypto, "", nil, false},
		{"x AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", ErrBadCrypto, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80 uri:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", ErrBadCrypto, "", nil, false},
		{"1 AES_CM_128_HMAC_SHA1_80", ErrBadCrypto, "", nil, false},
	}
	for i, tc := range tests {
		c, err := ParseCrypto(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("%d %q: error %v, want %v", i, tc.in, err, tc.want)
			continue
		}
		if err != nil {
			continue
		}
		if c.Keys.Suite.Name != tc.suite || !bytes.Equal(c.Keys.MKI, tc.mki) || c.Keys.UnencryptedSRTP != tc.unencry {
			t.Errorf("%d %q: got %+v", i, tc.in, c)
		}
	}
}

func TestCryptoRoundTrip(t *testing.T) {
	for _, s := range Suites() {
		for _, pad := range []bool{false, true} {
			k, err := NewKeys(s)
			if err != nil {
				t.Fatal(err)
			}
			v := FormatCrypto(Crypto{Tag: 7, Keys: k}, pad)
			if !pad && strings.Contains(v, "=") {
				t.Errorf("%s: padding without pad: %s", s.Name, v)
			}
			c, err := ParseCrypto(v)
			if err != nil {
				t.Fatalf("%s: %v", v, err)
			}
			if c.Tag != 7 || c.Keys.Suite != s || !bytes.Equal(c.Keys.Key, k.Key) || !bytes.Equal(c.Keys.Salt, k.Salt) {
				t.Errorf("%s: round trip gave %+v", v, c)
			}
		}
	}
}

func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4")
	f.Add("3 AEAD_AES_128_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw== UNENCRYPTED_SRTCP")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCrypto(s)
		if err != nil {
			return
		}
		if len(c.Keys.Key) != c.Keys.Suite.KeyLen || len(c.Keys.Salt) != c.Keys.Suite.SaltLen {
			t.Fatalf("%q: key %d salt %d for %s", s, len(c.Keys.Key), len(c.Keys.Salt), c.Keys.Suite.Name)
		}
		if _, err := ParseCrypto(FormatCrypto(c, false)); err != nil {
			t.Fatalf("%q formats to something unparsable: %v", s, err)
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add("sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if _, err := ParseFingerprint(fp.String()); err != nil {
			t.Fatalf("%q: %v", fp, err)
		}
	})
}
