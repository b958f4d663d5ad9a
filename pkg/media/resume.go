// SPDX-License-Identifier: Apache-2.0

package media

import (
	"net/netip"
	"sync/atomic"
)

// Learned is what endpoint learning has found on a stream: what a relay that
// restarts, or a standby that takes the call over, resumes from instead of
// learning again (and instead of forwarding to an unproven source meanwhile).
type Learned struct {
	Src     netip.AddrPort // the latched (or best candidate) source
	Dest    netip.AddrPort // where the party's packets go
	Latched bool
}

// Learned reports the stream's learning state now.
func (s *Stream) Learned() Learned {
	st := s.state.Load()
	l := Learned{Src: st.src, Latched: st.latched}
	if st.destSA != nil {
		l.Dest = st.dest
	}
	return l
}

// Resume installs a learning state saved by Learned, after Configure: the
// source latched before the restart stays latched (no new learning window is
// needed for it), the destination stays where it was.
func (s *Stream) Resume(l Learned) {
	if !l.Src.IsValid() && !l.Dest.IsValid() {
		return
	}
	for {
		st := s.state.Load()
		ns := st.clone()
		if l.Src.IsValid() {
			ns.src, ns.rank, ns.latched = l.Src, rankOf(l.Src, st.cfg.peer), l.Latched
		}
		if l.Dest.IsValid() {
			ns.setDest(l.Dest, 0)
		}
		if s.state.CompareAndSwap(st, ns) {
			s.learned(st, ns)
			return
		}
	}
}

// CounterState is a stream's received and sent counters.
type CounterState struct {
	InPackets, InBytes, OutPackets, OutBytes uint64
}

// Counters reports the stream's counters for saving.
func (s *Stream) Counters() CounterState {
	return CounterState{
		InPackets: atomic.LoadUint64(&s.in.Packets), InBytes: atomic.LoadUint64(&s.in.Bytes),
		OutPackets: atomic.LoadUint64(&s.out.Packets), OutBytes: atomic.LoadUint64(&s.out.Bytes),
	}
}

// AddCounters adds saved counters to the stream's (a restored stream starts
// from what it had counted before the restart).
func (s *Stream) AddCounters(c CounterState) {
	atomic.AddUint64(&s.in.Packets, c.InPackets)
	atomic.AddUint64(&s.in.Bytes, c.InBytes)
	atomic.AddUint64(&s.out.Packets, c.OutPackets)
	atomic.AddUint64(&s.out.Bytes, c.OutBytes)
}
