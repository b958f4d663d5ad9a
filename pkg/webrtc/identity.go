// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"context"
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
	"encoding/pem"
	"fmt"
	"hash"
	"log/slog"
	"math/big"
	"strings"
	"sync/atomic"
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

// renewAhead is how long before expiry a certificate is replaced.
const renewAhead = 7 * 24 * time.Hour

// Keeper holds the relay's current identity and replaces it ahead of
// expiry. Handshakes in progress keep the certificate they started with;
// SDP written from then on carries the new fingerprint.
type Keeper struct {
	cur atomic.Pointer[Identity]
	now func() time.Time
}

// NewKeeper generates the first identity; now is the clock (nil: time.Now).
func NewKeeper(now func() time.Time) (*Keeper, error) {
	if now == nil {
		now = time.Now
	}
	id, err := NewIdentity(now())
	if err != nil {
		return nil, err
	}
	k := &Keeper{now: now}
	k.cur.Store(id)
	return k, nil
}

// Current is the identity to use now.
func (k *Keeper) Current() *Identity { return k.cur.Load() }

// Renew replaces the identity when it expires within renewAhead; it reports
// whether it did.
func (k *Keeper) Renew() (bool, error) {
	if k.now().Add(renewAhead).Before(k.cur.Load().NotAfter) {
		return false, nil
	}
	id, err := NewIdentity(k.now())
	if err != nil {
		return false, err
	}
	k.cur.Store(id)
	return true, nil
}

// Run checks hourly until ctx ends.
func (k *Keeper) Run(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if renewed, err := k.Renew(); err != nil {
				log.Error("renew the DTLS certificate", "error", err)
			} else if renewed {
				log.Info("DTLS certificate renewed", "not_after", k.Current().NotAfter)
			}
		}
	}
}

// MarshalPEM encodes the certificate and its private key, for the relayd
// that continues this one's calls: a restarted or standby relay that keeps
// the identity keeps the fingerprint its SDP already promised, so a
// re-INVITE after the takeover needs no new handshake.
func (id *Identity) MarshalPEM() ([]byte, error) {
	key, err := x509.MarshalPKCS8PrivateKey(id.Cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("encode DTLS key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})...), nil
}

// ParseIdentityPEM reads what MarshalPEM wrote.
func ParseIdentityPEM(b []byte) (*Identity, error) {
	cert, err := tls.X509KeyPair(b, b)
	if err != nil {
		return nil, fmt.Errorf("DTLS identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("DTLS identity: %w", err)
	}
	return &Identity{Cert: cert, NotAfter: leaf.NotAfter, der: cert.Certificate[0]}, nil
}

// Adopt makes id current unless it expires within the renewal margin (a
// fresh one is kept then); it reports whether it did.
func (k *Keeper) Adopt(id *Identity) bool {
	if !k.now().Add(renewAhead).Before(id.NotAfter) {
		return false
	}
	k.cur.Store(id)
	return true
}
