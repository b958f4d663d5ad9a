// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/relayd/relayd/pkg/media"
)

func rtpPacket(seq uint16, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload)+64)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], 0xfeedbeef)
	return append(b, payload...)
}

func rtcpRR() []byte {
	b := make([]byte, 8, 128)
	b[0], b[1], b[3] = 0x80, 201, 1
	binary.BigEndian.PutUint32(b[4:], 0xfeedbeef)
	return b
}

// packet wraps b as a worker would hand it to a stage.
func packet(s *media.Stream, b []byte) *media.Packet {
	p := &media.Packet{Data: b, Source: netip.MustParseAddrPort("192.0.2.1:4000"), Stream: s}
	switch {
	case b[1] >= 192 && b[1] <= 223:
		p.Kind = media.KindRTCP
	default:
		p.Kind = media.KindRTP
	}
	return p
}

// Every suite: what Protect encrypts, an independent pion context decrypts,
// what pion encrypts, Unprotect decrypts; tampering and replays are
// refused and counted.
func TestSRTPStages(t *testing.T) {
	e := newEngine(t)
	s := relaySocket(t, e, e.NewGroup())
	for _, suite := range Suites() {
		t.Run(suite.Name, func(t *testing.T) {
			var c Counters
			k, err := NewKeys(suite)
			if err != nil {
				t.Fatal(err)
			}
			pr, un := NewProtect(&c), NewUnprotect(&c)
			if v := pr.Handle(packet(s, rtpPacket(1, []byte("early")))); v != media.Drop || c.SRTPNoKeys.Load() != 1 {
				t.Fatalf("protect without keys: verdict %v, no-keys %d", v, c.SRTPNoKeys.Load())
			}
			if err := pr.SetKeys(k); err != nil {
				t.Fatal(err)
			}
			if err := un.SetKeys(k); err != nil {
				t.Fatal(err)
			}
			peer, err := srtp.CreateContext(k.Key, k.Salt, suite.Profile)
			if err != nil {
				t.Fatal(err)
			}
			payload := []byte("twenty ms of audio, more or less")
			for seq := uint16(100); seq < 105; seq++ {
				p := packet(s, rtpPacket(seq, payload))
				if v := pr.Handle(p); v != media.Continue {
					t.Fatalf("protect: %v", v)
				}
				var h rtp.Header
				plain, err := peer.DecryptRTP(nil, p.Data, &h)
				if err != nil {
					t.Fatalf("peer decrypt of seq %d: %v", seq, err)
				}
				if !bytes.Equal(plain[12:], payload) {
					t.Fatalf("peer got %q", plain[12:])
				}
			}
			peerTx, _ := srtp.CreateContext(k.Key, k.Salt, suite.Profile)
			enc, err := peerTx.EncryptRTP(nil, rtpPacket(7, payload), nil)
			if err != nil {
				t.Fatal(err)
			}
			buf := append(make([]byte, 0, len(enc)+64), enc...)
			p := packet(s, buf)
			if v := un.Handle(p); v != media.Continue || !bytes.Equal(p.Data[12:], payload) {
				t.Fatalf("unprotect: %v %q", v, p.Data)
			}
			// The same packet again is a replay.
			p = packet(s, append(make([]byte, 0, len(enc)+64), enc...))
			if v := un.Handle(p); v != media.Drop || c.SRTPReplayed.Load() != 1 {
				t.Errorf("replay: verdict %v, replayed %d", v, c.SRTPReplayed.Load())
			}
			// A flipped bit fails authentication.
			enc2, _ := peerTx.EncryptRTP(nil, rtpPacket(8, payload), nil)
			enc2[len(enc2)-1] ^= 1
			if v := un.Handle(packet(s, enc2)); v != media.Drop || c.SRTPAuthFailed.Load() != 1 {
				t.Errorf("tampered: verdict %v, auth failed %d", v, c.SRTPAuthFailed.Load())
			}
			// Too short to carry a tag.
			if v := un.Handle(packet(s, rtpPacket(9, nil))); v != media.Drop || c.SRTPMalformed.Load() != 1 {
				t.Errorf("short: verdict %v, malformed %d", v, c.SRTPMalformed.Load())
			}
			// SRTCP both ways.
			rr := packet(s, rtcpRR())
			if v := pr.Handle(rr); v != media.Continue {
				t.Fatalf("protect RTCP: %v", v)
			}
			if _, err := peer.DecryptRTCP(nil, rr.Data, nil); err != nil {
				t.Fatalf("peer SRTCP decrypt: %v", err)
			}
			encRR, err := peerTx.EncryptRTCP(nil, rtcpRR(), nil)
			if err != nil {
				t.Fatal(err)
			}
			in := packet(s, append(make([]byte, 0, len(encRR)+64), encRR...))
			if v := un.Handle(in); v != media.Continue || !bytes.Equal(in.Data, rtcpRR()) {
				t.Fatalf("unprotect RTCP: %v % x", v, in.Data)
			}
		})
	}
}

// The per-packet stages allocate nothing.
func BenchmarkSRTP(b *testing.B) { benchSRTP(b, 1) }

func newStreamForBench(b *testing.B) *media.Stream {
	e, err := media.NewEngine(media.Config{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	t := &testing.T{}
	return relaySocket(t, e, e.NewGroup())
}

// BenchmarkSRTPStreams is BenchmarkSRTP over many streams in turn, as a
// relay's worker meets them: each packet finds its stream's keys and
// replay state cold in the cache.
func BenchmarkSRTPStreams(b *testing.B) { benchSRTP(b, 600) } // 300 calls, one SRTP leg each way

// benchSRTP protects and unprotects a packet per iteration, taking the
// streams' contexts in turn. New keys per run: the replay check refuses a
// sequence number a previous run (-count) already used.
func benchSRTP(b *testing.B, streams int) {
	s := newStreamForBench(b)
	for _, name := range []string{"AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"} {
		suite, _ := SuiteByName(name)
		buf := make([]byte, 0, 2048)
		p := &media.Packet{Stream: s, Kind: media.KindRTP, Source: netip.MustParseAddrPort("192.0.2.1:4000")}
		plain := rtpPacket(0, make([]byte, 160))
		b.Run(name, func(b *testing.B) {
			prs, uns := make([]*Protect, streams), make([]*Unprotect, streams)
			var c Counters
			for i := range prs {
				k, _ := NewKeys(suite)
				prs[i], uns[i] = NewProtect(&c), NewUnprotect(&c)
				_ = prs[i].SetKeys(k)
				_ = uns[i].SetKeys(k)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				binary.BigEndian.PutUint16(plain[2:], uint16(i/streams))
				p.Data = append(buf[:0], plain...)
				j := i % streams
				if prs[j].Handle(p) != media.Continue || uns[j].Handle(p) != media.Continue {
					b.Fatal("round trip failed")
				}
			}
		})
	}
}
