// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayd/relayd/pkg/ports"
	"github.com/relayd/relayd/pkg/session"
)

// ForeignTarget holds the calls other relays own: the session manager.
type ForeignTarget interface {
	Foreign(cs session.CallState) error
	DropForeign(callID string) bool
	ListForeign() []string
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Redis is the server and database whose keyspace is followed.
	Redis RedisConfig
	// Node is this relay's name: its own records (the echo of its own
	// writes) are not taken in.
	Node   string
	Target ForeignTarget
	// OnIdentity, when set, gets the group's DTLS identity whenever
	// another relay changes it.
	OnIdentity func(pem []byte)
	Logger     *slog.Logger
	// Batch is how many records one read fetches (default 256).
	Batch int
}

// FollowerStats are a Follower's counters.
type FollowerStats struct {
	// Updates are records taken in (calls created or replaced as foreign),
	// Drops foreign calls removed because their record went, Rejected
	// records that could not be used (not a relayd state, ports taken),
	// Failures subscriptions lost and reads that failed, Stale records of
	// own calls written before this relay took them over (ignored).
	Updates, Drops, Rejected, Failures, Stale uint64
	// Resyncs counts full reads of the database: at the first
	// subscription and after every reconnect.
	Resyncs uint64
	// Subscribed: keyspace notifications are flowing now.
	Subscribed bool
	Pending    int // keys waiting to be read
}

// Follower keeps a standby's foreign calls in step with a Redis database
// other relays write: it subscribes to the database's keyspace
// notifications, reads each key that changed (a burst of changes to one key
// is one read), and hands the record to the session manager as a foreign
// call — or drops the foreign call when its key is gone. At its first
// subscription and after every reconnect it reads the whole database
// (notifications sent while it was away are lost), so a restarted Redis or
// a network cut heals by itself. Redis I/O happens only on its own two
// goroutines; signalling and media never wait for it.
type Follower struct {
	cfg     FollowerConfig
	log     *slog.Logger
	channel string // the pattern's prefix: __keyspace@DB__:

	mu     sync.Mutex
	dirty  map[string]struct{}
	resync bool
	wake   chan struct{}
	// retries counts, per key, the reads put off because the call's ports
	// were still held here (the apply goroutine's only).
	retries map[string]int

	updates, drops, rejected, failures, stale, resyncs atomic.Uint64
	subscribed                                         atomic.Bool
}

// NewFollower returns a Follower; Run makes it follow.
func NewFollower(cfg FollowerConfig) *Follower {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Redis.Timeout <= 0 {
		cfg.Redis.Timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{cfg: cfg,
		log:     log.With("component", "statestore", "follow", "redis "+cfg.Redis.Addr+"/"+strconv.Itoa(cfg.Redis.DB)),
		channel: fmt.Sprintf("__keyspace@%d__:", cfg.Redis.DB),
		dirty:   map[string]struct{}{}, wake: make(chan struct{}, 1), retries: map[string]int{}}
}

// Stats reports the counters.
func (f *Follower) Stats() FollowerStats {
	f.mu.Lock()
	pending := len(f.dirty)
	f.mu.Unlock()
	return FollowerStats{Updates: f.updates.Load(), Drops: f.drops.Load(), Rejected: f.rejected.Load(),
		Failures: f.failures.Load(), Stale: f.stale.Load(),
		Resyncs: f.resyncs.Load(), Subscribed: f.subscribed.Load(), Pending: pending}
}

// Run follows until ctx is done.
func (f *Follower) Run(ctx context.Context) {
	c := newRedisClient(f.cfg.Redis)
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); f.apply(ctx, c) }()
	f.listen(ctx, c)
	wg.Wait()
}

// keyspaceEvents are the notification classes a follower needs: keyspace
// (K) for string writes ($), deletes and renames (g), expiry (x) and
// eviction (e).
const keyspaceEvents = "K$gxe"

// enableNotifications switches the classes on at the server, keeping what
// it had; a server that refuses CONFIG (renamed, managed) needs them in
// its redis.conf.
func (f *Follower) enableNotifications(ctx context.Context, c *redis.Client) {
	octx, cancel := context.WithTimeout(ctx, f.cfg.Redis.Timeout)
	defer cancel()
	cur, err := c.ConfigGet(octx, "notify-keyspace-events").Result()
	if err == nil {
		have := cur["notify-keyspace-events"]
		want := have
		for _, ch := range keyspaceEvents {
			if !strings.ContainsRune(have, ch) && !(ch != 'K' && strings.ContainsRune(have, 'A')) {
				want += string(ch)
			}
		}
		if want == have {
			return
		}
		if err = c.ConfigSet(octx, "notify-keyspace-events", want).Err(); err == nil {
			f.log.Info("Redis keyspace notifications switched on", "notify-keyspace-events", want)
			return
		}
	}
	f.log.Warn("could not switch on Redis keyspace notifications: set notify-keyspace-events "+keyspaceEvents+
		" in the server's configuration, or this standby misses the active relay's calls", "error", err)
}

