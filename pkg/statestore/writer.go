// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// Source is where the Writer reads call states: the session manager.
// Snapshot and ListOwn see the calls this relay owns; a call another relay
// owns (foreign, IsForeign) is not this one's to write or delete.
type Source interface {
	Snapshot(callID string) (session.CallState, bool)
	ListOwn(limit int) []string
	IsForeign(callID string) bool
}

// generational is a backend that can tell it lost its records: Redis
// restarted without persistence has another run id.
type generational interface {
	Generation(ctx context.Context) (string, error)
}

// Defaults of WriterConfig.
const (
	DefaultSweep   = 2 * time.Second
	DefaultTimeout = 2 * time.Second
	maxBackoff     = 5 * time.Second
	minBackoff     = 100 * time.Millisecond
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	Backend Backend
	Source  Source
	// Sweep is how often every live call is looked at for changes the media
	// plane made on its own (learned endpoints, SRTP rollover counters);
	// only calls where those changed are written.
	Sweep time.Duration
	// Timeout bounds each backend operation.
	Timeout time.Duration
	// Refresh rewrites a record unchanged for this long (0: never): a
	// backend whose records expire (Redis) must see live calls again
	// before they do.
	Refresh time.Duration
	// Node names this relay in every record it writes (CallState.Node).
	Node   string
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Stats are the Writer's counters.
type Stats struct {
	Writes, Deletes, Failures uint64
	// Resyncs counts the times every call was written again: the backend
	// came back from failing, or lost its records (a restarted Redis).
	Resyncs uint64
	Pending int  // calls waiting to be written or deleted
	Healthy bool // the last backend operation succeeded
}

// Writer keeps the backend in step with the session manager.
type Writer struct {
	cfg WriterConfig
	log *slog.Logger

	mu    sync.Mutex
	dirty map[string]struct{}
	wake  chan struct{}

	// written holds, per call written, a digest of what the media plane
	// changes on its own and when it was written; only the Run goroutine
	// (or Flush, which callers run once it has stopped) touches it, and
	// generation.
	written map[string]written
	// generation is the backend's last seen generation ("" unknown);
	// recovered is set when a failing backend answered again.
	generation string
	recovered  bool

	writes, deletes, failures, resyncs atomic.Uint64
	unhealthy                          atomic.Bool
}

type written struct {
	digest uint64
	at     time.Time
}

// NewWriter returns a Writer; Run makes it write.
func NewWriter(cfg WriterConfig) *Writer {
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultSweep
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, log: log.With("component", "statestore", "store", cfg.Backend.String()),
		dirty: map[string]struct{}{}, wake: make(chan struct{}, 1), written: map[string]written{}}
}

// Changed marks callID to be written (or deleted, once it has ended). It
// never blocks: it is the session manager's OnChange.
func (w *Writer) Changed(callID string) {
	w.mu.Lock()
	w.dirty[callID] = struct{}{}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Stats reports the counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	pending := len(w.dirty)
	w.mu.Unlock()
	return Stats{Writes: w.writes.Load(), Deletes: w.deletes.Load(), Failures: w.failures.Load(),
		Resyncs: w.resyncs.Load(), Pending: pending, Healthy: !w.unhealthy.Load()}
}

// Run writes changes as they come and sweeps every Sweep, until ctx is
// done. A failing backend is retried with a growing pause (up to 5 s);
// nothing is dropped meanwhile, the calls stay marked.
func (w *Writer) Run(ctx context.Context) {
	sweep := time.NewTicker(w.cfg.Sweep)
	defer sweep.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := time.Duration(0)
	w.lostRecords(ctx) // learn the generation the records start in
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-sweep.C:
			if backoff == 0 {
				w.sweep(ctx)
			}
		}
		if err := w.drain(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			retry.Reset(backoff)
			// Changes keep arriving while the backend is down: they wait
			// for the retry instead of each trying it.
			w.waitRetry(ctx, retry)
			continue
		}
		backoff = 0
		if w.recovered {
			w.recovered = false
			// What the backend held while failing is unknown (a restarted
			// server may have come back empty): every call again, and the
			// generation they are in from now.
			w.lostRecords(ctx)
			w.resync("the store recovered")
		}
	}
}

