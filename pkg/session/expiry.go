// SPDX-License-Identifier: Apache-2.0

package session

import (
	"container/heap"
	"time"
)

// Expiry is by deadline: every call is in a heap ordered by the earliest time
// it could end (delete-delay, final-timeout, offer-timeout, or the time its
// freshest media would be silent for too long). Expire looks only at the calls
// whose time has come; one that is still alive is put back with its new
// deadline, so a call carrying media is looked at about once per timeout, not
// once a second.

// dueHeap orders calls by due; each call knows its index (dueIdx, -1 when
// not in the heap). Guarded by Manager.mu.
type dueHeap []*Call

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }

func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].dueIdx, h[j].dueIdx = i, j
}

func (h *dueHeap) Push(x any) {
	c := x.(*Call)
	c.dueIdx = len(*h)
	*h = append(*h, c)
}

func (h *dueHeap) Pop() any {
	old := *h
	last := len(old) - 1
	c := old[last]
	old[last] = nil
	c.dueIdx = -1
	*h = old[:last]
	return c
}

// schedule makes sure c is looked at no later than at; an earlier time
// already planned stays.
func (m *Manager) schedule(c *Call, at time.Time) {
	if at.IsZero() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls[c.id] != c || c.foreign.Load() {
		return // ended, or foreign: its owner times it out
	}
	switch {
	case c.dueIdx < 0:
		c.due = at
		heap.Push(&m.due, c)
	case at.Before(c.due):
		c.due = at
		heap.Fix(&m.due, c.dueIdx)
	}
}

// unschedule takes c out of the heap; m.mu is held.
func (m *Manager) unschedule(c *Call) {
	if c.dueIdx >= 0 {
		heap.Remove(&m.due, c.dueIdx)
	}
}

// reschedule plans c's next look from its state now; c.mu is held.
func (c *Call) reschedule() {
	if _, ended, next := c.check(c.m.now()); !ended {
		c.m.schedule(c, next)
	}
}

// Expire ends the calls whose time is up; Run calls it every second.
func (m *Manager) Expire() {
	now := m.now()
	for {
		m.mu.Lock()
		if m.handingOver || len(m.due) == 0 || m.due[0].due.After(now) {
			m.mu.Unlock()
			break
		}
		c := heap.Pop(&m.due).(*Call)
		m.mu.Unlock()
		c.mu.Lock()
		reason, ended, next := c.check(now)
		gone := c.ended || c.foreign.Load()
		c.mu.Unlock()
		switch {
		case gone:
		case ended:
			c.end(reason)
		default:
			// Not before the next second: a deadline in the past (a clock
			// step) must not spin.
			m.schedule(c, later(next, now.Add(time.Second)))
		}
	}
	m.updateRates()
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// check tells whether the call's time is up and why, and otherwise when to
// look again (zero: only a signal can change that). As the reference does,
// each party's media is judged on its own: against silent-timeout when the
// party is not receiving (hold: sendonly, inactive, zero address), against
// timeout otherwise; one media still within its limit keeps the call.
// c.mu is held.
func (c *Call) check(now time.Time) (endReason, bool, time.Time) {
	cfg := c.m.limits() // admin.go: the operator may change timeouts at run time
	var final time.Time
	if cfg.FinalTimeout > 0 {
		final = c.created.Add(cfg.FinalTimeout)
		if !now.Before(final) {
			return endFinalTimeout, true, time.Time{}
		}
	}
	if !c.deleteAt.IsZero() {
		if !now.Before(c.deleteAt) {
			return endDeleted, true, time.Time{}
		}
		return 0, false, earliest(final, c.deleteAt)
	}
	if !c.answered {
		if cfg.OfferTimeout <= 0 {
			return 0, false, final
		}
		end := c.lastSignal.Add(cfg.OfferTimeout)
		if !now.Before(end) {
			return endOfferTimeout, true, time.Time{}
		}
		return 0, false, earliest(final, end)
	}
	if cfg.Media == nil {
		return 0, false, final // no media plane: nothing to measure liveness with
	}
	held := false
	var alive time.Time // the latest end of any media's limit
	judged := false
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			if md.rejected || len(md.sets) == 0 {
				continue
			}
			limit := cfg.Timeout
			if !receiving(md.direction) || md.sdpRTP.Addr().IsUnspecified() {
				limit, held = cfg.SilentTimeout, true
			}
			if limit <= 0 {
				return 0, false, final // this media never times out
			}
			judged = true
			if end := md.lastPacket(c.lastSignal).Add(limit); end.After(alive) {
				alive = end
			}
		}
	}
	if !judged {
		return 0, false, final
	}
	if now.Before(alive) {
		return 0, false, earliest(final, alive)
	}
	if held {
		return endSilentTimeout, true, time.Time{}
	}
	return endTimeout, true, time.Time{}
}

// earliest is the earlier of two times, a zero one meaning none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// updateRates turns the media plane's running totals into the per-second
// rates statistics report, without walking the calls.
func (m *Manager) updateRates() {
	if m.cfg.Media == nil {
		return
	}
	t := m.cfg.Media.Totals()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rates.packets = t.Packets - min(t.Packets, m.prev.packets)
	m.rates.bytes = t.Bytes - min(t.Bytes, m.prev.bytes)
	m.rates.errors = t.Dropped - min(t.Dropped, m.prev.errors)
	m.prev.packets, m.prev.bytes, m.prev.errors = t.Packets, t.Bytes, t.Dropped
}
