// SPDX-License-Identifier: Apache-2.0

package session

import (
	"errors"
	"fmt"
	"time"

	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/ports"
)

// Foreign calls are what a standby relay holds of the calls another relay
// owns, as the shared store replicates them: the same parties, keys and
// learned endpoints, on the very ports (bound on this node's addresses of
// the same logical interfaces, so that a floating address moving here finds
// them open). A foreign call forwards whatever reaches it, but it never
// times out, is not saved by this node (OnChange is not told about it) and
// counts as foreign, not own, in statistics and against max-sessions.
//
// A foreign call becomes own — taken over — on its first signalling (offer,
// answer, delete: the proxy sent it here, so this node now serves it), on
// its first media when ActiveSwitchover is set, or for all calls at once by
// TakeOverAll (the operator, a VRRP notify script). From then on it is an
// ordinary call of this node: it times out, its changes are saved.

// takeover reasons, for logs.
const (
	byMedia    = "media"
	bySignal   = "signalling"
	byOperator = "operator"
)

// foreignState is what a foreign call keeps until it is taken over.
type foreignState struct {
	// counters are the owner's counts per local socket: added to the
	// streams on takeover, not before, so that packets reaching this node
	// show as counters moving.
	counters map[socketKey]mplane.CounterState
	// seen is the sum of packets the call's sockets had received here
	// when its state last came in.
	seen uint64
	// node is the relay that owns the call, as its record says.
	node string
	// recording is the owner's recording state ("", "on", "paused"):
	// this relay records the call from its takeover.
	recording string
}

// Foreign takes in the state of a call another relay owns: a call new here
// is created foreign (its ports claimed); a foreign call's state is replaced
// by the new one, keeping the sockets that stay; an own call becomes foreign
// (the other relay took it over: see the package's HA notes). Nothing is
// saved and no hook is told.
func (m *Manager) Foreign(cs CallState) error {
	if cs.Version != stateVersion {
		return fmt.Errorf("call %s: version %d: %w", cs.CallID, cs.Version, ErrStateVersion)
	}
	err := m.foreign(cs)
	if errors.Is(err, ports.ErrInUse) && m.dropForeignOn(cs) > 0 {
		// The owner gave those ports to this call: the foreign calls that
		// held them here are gone there, their deletes still on the way.
		err = m.foreign(cs)
	}
	return err
}

func (m *Manager) foreign(cs CallState) error {
	for {
		m.mu.Lock()
		c := m.calls[cs.CallID]
		if c == nil {
			c = newCall(m, cs.CallID)
			c.foreign.Store(true)
			m.calls[cs.CallID] = c
			m.foreignN++
			m.mu.Unlock()
			c.mu.Lock()
			err := c.restore(cs)
			if err == nil {
				c.noteForeign(cs)
			}
			c.mu.Unlock()
			if err != nil {
				c.end(endDropped)
				return fmt.Errorf("foreign call %s: %w", cs.CallID, err)
			}
			if cs.Origin.IsValid() {
				m.NoteOrigin(cs.CallID, cs.Origin)
			}
			return nil
		}
		m.mu.Unlock()
		c.mu.Lock()
		if c.ended {
			c.mu.Unlock()
			continue // lost a race with its end: start over
		}
		wasOwn := !c.foreign.Load()
		if wasOwn && !cs.Saved.After(c.ownSince) {
			// Written before this relay took the call over (a write of
			// the old owner still on its way): not a takeover by another.
			// That write replaced this relay's record in the store, so it
			// is written again: the old owner, reading it, lets go of the
			// call instead of both relays keeping it as their own.
			c.mu.Unlock()
			m.changed(cs.CallID)
			return fmt.Errorf("call %s saved %s by %q: %w", cs.CallID, cs.Saved.Format(time.RFC3339Nano), cs.Node, ErrStaleState)
		}
		if wasOwn {
			c.demote()
			m.log.Warn("call taken over by another relay: it is foreign here now", "call-id", c.id, "node", cs.Node)
		}
		err := c.replace(cs)
		if err == nil {
			c.noteForeign(cs)
		}
		c.mu.Unlock()
		if err != nil {
			c.end(endDropped)
			return fmt.Errorf("foreign call %s: %w", cs.CallID, err)
		}
		return nil
	}
}

