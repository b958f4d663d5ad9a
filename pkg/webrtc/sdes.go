// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// Suite is an SRTP crypto suite as SDES names it (RFC 4568, RFC 6188,
// RFC 7714) and as DTLS-SRTP negotiates it (its protection profile).
type Suite struct {
	Name    string
	Profile srtp.ProtectionProfile
	KeyLen  int
	SaltLen int
}

// Suites are the crypto suites this relay implements, strongest first: the
// order it offers them in (the incumbent's order, without the AES-192 and F8
// suites, which pion/srtp lacks, and without NULL ciphers, which it only
// accepts).
func Suites() []Suite {
	return []Suite{
		{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12},
		{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12},
		{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14},
		{"AES_256_CM_HMAC_SHA1_32", srtp.ProtectionProfileAes256CmHmacSha1_32, 32, 14},
		{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14},
		{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14},
	}
}

// acceptedOnly are suites accepted from a peer but never offered.
func acceptedOnly() []Suite {
	return []Suite{
		{"NULL_HMAC_SHA1_80", srtp.ProtectionProfileNullHmacSha1_80, 16, 14},
		{"NULL_HMAC_SHA1_32", srtp.ProtectionProfileNullHmacSha1_32, 16, 14},
	}
}

// SuiteByName finds a suite by its SDES name (case-insensitive).
func SuiteByName(name string) (Suite, error) {
	for _, s := range append(Suites(), acceptedOnly()...) {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("%q: %w", name, ErrUnknownSuite)
}

// SuiteByProfile finds the suite of a DTLS-SRTP protection profile.
func SuiteByProfile(p srtp.ProtectionProfile) (Suite, error) {
	for _, s := range append(Suites(), acceptedOnly()...) {
		if s.Profile == p {
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("profile %#04x: %w", uint16(p), ErrUnknownSuite)
}

// Keys are the master key and salt of one direction of an SRTP session.
type Keys struct {
	Suite Suite
	Key   []byte
	Salt  []byte
	MKI   []byte // master key identifier carried in each packet, if any
	// UnencryptedSRTP and UnencryptedSRTCP are the SDES session parameters
	// of the same names: authenticated, not encrypted.
	UnencryptedSRTP, UnencryptedSRTCP bool
}

// NewKeys draws fresh key material for s from crypto/rand.
func NewKeys(s Suite) (Keys, error) {
	b := make([]byte, s.KeyLen+s.SaltLen)
	if _, err := rand.Read(b); err != nil {
		return Keys{}, fmt.Errorf("draw SRTP keys: %w", err)
	}
	return Keys{Suite: s, Key: b[:s.KeyLen], Salt: b[s.KeyLen:]}, nil
}

// Crypto is one a=crypto attribute: a tag and the keys it offers.
type Crypto struct {
	Tag  int
	Keys Keys
}

// FormatCrypto writes the value of an a=crypto attribute (after "crypto:").
// pad keeps the base64 padding the incumbent strips by default (its
// pad-crypto flag).
func FormatCrypto(c Crypto, pad bool) string {
	enc := base64.RawStdEncoding
	if pad {
		enc = base64.StdEncoding
	}
	key := enc.EncodeToString(append(append([]byte(nil), c.Keys.Key...), c.Keys.Salt...))
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Tag))
	b.WriteByte(' ')
	b.WriteString(c.Keys.Suite.Name)
	b.WriteString(" inline:")
	b.WriteString(key)
	if len(c.Keys.MKI) > 0 {
		var v uint64
		for _, x := range c.Keys.MKI {
			v = v<<8 | uint64(x)
		}
		fmt.Fprintf(&b, "|%d:%d", v, len(c.Keys.MKI))
	}
	if c.Keys.UnencryptedSRTP {
		b.WriteString(" UNENCRYPTED_SRTP")
	}
	if c.Keys.UnencryptedSRTCP {
		b.WriteString(" UNENCRYPTED_SRTCP")
	}
	return b.String()
}

// ParseCrypto reads the value of an a=crypto attribute (after "crypto:"):
// "<tag> <suite> inline:<key||salt>[|lifetime][|MKI:length] [params]". A
// suite this relay does not implement is ErrUnknownSuite (the offer's other
// lines may still do); session parameters it cannot honour (KDR other than
// 0, UNAUTHENTICATED_SRTP, FEC) make the line unusable.
func ParseCrypto(v string) (Crypto, error) {
	fields := strings.Fields(v)
	if len(fields) < 3 {
		return Crypto{}, fmt.Errorf("%q: %w", v, ErrBadCrypto)
	}
	tag, err := strconv.Atoi(fields[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, fmt.Errorf("tag %q: %w", fields[0], ErrBadCrypto)
	}
	s, err := SuiteByName(fields[1])
	if err != nil {
		return Crypto{}, err
	}
	c := Crypto{Tag: tag, Keys: Keys{Suite: s}}
	// Several key parameters may follow, separated by ';': the first is
	// the one used (no key rollover with several master keys).
	param := strings.SplitN(fields[2], ";", 2)[0]
	inline, ok := strings.CutPrefix(param, "inline:")
	if !ok {
		return Crypto{}, fmt.Errorf("key method of %q: %w", param, ErrBadCrypto)
	}
	parts := strings.Split(inline, "|")
	raw, err := decodeKey(parts[0])
	if err != nil || len(raw) != s.KeyLen+s.SaltLen {
		return Crypto{}, fmt.Errorf("%s key of %d bytes, want %d: %w", s.Name, len(raw), s.KeyLen+s.SaltLen, ErrBadCrypto)
	}
	c.Keys.Key, c.Keys.Salt = raw[:s.KeyLen], raw[s.KeyLen:]
	for _, p := range parts[1:] {
		if v, l, ok := strings.Cut(p, ":"); ok { // MKI value:length
			n, err1 := strconv.ParseUint(v, 10, 64)
			size, err2 := strconv.Atoi(l)
			if err1 != nil || err2 != nil || size < 1 || size > 8 || (size < 8 && n >= 1<<(8*size)) {
				return Crypto{}, fmt.Errorf("MKI %q: %w", p, ErrBadCrypto)
			}
			mki := make([]byte, size)
			for i := size - 1; i >= 0; i-- {
				mki[i] = byte(n)
				n >>= 8
			}
			c.Keys.MKI = mki
			continue
		}
		// A lifetime (2^n or decimal): keys are never re-keyed here, so it
		// only has to be well formed.
		if !validLifetime(p) {
			return Crypto{}, fmt.Errorf("lifetime %q: %w", p, ErrBadCrypto)
		}
	}
	for _, sp := range fields[3:] {
		switch {
		case sp == "UNENCRYPTED_SRTP":
			c.Keys.UnencryptedSRTP = true
		case sp == "UNENCRYPTED_SRTCP":
			c.Keys.UnencryptedSRTCP = true
		case sp == "KDR=0":
		case strings.HasPrefix(sp, "WSH="):
			// A replay window size hint: the relay's own window is used.
		default:
			return Crypto{}, fmt.Errorf("session parameter %q not supported: %w", sp, ErrBadCrypto)
		}
	}
	return c, nil
}

func decodeKey(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func validLifetime(s string) bool {
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, err := strconv.Atoi(e)
		return err == nil && n > 0 && n <= 64
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return err == nil && n > 0
}
