// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"

	"github.com/relayd/relayd/pkg/media"
)

// peerKeys runs the far end of a DTLS-SRTP handshake on c with pion/dtls,
// as a browser does, and returns what it exported.
func peerHandshake(t *testing.T, c *net.UDPConn, relay net.Addr, client bool, id *Identity,
	relayFP string, profiles ...dtls.SRTPProtectionProfile) (srtp.Config, error) {
	t.Helper()
	if len(profiles) == 0 {
		profiles = []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		f, _ := ParseFingerprint("sha-256 " + relayFP)
		if len(raw) == 0 || !f.Matches(raw[0]) {
			return ErrFingerprintMismatch
		}
		return nil
	}
	var conn *dtls.Conn
	var err error
	if client {
		conn, err = dtls.ClientWithOptions(c, relay, dtls.WithCertificates(id.Cert),
			dtls.WithSRTPProtectionProfiles(profiles...), dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify), dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret))
	} else {
		conn, err = dtls.ServerWithOptions(c, relay, dtls.WithCertificates(id.Cert),
			dtls.WithSRTPProtectionProfiles(profiles...), dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify), dtls.WithClientAuth(dtls.RequireAnyClientCert),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret))
	}
	if err != nil {
		return srtp.Config{}, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		return srtp.Config{}, err
	}
	prof, _ := conn.SelectedSRTPProtectionProfile()
	state, _ := conn.ConnectionState()
	cfg := srtp.Config{Profile: srtp.ProtectionProfile(prof)}
	return cfg, cfg.ExtractSessionKeysFromDTLS(&state, client)
}

func TestDTLS(t *testing.T) {
	relayID, err := NewIdentity(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	relayFP, _ := relayID.Fingerprint("sha-256")
	for _, tc := range []struct {
		name     string
		role     Role
		profiles []dtls.SRTPProtectionProfile
		wrongFP  bool
	}{
		{"relay passive, browser-like client", Server, nil, false},
		{"relay active, peer server", Client, nil, false},
		{"incumbent-style client CM-80 only", Server, []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_80}, false},
		{"CM-32 only", Server, []dtls.SRTPProtectionProfile{dtls.SRTP_AES128_CM_HMAC_SHA1_32}, false},
		{"AES-256-GCM", Client, []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_256_GCM}, false},
		{"certificate not the SDP's", Server, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			s := relaySocket(t, e, e.NewGroup())
			peer := peerSocket(t)
			peerID, _ := NewIdentity(time.Now())
			peerFP, _ := peerID.Fingerprint("sha-256")
			if tc.wrongFP {
				other, _ := NewIdentity(time.Now())
				peerFP, _ = other.Fingerprint("sha-256")
			}
			var c Counters
			var mu sync.Mutex
			var local, remote Keys
			got := make(chan struct{})
			d, err := NewDTLS(DTLSConfig{Identity: relayID, Role: tc.role, Remote: Fingerprint{Hash: "sha-256", Value: peerFP},
				Stream: s, Counters: &c, OnKeys: func(l, r Keys) {
					mu.Lock()
					local, remote = l, r
					mu.Unlock()
					close(got)
				}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Close)
			s.Configure(media.StreamConfig{Peer: addrOf(peer), Handlers: []media.Stage{d}})
			if tc.role == Client {
				d.StartClient(net.UDPAddrFromAddrPort(addrOf(peer)))
			}
			cfg, err := peerHandshake(t, peer, net.UDPAddrFromAddrPort(s.LocalAddr()), tc.role == Server, peerID, relayFP, tc.profiles...)
			if tc.wrongFP {
				t.Logf("peer: %v; relay state %d", err, d.state.Load())
				waitFor(t, "handshake failure counted", func() bool { return c.DTLSFailures.Load() == 1 })
				if d.Connected() {
					t.Fatal("connected to a peer whose certificate is not the SDP's")
				}
				return
			}
			if err != nil {
				t.Fatalf("peer handshake: %v", err)
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no keys exported")
			}
			mu.Lock()
			defer mu.Unlock()
			if !bytes.Equal(local.Key, cfg.Keys.RemoteMasterKey) || !bytes.Equal(local.Salt, cfg.Keys.RemoteMasterSalt) ||
				!bytes.Equal(remote.Key, cfg.Keys.LocalMasterKey) || !bytes.Equal(remote.Salt, cfg.Keys.LocalMasterSalt) {
				t.Error("exported keys do not pair with the peer's")
			}
			if local.Suite.Profile != cfg.Profile {
				t.Errorf("profile %v, peer %v", local.Suite.Profile, cfg.Profile)
			}
			if len(tc.profiles) == 0 && tc.role == Server && cfg.Profile != srtp.ProtectionProfileAeadAes128Gcm {
				t.Errorf("as server the relay picked %v from the client's GCM-128 and CM-80", cfg.Profile)
			}
			// The keys are handed over just before the handshake is
			// counted and the state says connected.
			waitFor(t, "handshake counted", func() bool { return c.DTLSHandshakes.Load() == 1 && d.Connected() })
		})
	}
}