// noteForeign records what the call needs until its takeover; c.mu is held.
func (c *Call) noteForeign(cs CallState) {
	fs := &foreignState{counters: map[socketKey]mplane.CounterState{}, node: cs.Node, recording: cs.Recording}
	for _, ms := range cs.Monologues {
		for _, md := range ms.Medias {
			for _, set := range md.Sets {
				for i, sk := range set.Sockets {
					fs.counters[socketKey{set.Iface, set.Port + i}] = sk.Counters
				}
			}
		}
	}
	fs.seen = c.receivedHere()
	c.fstate = fs
}

// receivedHere sums what the call's sockets received in this process;
// c.mu is held.
func (c *Call) receivedHere() uint64 {
	var n uint64
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			for _, ps := range md.sets {
				for _, st := range ps.streams {
					in, _ := st.received()
					n += in.Packets
				}
			}
		}
	}
	return n
}

// demote makes an own call foreign; c.mu is held.
func (c *Call) demote() {
	if c.rec != nil {
		c.stopRecording("the call is another relay's now", false)
	}
	c.foreign.Store(true)
	c.m.mu.Lock()
	c.m.foreignN++
	c.m.unschedule(c)
	c.m.mu.Unlock()
}

// replace puts cs in place of the foreign call's state: sockets on the same
// address and port stay open (and keep their place in the fast path), the
// others are released, new ones claimed. c.mu is held.
func (c *Call) replace(cs CallState) error {
	c.reuse = map[reuseKey]*portSet{}
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			md.sec.close()
			for _, ps := range md.sets {
				c.reuse[reuseKey{ps.addr, ps.alloc.Port, len(ps.streams)}] = ps
			}
		}
	}
	c.monos, c.tags = nil, map[string]*monologue{}
	err := c.restore(cs)
	for _, ps := range c.reuse {
		c.releaseSet(ps)
	}
	c.reuse = nil
	return err
}

// socketKey names a socket across relays: the owner's address of the
// logical interface may differ from this relay's.
type socketKey struct {
	iface string
	port  int
}

// reuseKey names a port set that a replaced state may keep.
type reuseKey struct {
	addr *ifaceAddr
	port int
	n    int
}

// takeReused returns the open set on ia's port, if the replaced state had
// it; c.mu is held.
func (c *Call) takeReused(ia *ifaceAddr, port, n int) *portSet {
	k := reuseKey{ia, port, n}
	ps := c.reuse[k]
	if ps != nil {
		delete(c.reuse, k)
		ps.streams = ps.streams[:len(ps.streams):len(ps.streams)]
	}
	return ps
}

// takeOver makes a foreign call own; c.mu is held. The caller tells the
// store (m.changed) once c.mu is released.
func (c *Call) takeOver(why string) {
	if !c.foreign.Load() {
		return
	}
	c.foreign.Store(false)
	c.ownSince = time.Now()
	if fs := c.fstate; fs != nil {
		for _, ml := range c.monos {
			for _, md := range ml.medias {
				for _, ps := range md.sets {
					for _, st := range ps.streams {
						if st.ms != nil {
							st.ms.AddCounters(fs.counters[socketKey{ps.addr.name, int(st.local.Port())}])
						}
					}
				}
			}
		}
	}
	owner := ""
	if fs := c.fstate; fs != nil {
		owner = fs.node
		c.continueRecording(fs.recording)
	}
	c.fstate = nil
	c.m.mu.Lock()
	c.m.foreignN--
	c.m.totals.managed++
	c.m.mu.Unlock()
	c.reschedule()
	c.m.log.Info("call taken over", "call-id", c.id, "by", why, "from", owner)
}

