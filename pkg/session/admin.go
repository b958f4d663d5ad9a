// SPDX-License-Identifier: Apache-2.0

package session

import (
	"container/heap"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the operator's side of the manager: the limits that may change
// while calls run (CLI `set`, SIGHUP), listing and terminating calls, and
// what every ended call reports (the CDR line and the CallEnd hook).

// Limits are the values an operator may change at run time. A change applies
// to the next expiry check and the next offer; running calls keep their
// ports and state.
type Limits struct {
	Timeout, SilentTimeout, OfferTimeout, FinalTimeout time.Duration
	DeleteDelay                                        time.Duration
	MaxSessions                                        int // -1 = unlimited, 0 = drain
}

// admin is the manager's run-time state for operations.
type admin struct {
	// live is the configuration the expiry check and delete read; nil until
	// the first change, meaning Manager.cfg. Each change publishes a new
	// copy, so readers never see a half-written one and need no lock.
	live atomic.Pointer[Config]

	mu     sync.Mutex
	origin map[*Call]netip.AddrPort // ng source of the request that created the call
	dur2   float64                  // sum of squared durations of ended calls, s²
	// MOS of ended calls that had one: sum, sum of squares, how many.
	mos, mos2  float64
	mosSamples uint64
}

// limits is the configuration to judge expiry and delete delays by.
func (m *Manager) limits() *Config {
	if c := m.adm.live.Load(); c != nil {
		return c
	}
	return &m.cfg
}

// Limits returns the limits in force.
func (m *Manager) Limits() Limits {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.limits()
	return Limits{Timeout: c.Timeout, SilentTimeout: c.SilentTimeout, OfferTimeout: c.OfferTimeout,
		FinalTimeout: c.FinalTimeout, DeleteDelay: c.DeleteDelay, MaxSessions: m.cfg.MaxSessions}
}

// SetLimits puts l in force. Durations must not be negative (0 turns a
// timeout off) and MaxSessions must be -1 or more; the caller validates.
func (m *Manager) SetLimits(l Limits) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// m.mu orders writers; readers of the published copy need no lock.
	c := *m.limits()
	c.Timeout, c.SilentTimeout, c.OfferTimeout, c.FinalTimeout = l.Timeout, l.SilentTimeout, l.OfferTimeout, l.FinalTimeout
	c.DeleteDelay = l.DeleteDelay
	m.adm.live.Store(&c)
	// MaxSessions is read under m.mu by lookupOrCreate, so it stays in cfg.
	m.cfg.MaxSessions = l.MaxSessions
	// Deadlines were planned under the old limits: every call is looked at
	// again on the next expiry tick, which plans it under the new ones.
	now := m.now()
	for _, call := range m.calls {
		call.due = now
		if call.dueIdx < 0 {
			call.dueIdx = len(m.due)
			m.due = append(m.due, call)
		}
	}
	heap.Init(&m.due)
}

// NoteOrigin records where the ng request that created the call came from
// (the CLI's "proxy" column, the b2b-url's %% substitution). The first
// address recorded for a call stays.
func (m *Manager) NoteOrigin(callID string, from netip.AddrPort) {
	c := m.lookup(callID)
	if c == nil || !from.IsValid() {
		return
	}
	// Checked under c.mu: end() marks the call ended under it before it
	// forgets the origin, so a call never leaves an entry behind.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	m.adm.mu.Lock()
	defer m.adm.mu.Unlock()
	if m.adm.origin == nil {
		m.adm.origin = map[*Call]netip.AddrPort{}
	}
	if _, ok := m.adm.origin[c]; !ok {
		m.adm.origin[c] = from
	}
}

func (m *Manager) originOf(c *Call) netip.AddrPort {
	m.adm.mu.Lock()
	defer m.adm.mu.Unlock()
	return m.adm.origin[c]
}