// waitRetry waits out a retry pause, answering nothing but ctx.
func (w *Writer) waitRetry(ctx context.Context, retry *time.Timer) {
	select {
	case <-ctx.Done():
	case <-retry.C:
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// drain writes every marked call, stopping at the first failure (the
// backend is likely down: the rest stays marked for the retry).
func (w *Writer) drain(ctx context.Context) error {
	w.mu.Lock()
	ids := slices.Collect(maps.Keys(w.dirty))
	clear(w.dirty)
	w.mu.Unlock()
	for i, id := range ids {
		if err := w.save(ctx, id, true); err != nil {
			w.remark(ids[i:])
			return err
		}
	}
	return nil
}

func (w *Writer) remark(ids []string) {
	w.mu.Lock()
	for _, id := range ids {
		w.dirty[id] = struct{}{}
	}
	w.mu.Unlock()
}

// sweep writes the live calls whose media-plane state changed since their
// last write (or that are due for a refresh), and deletes records of calls
// that ended unseen. A backend that lost its records gets every call again.
func (w *Writer) sweep(ctx context.Context) {
	if w.lostRecords(ctx) {
		w.resync("the store lost its records (restarted empty)")
	}
	live := w.cfg.Source.ListOwn(0)
	for _, id := range live {
		if err := w.save(ctx, id, false); err != nil {
			w.Changed(id)
			return
		}
	}
	if len(w.written) > len(live) {
		alive := make(map[string]struct{}, len(live))
		for _, id := range live {
			alive[id] = struct{}{}
		}
		for id := range w.written {
			if _, ok := alive[id]; !ok {
				w.Changed(id)
			}
		}
	}
}

// lostRecords asks a generational backend whether it is still the one
// written to.
func (w *Writer) lostRecords(ctx context.Context) bool {
	g, ok := w.cfg.Backend.(generational)
	if !ok {
		return false
	}
	octx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	gen, err := g.Generation(octx)
	if err != nil {
		w.log.Debug("store generation unknown", "error", err)
		return false // the writes that follow find out
	}
	lost := w.generation != "" && gen != w.generation
	w.generation = gen
	return lost
}

// resync marks every live call to be written again.
func (w *Writer) resync(why string) {
	ids := w.cfg.Source.ListOwn(0)
	clear(w.written)
	w.resyncs.Add(1)
	w.log.Warn("writing every call again", "reason", why, "calls", len(ids))
	w.remark(ids)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// save writes callID's state (always with force, else only when its
// digest changed) or deletes its record when the call is gone.
func (w *Writer) save(ctx context.Context, callID string, force bool) error {
	cs, ok := w.cfg.Source.Snapshot(callID)
	octx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	if !ok {
		if w.cfg.Source.IsForeign(callID) {
			// Another relay owns the call now (it took it over, or this
			// one went standby): the record is its to keep.
			delete(w.written, callID)
			return nil
		}
		if err := w.cfg.Backend.Delete(octx, callID); err != nil {
			return w.failed(fmt.Errorf("delete: %w", err), callID)
		}
		delete(w.written, callID)
		w.deletes.Add(1)
		w.healthy()
		return nil
	}
	d := Digest(&cs)
	now := w.cfg.Now()
	if old, seen := w.written[callID]; !force && seen && old.digest == d &&
		(w.cfg.Refresh <= 0 || now.Sub(old.at) < w.cfg.Refresh) {
		return nil
	}
	cs.Node, cs.Saved = w.cfg.Node, time.Now()
	rec, err := Encode(&cs)
	if err != nil {
		// A state that cannot be encoded will not encode on a retry.
		w.log.Error("call state not saved", "call-id", callID, "error", err)
		return nil
	}
	if err := w.cfg.Backend.Put(octx, callID, rec); err != nil {
		return w.failed(fmt.Errorf("write: %w", err), callID)
	}
	w.written[callID] = written{digest: d, at: now}
	w.writes.Add(1)
	w.healthy()
	return nil
}

func (w *Writer) failed(err error, callID string) error {
	w.failures.Add(1)
	if w.unhealthy.CompareAndSwap(false, true) {
		w.log.Warn("call state store failing: calls go on, but a restart or a takeover would lose their changes until it recovers",
			"call-id", callID, "error", err)
	}
	return err
}

func (w *Writer) healthy() {
	if w.unhealthy.CompareAndSwap(true, false) {
		w.log.Info("call state store recovered", "pending", w.Stats().Pending)
		w.recovered = true
	}
}

// Flush writes every live call and every pending deletion now, counters
// included: the last thing a relayd that hands its calls over does. Run
// must have stopped.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	for _, id := range w.cfg.Source.ListOwn(0) {
		w.dirty[id] = struct{}{}
	}
	w.mu.Unlock()
	return w.drain(ctx)
}

// Encode is a call state's record.
func Encode(cs *session.CallState) ([]byte, error) {
	return json.Marshal(cs)
}

// Decode reads a record.
func Decode(rec []byte) (session.CallState, error) {
	var cs session.CallState
	if err := json.Unmarshal(rec, &cs); err != nil {
		return session.CallState{}, fmt.Errorf("decode call state: %w", err)
	}
	return cs, nil
}

// Digest sums what changes in a call's state without signalling: learned
// endpoints, the keys a DTLS handshake exported and SRTP rollover counters
// (packet counters are left out, or every sweep would write every call).
func Digest(cs *session.CallState) uint64 {
	h := fnv.New64a()
	var b [8]byte
	u64 := func(v uint64) { binary.LittleEndian.PutUint64(b[:], v); h.Write(b[:]) }
	str := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	rocs := func(m map[uint32]uint32) {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			u64(uint64(k)<<32 | uint64(m[k]))
		}
		u64(0)
	}
	for _, ml := range cs.Monologues {
		for _, md := range ml.Medias {
			for _, set := range md.Sets {
				for _, s := range set.Sockets {
					str(s.Src.String())
					str(s.Dest.String())
					if s.Latched {
						u64(1)
					} else {
						u64(0)
					}
				}
			}
			if sec := md.Security; sec != nil {
				rocs(sec.ProtectROC)
				rocs(sec.ProtectSRTCP)
				rocs(sec.UnprotectROC)
				// A DTLS handshake ends after the signalling that started
				// it: its keys must reach the store on their own.
				for _, k := range []*session.KeysJSON{sec.DTLSLocal, sec.DTLSRemote} {
					if k != nil {
						h.Write(k.Key)
						h.Write(k.Salt)
					}
					u64(0)
				}
			}
		}
	}
	return h.Sum64()
}