// TakeOverAll makes every foreign call own — this relay is the active one
// now — and returns how many there were.
func (m *Manager) TakeOverAll() int {
	n := 0
	for _, c := range m.foreignCalls() {
		c.mu.Lock()
		was := c.foreign.Load() && !c.ended
		if was {
			c.takeOver(byOperator)
		}
		c.mu.Unlock()
		if was {
			m.changed(c.id)
			n++
		}
	}
	return n
}

// StandbyAll makes every own call foreign — another relay is the active one
// now and will keep their records — and returns how many there were. The
// calls keep their ports and state until the other relay's records replace
// or remove them.
func (m *Manager) StandbyAll() int {
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		if !c.foreign.Load() {
			calls = append(calls, c)
		}
	}
	m.mu.Unlock()
	n := 0
	for _, c := range calls {
		c.mu.Lock()
		if !c.ended && !c.foreign.Load() {
			cs := c.state()
			c.demote()
			c.noteForeign(cs)
			n++
		}
		c.mu.Unlock()
	}
	return n
}

// DropForeign removes the foreign call id (its owner ended it); an own call
// is left alone. It reports whether a foreign call was dropped.
func (m *Manager) DropForeign(id string) bool {
	c := m.lookup(id)
	if c == nil || !c.foreign.Load() {
		return false
	}
	c.end(endDropped)
	return true
}

// IsForeign reports whether id is a live foreign call.
func (m *Manager) IsForeign(id string) bool {
	c := m.lookup(id)
	return c != nil && c.foreign.Load()
}

// ListForeign returns the foreign calls' ids.
func (m *Manager) ListForeign() []string {
	calls := m.foreignCalls()
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.id
	}
	return ids
}

func (m *Manager) foreignCalls() []*Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	calls := make([]*Call, 0, m.foreignN)
	for _, c := range m.calls {
		if c.foreign.Load() {
			calls = append(calls, c)
		}
	}
	return calls
}

// switchover takes over, with ActiveSwitchover, the foreign calls whose
// sockets received packets since their state came in: the floating address
// (or the traffic) has moved here. The media plane forwarded those packets
// already; this only makes the call own. Run calls it every second.
func (m *Manager) switchover() int {
	if !m.cfg.ActiveSwitchover {
		return 0
	}
	n := 0
	for _, c := range m.foreignCalls() {
		c.mu.Lock()
		moved := !c.ended && c.foreign.Load() && c.fstate != nil && c.receivedHere() > c.fstate.seen
		if moved {
			c.takeOver(byMedia)
		}
		c.mu.Unlock()
		if moved {
			m.changed(c.id)
			n++
		}
	}
	return n
}

// dropForeignOn drops the foreign calls (never own ones) holding a port
// cs's sets need, and reports how many it dropped.
func (m *Manager) dropForeignOn(cs CallState) int {
	type slot struct {
		ia   *ifaceAddr
		port int
	}
	want := map[slot]bool{}
	for _, ms := range cs.Monologues {
		for _, md := range ms.Medias {
			for _, ss := range md.Sets {
				ia := m.addrOf(ss.Iface, ss.Local)
				if ia == nil {
					ia = m.sameNamed(ss.Iface, familyOf(ss.Local))
				}
				if ia != nil {
					want[slot{ia, ss.Port}] = true
				}
			}
		}
	}
	n := 0
	for _, c := range m.foreignCalls() {
		if c.id == cs.CallID {
			continue
		}
		c.mu.Lock()
		holds := false
		for _, ml := range c.monos {
			for _, md := range ml.medias {
				for _, ps := range md.sets {
					holds = holds || want[slot{ps.addr, ps.alloc.Port}]
				}
			}
		}
		c.mu.Unlock()
		if holds && c.foreign.Load() {
			m.log.Info("foreign call dropped: its owner gave its ports to another call", "call-id", c.id, "for", cs.CallID)
			c.end(endDropped)
			n++
		}
	}
	return n
}