// SessionSummary is one call as the operator's list shows it.
type SessionSummary struct {
	CallID     string
	Created    time.Time
	LastSignal time.Time
	Deleting   bool           // a delete is scheduled (delete-delay)
	Origin     netip.AddrPort // ng source of the creating request; invalid if unknown
	TOS        int
	// IPv4 and IPv6 tell which address families the call's sockets use.
	IPv4, IPv6 bool
	// Foreign: another relay owns the call; this one holds it ready to
	// take over.
	Foreign bool
	Info    *CallInfo
}

// Sessions returns every call, oldest first.
func (m *Manager) Sessions() []SessionSummary {
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	out := make([]SessionSummary, 0, len(calls))
	for _, c := range calls {
		if s, ok := m.summary(c); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].CallID < out[j].CallID
	})
	return out
}

// Session returns one call.
func (m *Manager) Session(callID string) (SessionSummary, error) {
	c := m.lookup(callID)
	if c == nil {
		return SessionSummary{}, ErrUnknownCall
	}
	s, ok := m.summary(c)
	if !ok {
		return SessionSummary{}, ErrUnknownCall
	}
	return s, nil
}

func (m *Manager) summary(c *Call) (SessionSummary, bool) {
	origin := m.originOf(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return SessionSummary{}, false
	}
	s := SessionSummary{CallID: c.id, Created: c.created, LastSignal: c.lastSignal,
		Deleting: !c.deleteAt.IsZero(), Origin: origin, TOS: c.tos, Foreign: c.foreign.Load(), Info: c.info()}
	for _, t := range s.Info.Tags {
		for _, md := range t.Medias {
			for _, st := range md.Streams {
				if st.Local.Addr().Unmap().Is4() {
					s.IPv4 = true
				} else {
					s.IPv6 = true
				}
			}
		}
	}
	return s, true
}

// Terminate ends a call now, as the operator's `terminate` does: its ports
// are freed and it counts as force-terminated.
func (m *Manager) Terminate(callID string) error {
	c := m.lookup(callID)
	if c == nil {
		return ErrUnknownCall
	}
	c.end(endForced)
	return nil
}

// TerminateAll ends every call now and returns how many there were:
// own calls end (and their records go), foreign ones are dropped here
// only (their owner keeps them).
func (m *Manager) TerminateAll() int { return m.terminate(true, true) }

// TerminateOwn ends every own call now.
func (m *Manager) TerminateOwn() int { return m.terminate(true, false) }

// TerminateForeign drops every foreign call here; their owner keeps them,
// and its next record of one brings that one back.
func (m *Manager) TerminateForeign() int { return m.terminate(false, true) }

func (m *Manager) terminate(own, foreign bool) int {
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		if f := c.foreign.Load(); (f && foreign) || (!f && own) {
			calls = append(calls, c)
		}
	}
	m.mu.Unlock()
	for _, c := range calls {
		c.end(endForced)
	}
	return len(calls)
}

// MOSStats are the ended calls' MOS: the sum, the sum of squares and how
// many calls had one (the incumbent's mos_total, mos2_total and
// mos_samples_total).
func (m *Manager) MOSStats() (sum, sumSquares float64, samples uint64) {
	m.adm.mu.Lock()
	defer m.adm.mu.Unlock()
	return m.adm.mos, m.adm.mos2, m.adm.mosSamples
}

// DurationStats are the ended calls' durations: the sum and the sum of
// squares (the incumbent's call_duration_total and call_duration2_total).
func (m *Manager) DurationStats() (total time.Duration, sumSquares float64, ended uint64) {
	m.mu.Lock()
	total, ended = m.totals.callDurationTotal, m.totals.endedCalls
	m.mu.Unlock()
	m.adm.mu.Lock()
	defer m.adm.mu.Unlock()
	return total, m.adm.dur2, ended
}

// StdDev is the standard deviation of the ended calls' durations.
func StdDev(total time.Duration, sumSquares float64, n uint64) float64 {
	if n == 0 {
		return 0
	}
	mean := total.Seconds() / float64(n)
	v := sumSquares/float64(n) - mean*mean
	if v < 0 {
		return 0 // rounding
	}
	return math.Sqrt(v)
}

