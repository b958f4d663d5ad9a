// SPDX-License-Identifier: Apache-2.0

package session

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	"github.com/relayd/relayd/pkg/lograte"
	"github.com/relayd/relayd/pkg/ports"
	"github.com/relayd/relayd/pkg/recording"
	"github.com/relayd/relayd/pkg/webrtc"
)

// Interface is one configured address of a logical interface. Several entries
// may share a name (one per address family).
type Interface struct {
	Name       string
	Local      netip.Addr
	Advertised netip.Addr
}

// Config is what the manager needs from relayd's configuration.
type Config struct {
	Interfaces       []Interface // first is the default
	PortMin, PortMax int
	Timeout          time.Duration
	SilentTimeout    time.Duration
	OfferTimeout     time.Duration
	FinalTimeout     time.Duration // 0 = off
	DeleteDelay      time.Duration
	TOS              int
	MaxSessions      int // -1 = unlimited
	EndpointLearning string
	Logger           *slog.Logger
	// Media is the forwarding plane; nil runs signalling only (sockets are
	// allocated and bound but carry nothing).
	Media MediaPlane
	// Identity holds the relay's DTLS certificate; nil offers no DTLS-SRTP.
	Identity *webrtc.Keeper
	// FingerprintHash is the hash of the a=fingerprint written ("" is
	// sha-256).
	FingerprintHash string
	// Recorder records calls (recording-dir); nil: recording is off and
	// record-call is answered with a warning.
	Recorder *recording.Recorder
	// Codecs says which codecs the relay can transcode; nil transcodes
	// none (codec options that need it are answered with a warning).
	Codecs codecs.Capability
	// Transcoders builds the bridges of transcoded media (transcode.Pool);
	// nil leaves negotiated transcoding undone, so Codecs must be nil too.
	Transcoders Transcoders
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnCallEnd, when set, is told about every call that ends (teardown
	// notices). It is called from the expiry loop and from signalling, so it
	// must not block.
	OnCallEnd func(CallEnd)
	// OnChange, when set, is told the call-id of every call whose state
	// changed by signalling (offer, answer, delete) or that ended, so that
	// a state store can save it. Called with no lock held; must not block.
	OnChange func(callID string)
}

// ifaceAddr is one bindable address of a logical interface with its pool.
type ifaceAddr struct {
	name       string
	local      netip.Addr
	advertised netip.Addr
	pool       *ports.Pool
}

// Manager holds every call. Its lock guards the call table and counters; each
// call has its own lock for signalling on it.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	lim    *lograte.Limiter // lines a proxy's request can cause, one per request
	now    func() time.Time
	ifaces map[string][]*ifaceAddr // logical name -> addresses
	order  []*ifaceAddr            // configuration order, for statistics
	def    string                  // default logical interface name
	start  time.Time
	id     string // instance id for loop-protect

	mu     sync.Mutex
	calls  map[string]*Call
	due    dueHeap // calls by the time they could end (expiry.go)
	totals totals
	// rates are per-second deltas of the relayed counters, updated by Expire.
	rates, prev struct{ packets, bytes, errors uint64 }

	adm admin // run-time limits, call origins, duration stats (admin.go)
	// handingOver is set when this relayd stops and leaves its calls to
	// the next (HandOver): nothing ends them any more.
	handingOver bool
}

type totals struct {
	managed, rejected                                  uint64
	timeout, silentTimeout, offerTimeout, finalTimeout uint64
	regularTerminated, forcedTerminated                uint64
	relayedPackets, relayedBytes, relayedErrors        uint64
	relayedPacketsKernel, relayedBytesKernel           uint64
	callDurationTotal                                  time.Duration
	endedCalls                                         uint64
	zeroWayStreams, oneWayStreams                      uint64
	security                                           webrtc.Snapshot // of ended calls
}

// NewManager builds the port pools (one per distinct local address) and the
// interface table.
func NewManager(cfg Config) (*Manager, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, fmt.Errorf("session manager: %w", ErrNoInterface)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	m := &Manager{
		cfg:    cfg,
		log:    log.With("component", "session"),
		lim:    lograte.New(log.With("component", "session"), lograte.Config{}),
		now:    now,
		ifaces: map[string][]*ifaceAddr{},
		def:    cfg.Interfaces[0].Name,
		calls:  map[string]*Call{},
	}
	m.start = now()
	m.id = randAlnum(12)
	pools := map[netip.Addr]*ports.Pool{}
	for _, in := range cfg.Interfaces {
		pool := pools[in.Local]
		if pool == nil {
			p, err := ports.NewPool(in.Local, cfg.PortMin, cfg.PortMax)
			if err != nil {
				return nil, fmt.Errorf("interface %s: %w", in.Name, err)
			}
			pool, pools[in.Local] = p, p
		}
		adv := in.Advertised
		if !adv.IsValid() {
			adv = in.Local
		}
		ia := &ifaceAddr{name: in.Name, local: in.Local, advertised: adv, pool: pool}
		m.ifaces[in.Name] = append(m.ifaces[in.Name], ia)
		m.order = append(m.order, ia)
	}
	return m, nil
}

