// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"sync/atomic"

	"github.com/pion/srtp/v3"
)

// SRTP state that must outlive the process for a restarted relay (or a
// standby) to go on with the same keys: per SSRC, the rollover counter of
// SRTP and the index of SRTCP. The stage that runs the context notes them
// as it goes (on the worker; nothing per packet beyond a compare unless the
// sequence wraps) and the session layer reads them for the call's state.

const trackedSSRCs = 4

type rocSlot struct {
	used   atomic.Bool
	ssrc   atomic.Uint32
	roc    atomic.Uint32
	seq    uint16 // the worker's own: the last sequence number seen
	srtcp  atomic.Bool
	srtcpI atomic.Uint32
}

// rocTracker follows the SSRCs one stage sees.
type rocTracker struct {
	slots [trackedSSRCs]rocSlot
	next  int // the slot reused next when all are taken (the worker's)
}

func (t *rocTracker) slot(ssrc uint32) (*rocSlot, bool) {
	for i := range t.slots {
		if s := &t.slots[i]; s.used.Load() && s.ssrc.Load() == ssrc {
			return s, false
		}
	}
	for i := range t.slots {
		if s := &t.slots[i]; !s.used.Load() {
			s.ssrc.Store(ssrc)
			s.used.Store(true)
			return s, true
		}
	}
	s := &t.slots[t.next]
	t.next = (t.next + 1) % trackedSSRCs
	s.ssrc.Store(ssrc)
	s.srtcp.Store(false)
	return s, true
}

// noteRTP records the rollover counter of ssrc when it is new or its
// sequence number wrapped.
func (t *rocTracker) noteRTP(ctx *srtp.Context, ssrc uint32, seq uint16) {
	s, fresh := t.slot(ssrc)
	if fresh || seq < s.seq {
		if roc, ok := ctx.ROC(ssrc); ok {
			s.roc.Store(roc)
		}
	}
	s.seq = seq
}

// noteRTCP records the SRTCP index of ssrc.
func (t *rocTracker) noteRTCP(ctx *srtp.Context, ssrc uint32) {
	s, _ := t.slot(ssrc)
	if i, ok := ctx.Index(ssrc); ok {
		s.srtcpI.Store(i)
		s.srtcp.Store(true)
	}
}

// State is the rollover counters (and SRTCP indexes, with the SRTCP bit
// 1<<32 set) by SSRC.
func (t *rocTracker) state() map[uint32]uint32 {
	out := map[uint32]uint32{}
	for i := range t.slots {
		if s := &t.slots[i]; s.used.Load() {
			out[s.ssrc.Load()] = s.roc.Load()
		}
	}
	return out
}

// indexes are the SRTCP indexes by SSRC.
func (t *rocTracker) indexes() map[uint32]uint32 {
	out := map[uint32]uint32{}
	for i := range t.slots {
		if s := &t.slots[i]; s.used.Load() && s.srtcp.Load() {
			out[s.ssrc.Load()] = s.srtcpI.Load()
		}
	}
	return out
}

// srtcpMargin is how far a restored SRTCP index jumps ahead of the saved
// one: the state may be a few reports old, and a receiver drops an index it
// has seen.
const srtcpMargin = 64

// ROCs are the SRTP rollover counters of the SSRCs the relay protected.
func (pr *Protect) ROCs() map[uint32]uint32 { return pr.track.state() }

// SRTCPIndexes are the SRTCP indexes the relay used, by SSRC.
func (pr *Protect) SRTCPIndexes() map[uint32]uint32 { return pr.track.indexes() }

// SetROCs restores rollover counters (and SRTCP indexes, ahead by a margin)
// after SetKeys, before any packet.
func (pr *Protect) SetROCs(rocs, srtcp map[uint32]uint32) {
	ctx := pr.ctx.Load()
	if ctx == nil {
		return
	}
	for ssrc, roc := range rocs {
		ctx.SetROC(ssrc, roc)
	}
	for ssrc, i := range srtcp {
		ctx.SetIndex(ssrc, i+srtcpMargin)
	}
}

// ROCs are the SRTP rollover counters of the SSRCs the party sent.
func (u *Unprotect) ROCs() map[uint32]uint32 { return u.track.state() }

// SetROCs restores the party's rollover counters after SetKeys.
func (u *Unprotect) SetROCs(rocs map[uint32]uint32) {
	ctx := u.ctx.Load()
	if ctx == nil {
		return
	}
	for ssrc, roc := range rocs {
		ctx.SetROC(ssrc, roc)
	}
}