// CallEnd is what an ended call reports: the CDR line and the CallEnd hook
// (teardown notices) are made from it.
type CallEnd struct {
	CallID string
	// Reason is why the call ended: timeout, silent-timeout, offer-timeout,
	// final-timeout (media or signalling stopped), deleted (the proxy's
	// delete) or forced (operator, shutdown).
	Reason string
	// Timeout is set for the four timeout reasons: the SIP side does not
	// know the call is gone.
	Timeout bool
	Created time.Time
	Ended   time.Time
	// Dialogues are the (tag, peer tag) pairs of the call, the offerer's tag
	// first, each pair once.
	Dialogues [][2]string
	// Tags are every party's tag, in order of appearance.
	Tags []string
	// Origin is the ng source of the request that created the call.
	Origin                 netip.AddrPort
	Packets, Bytes, Errors uint64 // received by relayd over the call's life
	KernelPackets          uint64 // the part of Packets the fast path forwarded
	// MOS is the call's quality score (CallInfo.MOS), when there is one
	// (HasMOS).
	MOS    float64
	HasMOS bool
}

// Duration is how long the call lived.
func (e CallEnd) Duration() time.Duration { return e.Ended.Sub(e.Created) }

// endRecord captures, before the call's sockets are released, what its
// CallEnd needs; c.mu is held.
func (c *Call) endRecord(reason endReason) CallEnd {
	e := CallEnd{CallID: c.id, Reason: reason.String(), Created: c.created}
	switch reason {
	case endTimeout, endSilentTimeout, endOfferTimeout, endFinalTimeout:
		e.Timeout = true
	}
	live := c.liveCounters()
	e.Packets, e.Bytes, e.Errors, e.KernelPackets = live.packets, live.bytes, live.errors, live.kernelPackets
	seen := map[[2]string]bool{}
	info := c.info()
	e.MOS, e.HasMOS = info.MOS()
	for _, t := range info.Tags {
		if t.Tag == "" {
			continue
		}
		e.Tags = append(e.Tags, t.Tag)
		if t.InDialogueWith == "" {
			continue
		}
		pair := [2]string{t.Tag, t.InDialogueWith}
		if seen[pair] || seen[[2]string{pair[1], pair[0]}] {
			continue
		}
		seen[pair] = true
		e.Dialogues = append(e.Dialogues, pair)
	}
	return e
}

// ended runs after the call is gone from the table: the call's one log line
// (a CDR: why, how long, how much media), then the hook. It must not block:
// the expiry loop and signalling call it.
func (m *Manager) ended(c *Call, e CallEnd) {
	e.Ended = m.now()
	m.adm.mu.Lock()
	e.Origin = m.adm.origin[c]
	delete(m.adm.origin, c)
	if e.Reason != "rejected" {
		d := e.Duration().Seconds()
		m.adm.dur2 += d * d
	}
	if e.HasMOS {
		m.adm.mos += e.MOS
		m.adm.mos2 += e.MOS * e.MOS
		m.adm.mosSamples++
	}
	m.adm.mu.Unlock()
	if e.Reason == "rejected" {
		// Setup failed: the signalling reply already said why.
		m.log.Debug("call setup failed", "call-id", e.CallID)
	} else {
		mos := "n/a" // no RTP measured and no RTCP report
		if e.HasMOS {
			mos = strconv.FormatFloat(e.MOS, 'f', 1, 64)
		}
		m.log.Info("CDR", "call-id", e.CallID, "reason", e.Reason,
			"created", e.Created.UTC().Format(time.RFC3339), "duration", e.Duration().Round(time.Millisecond).Seconds(),
			"tags", slices.Clone(e.Tags), "packets", e.Packets, "bytes", e.Bytes, "errors", e.Errors,
			"kernel_packets", e.KernelPackets, "mos", mos)
	}
	if m.cfg.OnCallEnd != nil {
		m.cfg.OnCallEnd(e)
	}
}