// pick chooses the address of logical interface name in family fam (4, 6 or 0
// for "any"). Unknown names fall back to the default interface, as SIP proxies
// send direction names that a small deployment may not configure.
func (m *Manager) pick(name string, fam int) *ifaceAddr {
	addrs, ok := m.ifaces[name]
	if !ok {
		addrs = m.ifaces[m.def]
	}
	for _, a := range addrs {
		if fam == 0 || familyOf(a.local) == fam {
			return a
		}
	}
	// The interface has no address of that family: bridge through another
	// interface's address of the wanted family before giving up on the family.
	for _, a := range m.order {
		if familyOf(a.local) == fam {
			return a
		}
	}
	return addrs[0]
}

func (m *Manager) knownInterface(name string) bool {
	_, ok := m.ifaces[name]
	return ok
}

func familyOf(a netip.Addr) int {
	if a.Is4() || a.Is4In6() {
		return 4
	}
	if a.Is6() {
		return 6
	}
	return 0
}

// lookup returns the call with id, or nil.
func (m *Manager) lookup(id string) *Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[id]
}

// lookupOrCreate returns the call, creating it if create is set and the
// session limit allows it.
func (m *Manager) lookupOrCreate(id string) (*Call, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.calls[id]; c != nil {
		return c, false, nil
	}
	if m.cfg.MaxSessions >= 0 && len(m.calls) >= m.cfg.MaxSessions {
		m.totals.rejected++
		return nil, false, ErrSessionLimit
	}
	c := newCall(m, id)
	m.calls[id] = c
	m.totals.managed++
	if m.cfg.OfferTimeout > 0 {
		c.due = c.lastSignal.Add(m.cfg.OfferTimeout)
		heap.Push(&m.due, c)
	}
	return c, true, nil
}

// forget removes c from the table (its resources are released by the caller).
func (m *Manager) forget(c *Call, reason endReason) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.calls[c.id] != c {
		return
	}
	delete(m.calls, c.id)
	m.unschedule(c)
	switch reason {
	case endTimeout:
		m.totals.timeout++
	case endSilentTimeout:
		m.totals.silentTimeout++
	case endOfferTimeout:
		m.totals.offerTimeout++
	case endFinalTimeout:
		m.totals.finalTimeout++
	case endDeleted:
		m.totals.regularTerminated++
	case endForced:
		m.totals.forcedTerminated++
	case endRejected:
		// A call that never got going (setup failed) is not a managed session.
		m.totals.managed--
		m.totals.rejected++
		return
	}
	m.totals.endedCalls++
	m.totals.callDurationTotal += m.now().Sub(c.created)
}

// List returns up to limit call-ids (all when limit <= 0), oldest first.
func (m *Manager) List(limit int) []string {
	m.mu.Lock()
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	sort.Slice(calls, func(i, j int) bool { return calls[i].created.Before(calls[j].created) })
	if limit > 0 && len(calls) > limit {
		calls = calls[:limit]
	}
	ids := make([]string, len(calls))
	for i, c := range calls {
		ids[i] = c.id
	}
	return ids
}

// Run expires calls (delete-delay, timeouts) once a second until ctx is done,
// then releases every call.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.Close()
			return
		case <-t.C:
			m.Expire()
		}
	}
}

// HandOver stops the manager without ending its calls: another relayd
// continues them from their saved state (and the kernel keeps forwarding
// them meanwhile). Expiry stops; Close and the end of Run leave the calls
// be — their sockets close with the media plane or the process. Snapshots
// keep working, for the last write of every call.
func (m *Manager) HandOver() {
	m.mu.Lock()
	m.handingOver = true
	m.mu.Unlock()
}

// Close ends every call and releases its ports (nothing after HandOver).
func (m *Manager) Close() {
	m.mu.Lock()
	if m.handingOver {
		m.mu.Unlock()
		return
	}
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	for _, c := range calls {
		c.end(endForced)
	}
}

// changed tells the state store that call id changed.
func (m *Manager) changed(id string) {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(id)
	}
}

func (m *Manager) instance() string { return m.id }

// fingerprint is the relay's a=fingerprint value now.
func (m *Manager) fingerprint() (string, error) {
	h := m.cfg.FingerprintHash
	if h == "" {
		h = "sha-256"
	}
	v, err := m.identity().Fingerprint(h)
	return h + " " + v, err
}

// identity is the relay's DTLS certificate now, nil without one.
func (m *Manager) identity() *webrtc.Identity {
	if m.cfg.Identity == nil {
		return nil
	}
	return m.cfg.Identity.Current()
}
