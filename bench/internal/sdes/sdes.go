// SPDX-License-Identifier: Apache-2.0

package sdes

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/srtp/v3"
)

// Suite is an SRTP crypto suite by its SDES name.
type Suite struct {
	Name    string
	Profile srtp.ProtectionProfile
	KeyLen  int
	SaltLen int
	// TagLen is what SRTP adds to every RTP packet (authentication tag).
	TagLen int
}

// suites are the suites both pion/srtp and the incumbent implement.
var suites = []Suite{
	{"AES_CM_128_HMAC_SHA1_80", srtp.ProtectionProfileAes128CmHmacSha1_80, 16, 14, 10},
	{"AES_CM_128_HMAC_SHA1_32", srtp.ProtectionProfileAes128CmHmacSha1_32, 16, 14, 4},
	{"AES_256_CM_HMAC_SHA1_80", srtp.ProtectionProfileAes256CmHmacSha1_80, 32, 14, 10},
	{"AEAD_AES_128_GCM", srtp.ProtectionProfileAeadAes128Gcm, 16, 12, 16},
	{"AEAD_AES_256_GCM", srtp.ProtectionProfileAeadAes256Gcm, 32, 12, 16},
}

// MaxTagLen is the most any suite adds to a packet.
const MaxTagLen = 16

// Names lists the suites the bench implements.
func Names() []string {
	out := make([]string, len(suites))
	for i, s := range suites {
		out[i] = s.Name
	}
	return out
}

// Lookup finds a suite by its SDES name (case-insensitive, as RFC 4568's
// grammar is not, but phones are lax).
func Lookup(name string) (Suite, error) {
	for _, s := range suites {
		if strings.EqualFold(s.Name, name) {
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("%w: %q (known: %s)", ErrUnknownSuite, name, strings.Join(Names(), ", "))
}

// Key is one direction's master key and salt.
type Key struct {
	Suite Suite
	Key   []byte
	Salt  []byte
}

// Equal reports whether two keys are the same material of the same suite.
func (k Key) Equal(o Key) bool {
	return k.Suite.Name == o.Suite.Name && bytes.Equal(k.Key, o.Key) && bytes.Equal(k.Salt, o.Salt)
}

// NewKey draws a fresh master key and salt from crypto/rand.
func NewKey(s Suite) (Key, error) {
	b := make([]byte, s.KeyLen+s.SaltLen)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("draw SRTP key: %w", err)
	}
	return Key{Suite: s, Key: b[:s.KeyLen], Salt: b[s.KeyLen:]}, nil
}

// Context makes a pion/srtp context for the key: one per direction of a
// call (it keeps the rollover counter of every SSRC it sees).
func (k Key) Context() (*srtp.Context, error) {
	c, err := srtp.CreateContext(k.Key, k.Salt, k.Suite.Profile)
	if err != nil {
		return nil, fmt.Errorf("SRTP context for %s: %w", k.Suite.Name, err)
	}
	return c, nil
}

// Format writes the value of an a=crypto attribute (what follows
// "a=crypto:"): tag, suite and the inline key, base64 with padding as
// RFC 4568 §6.1 writes it.
func Format(tag int, k Key) string {
	raw := append(append([]byte(nil), k.Key...), k.Salt...)
	return strconv.Itoa(tag) + " " + k.Suite.Name + " inline:" + base64.StdEncoding.EncodeToString(raw)
}

// Crypto is a parsed a=crypto attribute.
type Crypto struct {
	Tag int
	Key Key
}

// Parse reads the value of an a=crypto attribute: "<tag> <suite>
// inline:<key||salt>[|lifetime][|MKI:length][;inline:...] [params]". Only
// the first key parameter is used. The bench never sends an MKI, so an
// answer whose key carries one is unusable; a lifetime is accepted and
// ignored (no run lasts 2^31 packets), and so are the session parameters a
// relay may add.
func Parse(v string) (Crypto, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: %q", ErrBadCrypto, v)
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrBadCrypto, f[0])
	}
	s, err := Lookup(f[1])
	if err != nil {
		return Crypto{}, err
	}
	param, _, _ := strings.Cut(f[2], ";")
	inline, ok := strings.CutPrefix(param, "inline:")
	if !ok {
		return Crypto{}, fmt.Errorf("%w: key method of %q is not inline", ErrBadCrypto, param)
	}
	keyPart, rest, _ := strings.Cut(inline, "|")
	if strings.Contains(rest, ":") {
		return Crypto{}, fmt.Errorf("%w: an MKI (%q), which the bench does not send or expect", ErrBadCrypto, rest)
	}
	raw, err := base64.StdEncoding.DecodeString(keyPart)
	if err != nil {
		// The incumbent strips the padding unless told otherwise.
		raw, err = base64.RawStdEncoding.DecodeString(keyPart)
	}
	if err != nil || len(raw) != s.KeyLen+s.SaltLen {
		return Crypto{}, fmt.Errorf("%w: %s needs %d bytes of key and salt, got %d (%q)", ErrBadCrypto, s.Name, s.KeyLen+s.SaltLen, len(raw), keyPart)
	}
	return Crypto{Tag: tag, Key: Key{Suite: s, Key: raw[:s.KeyLen], Salt: raw[s.KeyLen:]}}, nil
}
