// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // a=fingerprint hash a peer may still use; not for new signatures
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"time"
)

// certLifetime is how long the relay's DTLS certificate is valid; the
// incumbent uses 30 days and generates a new one ahead of expiry.
const certLifetime = 30 * 24 * time.Hour

// Identity is the relay's DTLS certificate: self-signed (DTLS-SRTP
// authenticates by the fingerprint in the SDP, not by a CA), ECDSA P-256.
type Identity struct {
	Cert tls.Certificate
	// NotAfter is when the certificate expires.
	NotAfter time.Time
	der      []byte
}

// NewIdentity generates a certificate valid from now.
func NewIdentity(now time.Time) (*Identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate DTLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, fmt.Errorf("draw certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "relayd"},
		NotBefore:             now.Add(-time.Hour), // peers' clocks differ
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create DTLS certificate: %w", err)
	}
	return &Identity{Cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		NotAfter: tmpl.NotAfter, der: der}, nil
}

// Fingerprint is the certificate's a=fingerprint value for hash ("sha-256"
// by default; sha-1, sha-224, sha-384 and sha-512 for peers that ask).
func (id *Identity) Fingerprint(hashName string) (string, error) {
	return fingerprintOf(hashName, id.der)
}

// Fingerprint is a peer's a=fingerprint: the hash function and the
// certificate digest it announced.
type Fingerprint struct {
	Hash  string // lower case, e.g. "sha-256"
	Value string // upper-case hex pairs separated by colons
}

// ParseFingerprint reads an a=fingerprint value ("sha-256 AB:CD:...").
func ParseFingerprint(v string) (Fingerprint, error) {
	h, val, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return Fingerprint{}, fmt.Errorf("%q: %w", v, ErrBadFingerprint)
	}
	f := Fingerprint{Hash: strings.ToLower(h), Value: strings.ToUpper(strings.TrimSpace(val))}
	newHash := hashFor(f.Hash)
	if newHash == nil {
		return Fingerprint{}, fmt.Errorf("hash %q: %w", h, ErrBadFingerprint)
	}
	if raw, err := hex.DecodeString(strings.ReplaceAll(f.Value, ":", "")); err != nil || len(raw) != newHash().Size() {
		return Fingerprint{}, fmt.Errorf("%q: %w", v, ErrBadFingerprint)
	}
	return f, nil
}

// String is the a=fingerprint value.
func (f Fingerprint) String() string { return f.Hash + " " + f.Value }

// Matches reports whether der (a peer's leaf certificate) is the one f names.
func (f Fingerprint) Matches(der []byte) bool {
	got, err := fingerprintOf(f.Hash, der)
	return err == nil && got == f.Value
}

func hashFor(name string) func() hash.Hash {
	switch name {
	case "sha-1":
		return sha1.New
	case "sha-224":
		return sha256.New224
	case "sha-256":
		return sha256.New
	case "sha-384":
		return sha512.New384
	case "sha-512":
		return sha512.New
	}
	return nil
}

func fingerprintOf(hashName string, der []byte) (string, error) {
	newHash := hashFor(strings.ToLower(hashName))
	if newHash == nil {
		return "", fmt.Errorf("hash %q: %w", hashName, ErrBadFingerprint)
	}
	h := newHash()
	h.Write(der)
	sum := h.Sum(nil)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", x)
	}
	return b.String(), nil
}