// Restorer takes saved calls back: the session manager.
type Restorer interface {
	Restore(cs session.CallState) error
}

// RestoreResult counts what Restore did.
type RestoreResult struct {
	Restored int // calls running again
	Foreign  int // calls of other relays, held foreign
	Failed   int // calls that could not be restored (their records are removed)
	Present  int // calls the manager already had
}

// ForeignRestorer takes in calls another relay owns: the session manager.
type ForeignRestorer interface {
	Foreign(cs session.CallState) error
}

// Restore reads every record of b into r. A record that cannot be used —
// unreadable, of another state version, its ports taken — is logged with
// its call-id and removed (unless other relays share the store): that call
// is lost, the others are not held up.
func Restore(ctx context.Context, b Backend, r Restorer, log *slog.Logger) (RestoreResult, error) {
	return RestoreGroup(ctx, b, "", r, nil, log)
}

// shared is a backend other relays read too.
type shared interface{ Shared() bool }

// RestoreGroup is Restore for a relay of a group sharing the store: the
// records node wrote (or that name no node) come back as own calls, the
// others as foreign calls of fr (when fr is nil every record is own).
func RestoreGroup(ctx context.Context, b Backend, node string, r Restorer, fr ForeignRestorer, log *slog.Logger) (RestoreResult, error) {
	var res RestoreResult
	sh, _ := b.(shared)
	keep := sh != nil && sh.Shared()
	ids, err := b.IDs(ctx)
	if err != nil {
		if len(ids) == 0 {
			return res, fmt.Errorf("list saved calls in %s: %w", b, err)
		}
		log.Error("some saved calls are unreadable", "store", b.String(), "error", err)
	}
	for _, id := range ids {
		rec, err := b.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("read saved call %s: %w", id, err)
		}
		cs, err := Decode(rec)
		foreign := false
		if err == nil {
			if foreign = fr != nil && cs.Node != "" && cs.Node != node; foreign {
				err = fr.Foreign(cs)
			} else {
				err = r.Restore(cs)
			}
		}
		switch {
		case err == nil && foreign:
			res.Foreign++
		case err == nil:
			res.Restored++
		case errors.Is(err, session.ErrCallExists):
			res.Present++
		default:
			res.Failed++
			if errors.Is(err, session.ErrStateVersion) {
				log.Error("saved call is of another relayd version's format: not restored", "call-id", id, "error", err)
			} else {
				log.Error("saved call could not be restored", "call-id", id, "error", err)
			}
			if keep {
				continue
			}
			if derr := b.Delete(ctx, id); derr != nil {
				log.Warn("remove unusable saved call", "call-id", id, "error", derr)
			}
		}
	}
	return res, nil
}
