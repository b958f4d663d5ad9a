// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/relayd/relayd/pkg/media"
)

// replayWindow is the SRTP/SRTCP replay window in packets: well above what
// reordering on a real path produces, as libsrtp's default of 128.
const replayWindow = 1024

func newContext(k Keys, rx bool) (*srtp.Context, error) {
	var opts []srtp.ContextOption
	if rx {
		opts = append(opts, srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow))
	}
	if len(k.MKI) > 0 {
		opts = append(opts, srtp.MasterKeyIndicator(k.MKI))
	}
	if k.UnencryptedSRTP {
		opts = append(opts, srtp.SRTPNoEncryption())
	}
	if k.UnencryptedSRTCP {
		opts = append(opts, srtp.SRTCPNoEncryption())
	}
	ctx, err := srtp.CreateContext(k.Key, k.Salt, k.Suite.Profile, opts...)
	if err != nil {
		return nil, fmt.Errorf("SRTP context for %s: %w", k.Suite.Name, err)
	}
	return ctx, nil
}

// Unprotect is the handler stage that authenticates and decrypts the SRTP
// and SRTCP a party sends, in place, before the source checks; what does
// not authenticate is dropped and counted. A source is learned from an
// authenticated packet only: an unlatched stream latches the first one.
// Until keys are set (a DTLS handshake still running) SRTP is dropped.
type Unprotect struct {
	ctx   atomic.Pointer[srtp.Context]
	track rocTracker
	min   atomic.Uint64 // shortest SRTP (low 32 bits) and SRTCP (high) packet
	c     *Counters
	hdr   rtp.Header // reused: one worker runs the stage
	rtcpH rtcp.Header
}

// NewUnprotect returns the stage counting into c.
func NewUnprotect(c *Counters) *Unprotect { return &Unprotect{c: c} }

// SetKeys installs the party's keys (a new handshake or re-INVITE replaces
// them; the replay state starts afresh with them).
func (u *Unprotect) SetKeys(k Keys) error {
	ctx, err := newContext(k, true)
	if err != nil {
		return err
	}
	r, c := overhead(k)
	u.min.Store(uint64(r) | uint64(c)<<32)
	u.ctx.Store(ctx)
	return nil
}

// Ready reports whether keys are installed.
func (u *Unprotect) Ready() bool { return u.ctx.Load() != nil }

// Kernel is false: the kernel path cannot authenticate SRTP.
func (*Unprotect) Kernel() bool { return false }

// Handle decrypts p in place.
func (u *Unprotect) Handle(p *media.Packet) media.Verdict {
	if p.Kind != media.KindRTP && p.Kind != media.KindRTCP {
		if p.Kind == media.KindOther {
			u.c.SRTPMalformed.Add(1)
			return media.Drop
		}
		return media.Continue // STUN and DTLS are their own handlers'
	}
	ctx := u.ctx.Load()
	if ctx == nil {
		u.c.SRTPNoKeys.Add(1)
		return media.Drop
	}
	minLen := u.min.Load()
	if p.Kind == media.KindRTCP {
		minLen >>= 32
	}
	if len(p.Data) < int(uint32(minLen)) {
		u.c.SRTPMalformed.Add(1)
		return media.Drop
	}
	var out []byte
	var err error
	if p.Kind == media.KindRTP {
		out, err = ctx.DecryptRTP(p.Data[:0], p.Data, &u.hdr)
	} else {
		out, err = ctx.DecryptRTCP(p.Data[:0], p.Data, &u.rtcpH)
	}
	if err != nil {
		u.c.count(err)
		return media.Drop
	}
	if p.Kind == media.KindRTP {
		u.track.noteRTP(ctx, u.hdr.SSRC, u.hdr.SequenceNumber)
	}
	p.Data = out
	// Authenticated: proof enough that the source holds the keys.
	p.Stream.LatchIfUnlatched(p.Source)
	return media.Continue
}

// count files a failed unprotect under its reason. pion/srtp exports the
// authentication failures; the length is checked before (malformed), so what
// else it refuses is a replayed or too old index (its duplicate error is not
// exported).
func (c *Counters) count(err error) {
	switch {
	case errors.Is(err, srtp.ErrFailedToVerifyAuthTag), errors.Is(err, srtp.ErrMKINotFound):
		c.SRTPAuthFailed.Add(1)
	default:
		c.SRTPReplayed.Add(1)
	}
}

// overhead is what SRTP adds to an RTP packet and SRTCP to an RTCP one for
// suite s (tag, MKI, the SRTCP index): the least a protected packet carries
// beyond its header.
func overhead(k Keys) (rtpMin, rtcpMin int) {
	tag := 10
	switch k.Suite.Profile {
	case srtp.ProtectionProfileAes128CmHmacSha1_32, srtp.ProtectionProfileAes256CmHmacSha1_32,
		srtp.ProtectionProfileNullHmacSha1_32:
		tag = 4
	case srtp.ProtectionProfileAeadAes128Gcm, srtp.ProtectionProfileAeadAes256Gcm:
		tag = 16
	}
	rtcpTag := tag
	if tag == 4 {
		rtcpTag = 10 // SRTCP always carries the 80-bit tag with the _32 suites
	}
	return 12 + tag + len(k.MKI), 8 + 4 + rtcpTag + len(k.MKI)
}

// Protect is the egress stage that encrypts RTP and RTCP in place for the
// party of its stream. Until keys are set, packets towards the party are
// dropped: nothing leaves in clear on a leg that negotiated SRTP.
type Protect struct {
	ctx   atomic.Pointer[srtp.Context]
	track rocTracker
	c     *Counters
	hdr   rtp.Header
	rtcpH rtcp.Header
}

// NewProtect returns the stage counting into c.
func NewProtect(c *Counters) *Protect { return &Protect{c: c} }

// SetKeys installs the relay's keys towards the party.
func (pr *Protect) SetKeys(k Keys) error {
	ctx, err := newContext(k, false)
	if err != nil {
		return err
	}
	pr.ctx.Store(ctx)
	return nil
}

// Ready reports whether keys are installed.
func (pr *Protect) Ready() bool { return pr.ctx.Load() != nil }

// Kernel is false: the kernel path cannot encrypt SRTP.
func (*Protect) Kernel() bool { return false }

// Handle encrypts p in place (the packet buffers leave room for the tag).
func (pr *Protect) Handle(p *media.Packet) media.Verdict {
	if p.Kind != media.KindRTP && p.Kind != media.KindRTCP {
		pr.c.SRTPProtectError.Add(1)
		return media.Drop
	}
	ctx := pr.ctx.Load()
	if ctx == nil {
		pr.c.SRTPNoKeys.Add(1)
		return media.Drop
	}
	var out []byte
	var err error
	if p.Kind == media.KindRTP {
		out, err = ctx.EncryptRTP(p.Data[:0], p.Data, &pr.hdr)
	} else {
		out, err = ctx.EncryptRTCP(p.Data[:0], p.Data, &pr.rtcpH)
	}
	if err != nil {
		pr.c.SRTPProtectError.Add(1)
		return media.Drop
	}
	if p.Kind == media.KindRTP {
		pr.track.noteRTP(ctx, pr.hdr.SSRC, pr.hdr.SequenceNumber)
	} else if len(p.Data) >= 8 {
		pr.track.noteRTCP(ctx, binary.BigEndian.Uint32(p.Data[4:8]))
	}
	p.Data = out
	return media.Continue
}