// listen receives keyspace notifications and marks their keys; every
// (re)subscription asks for a full read.
func (f *Follower) listen(ctx context.Context, c *redis.Client) {
	ps := c.PSubscribe(ctx, f.channel+"*")
	// A blocked read does not see ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	defer ps.Close()
	backoff := time.Duration(0)
	configured := false
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet: make sure the connection is still there.
				if err = ps.Ping(ctx); err == nil {
					continue
				}
			}
			if f.subscribed.CompareAndSwap(true, false) {
				f.log.Warn("keyspace subscription lost: foreign calls are not updated until it is back", "error", err)
			}
			f.failures.Add(1)
			configured = false
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "psubscribe" {
				continue
			}
			if !configured {
				f.enableNotifications(ctx, c)
				configured = true
			}
			if !f.subscribed.Swap(true) {
				f.log.Info("following the keyspace")
			}
			// Notifications sent while away are lost: read everything.
			f.mu.Lock()
			f.resync = true
			f.mu.Unlock()
			f.poke()
		case *redis.Message:
			if key, ok := strings.CutPrefix(m.Channel, f.channel); ok {
				f.mark(key)
			}
		}
	}
}

func (f *Follower) mark(key string) {
	f.mu.Lock()
	f.dirty[key] = struct{}{}
	f.mu.Unlock()
	f.poke()
}

func (f *Follower) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// apply reads the marked keys and hands their records over.
func (f *Follower) apply(ctx context.Context, c *redis.Client) {
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for ctx.Err() == nil {
			err := f.step(ctx, c)
			if errors.Is(err, errNothing) {
				backoff = 0
				break
			}
			if err != nil {
				f.failures.Add(1)
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				f.log.Debug("keyspace read failed, retrying", "error", err, "pause", backoff)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
		}
	}
}

var errNothing = errors.New("nothing to read")

// step does one full read (when asked) or one batch of keys.
func (f *Follower) step(ctx context.Context, c *redis.Client) error {
	f.mu.Lock()
	resync := f.resync
	f.resync = false
	f.mu.Unlock()
	if resync {
		keys, err := scanAll(ctx, c, f.cfg.Redis.Timeout)
		if err != nil {
			f.mu.Lock()
			f.resync = true
			f.mu.Unlock()
			return fmt.Errorf("list keys: %w", err)
		}
		f.resyncs.Add(1)
		f.log.Info("reading every record", "keys", len(keys))
		f.mu.Lock()
		for _, k := range keys {
			f.dirty[k] = struct{}{}
		}
		// A foreign call whose key is gone (deleted while away) is read
		// as missing and dropped.
		for _, id := range f.cfg.Target.ListForeign() {
			f.dirty[id] = struct{}{}
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	if len(f.dirty) == 0 {
		f.mu.Unlock()
		return errNothing
	}
	batch := make([]string, 0, min(len(f.dirty), f.cfg.Batch))
	for k := range f.dirty {
		batch = append(batch, k)
		delete(f.dirty, k)
		if len(batch) == f.cfg.Batch {
			break
		}
	}
	f.mu.Unlock()
	octx, cancel := context.WithTimeout(ctx, f.cfg.Redis.Timeout)
	vals, err := c.MGet(octx, batch...).Result()
	cancel()
	if err != nil {
		f.mu.Lock()
		for _, k := range batch {
			f.dirty[k] = struct{}{}
		}
		f.mu.Unlock()
		return fmt.Errorf("read %d keys: %w", len(batch), err)
	}
	// Gone keys first: a deleted call's ports may be a new one's now.
	for i, v := range vals {
		if v == nil {
			f.take(batch[i], "", false)
		}
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			f.take(batch[i], s, true)
		}
	}
	return nil
}

// take applies one key's current value (present false: the key is gone).
func (f *Follower) take(key, val string, present bool) {
	if key == IdentityKey {
		if present && f.cfg.OnIdentity != nil {
			f.cfg.OnIdentity([]byte(val))
		}
		return
	}
	if !present {
		delete(f.retries, key)
		if f.cfg.Target.DropForeign(key) {
			f.drops.Add(1)
		}
		return
	}
	cs, err := Decode([]byte(val))
	if err == nil && cs.CallID != key {
		err = fmt.Errorf("record names call %q", cs.CallID)
	}
	if err != nil {
		f.rejected.Add(1)
		f.log.Warn("record not taken in: not a relayd call state", "key", key, "error", err)
		return
	}
	if cs.Node == f.cfg.Node {
		return // this relay's own write
	}
	if err := f.cfg.Target.Foreign(cs); errors.Is(err, session.ErrStaleState) {
		f.stale.Add(1)
		f.log.Debug("record older than this relay's takeover of the call: kept own", "call-id", key, "node", cs.Node)
		return
	} else if portBusy(err) && f.retries[key] < maxRetries {
		// The socket of the call that had the port here closes on the
		// media plane's time: read the key again in a moment.
		f.retries[key]++
		time.AfterFunc(retryPause, func() { f.mark(key) })
		return
	} else if err != nil {
		delete(f.retries, key)
		f.rejected.Add(1)
		f.log.Warn("foreign call not taken in", "call-id", key, "node", cs.Node, "error", err)
		return
	}
	delete(f.retries, key)
	f.updates.Add(1)
}

// A call whose ports are still held here is read again after retryPause,
// up to maxRetries times.
const (
	retryPause = 100 * time.Millisecond
	maxRetries = 20
)

func portBusy(err error) bool {
	return errors.Is(err, ports.ErrInUse) || errors.Is(err, syscall.EADDRINUSE)
}

func scanAll(ctx context.Context, c *redis.Client, timeout time.Duration) ([]string, error) {
	octx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()
	seen := map[string]struct{}{}
	it := c.Scan(octx, 0, "", 1000).Iterator()
	for it.Next(octx) {
		seen[it.Val()] = struct{}{}
	}
	return slices.Collect(maps.Keys(seen)), it.Err()
}
