// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"sync"
	"time"
)

// Cache defaults. A retransmission only needs the reply of a request the
// proxy is still retrying: Kamailio and OpenSIPS retry for 5 s (5 tries, 1 s
// apart), so an entry lives 10 to 20 s, twice that — not the reference's
// 30 to 60 s, which under churn kept hundreds of MiB of replies nobody
// would ask for again. The byte budget bounds the rest: at 2,000 setups/s
// (2.6 KB of replies each, most of it the delete's statistics) 16 MiB still
// hold the last few seconds, past the proxy's first 1 s retry.
const (
	DefaultCacheInterval = 10 * time.Second
	DefaultCacheEntries  = 100_000
	DefaultCacheBytes    = 16 << 20
	// DefaultCacheWaiters caps how many duplicates of one still-running
	// request are parked; more are dropped (the client retries anyway).
	DefaultCacheWaiters = 16
	// entryOverhead is what an entry costs besides its cookie and reply
	// bytes (map slot, entry, allocation rounding), so that the byte
	// budget is the memory held.
	entryOverhead = 160
)

// CacheConfig configures a Cache; zero fields take the defaults.
type CacheConfig struct {
	// Interval is the generation length: entries live Interval to 2*Interval.
	Interval time.Duration
	// MaxEntries caps the number of cookies held, pending ones included.
	MaxEntries int
	// MaxBytes caps the total size of cached cookies and replies.
	MaxBytes int
	// MaxWaiters caps the duplicates parked on one pending cookie.
	MaxWaiters int
	// Now is the clock; tests inject a fake one.
	Now func() time.Time
}

// Cache maps cookies to the reply bytes sent for them, so that a
// retransmitted request is answered byte-for-byte identically without being
// executed again. It is keyed by cookie only, like the reference: the same
// cookie from another source or with another body gets the cached reply.
//
// Entries live in two generations; when the current one is Interval old it
// becomes the old one and the previous old one is dropped. Each generation
// gets half of the entry and byte budgets: when the current one has used its
// half it is aged early, dropping the old generation before its time.
type Cache struct {
	cfg CacheConfig

	mu         sync.Mutex
	cur, old   *generation
	lastRotate time.Time
}

type generation struct {
	entries map[string]*cacheEntry
	bytes   int
	dropped bool
}

func newGeneration() *generation {
	return &generation{entries: make(map[string]*cacheEntry)}
}

type cacheEntry struct {
	gen     *generation
	cookie  string
	done    bool
	reply   []byte
	waiters []func([]byte)
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultCacheInterval
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultCacheEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultCacheBytes
	}
	if cfg.MaxWaiters <= 0 {
		cfg.MaxWaiters = DefaultCacheWaiters
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg, cur: newGeneration(), old: newGeneration(), lastRotate: cfg.Now()}
}

// Outcome says what Begin found for a cookie.
type Outcome int

const (
	// Miss: the cookie is new; the caller owns it and must Complete or
	// Abandon the returned Pending.
	Miss Outcome = iota
	// Hit: a reply is cached and was returned.
	Hit
	// Waiting: the cookie's request is still running; the wait callback
	// will get its reply.
	Waiting
	// Busy: the cookie's request is still running and already has the
	// maximum number of waiting duplicates; this one is dropped.
	Busy
)

func (o Outcome) String() string {
	switch o {
	case Miss:
		return "miss"
	case Hit:
		return "hit"
	case Waiting:
		return "waiting"
	case Busy:
		return "busy"
	}
	return "Outcome(?)"
}

// Pending is the ownership of a cookie whose reply is being produced.
type Pending struct {
	c *Cache
	e *cacheEntry
}

// Begin looks cookie up. On Hit it returns the cached reply. On Miss it
// registers the cookie as running and returns the Pending the caller must
// finish. On Waiting, wait (if not nil) is called with the reply once the
// owner completes it, from the owner's goroutine: it must not block.
func (c *Cache) Begin(cookie string, wait func(reply []byte)) ([]byte, *Pending, Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked()
	e := c.cur.entries[cookie]
	if e == nil {
		e = c.old.entries[cookie]
	}
	if e != nil {
		if e.done {
			return e.reply, nil, Hit
		}
		if wait == nil || len(e.waiters) >= c.cfg.MaxWaiters {
			return nil, nil, Busy
		}
		e.waiters = append(e.waiters, wait)
		return nil, nil, Waiting
	}
	if 2*len(c.cur.entries) >= c.cfg.MaxEntries || 2*c.cur.bytes >= c.cfg.MaxBytes ||
		c.cur.bytes+c.old.bytes+len(cookie)+entryOverhead > c.cfg.MaxBytes {
		// Over budget: age the current generation early, dropping the old.
		c.rotateOnceLocked()
	}
	e = &cacheEntry{gen: c.cur, cookie: cookie}
	c.cur.entries[cookie] = e
	// Cookies count too: nothing but the datagram size bounds them.
	c.cur.bytes += len(cookie) + entryOverhead
	return nil, &Pending{c: c, e: e}, Miss
}

// Complete stores reply for the cookie and hands it to every waiting
// duplicate. Later calls (and calls after Abandon) do nothing.
func (p *Pending) Complete(reply []byte) {
	c := p.c
	c.mu.Lock()
	e := p.e
	if e.done {
		c.mu.Unlock()
		return
	}
	e.done = true
	e.reply = reply
	waiters := e.waiters
	e.waiters = nil
	if !e.gen.dropped {
		e.gen.bytes += len(reply)
		// Both generations together stay within the budget: the old one
		// goes early when the current one's reply would overrun it.
		if 2*c.cur.bytes >= c.cfg.MaxBytes || c.cur.bytes+c.old.bytes > c.cfg.MaxBytes {
			c.rotateOnceLocked()
		}
	}
	c.mu.Unlock()
	for _, w := range waiters {
		w(reply)
	}
}

// Abandon forgets the cookie without a reply (the request could not be
// run at all), so that a retransmission is executed afresh. Waiting
// duplicates get a nil reply.
func (p *Pending) Abandon() {
	c := p.c
	c.mu.Lock()
	e := p.e
	if e.done {
		c.mu.Unlock()
		return
	}
	e.done = true
	waiters := e.waiters
	e.waiters = nil
	if e.gen.entries[e.cookie] == e {
		delete(e.gen.entries, e.cookie)
	}
	c.mu.Unlock()
	for _, w := range waiters {
		w(nil)
	}
}

// Do runs fn at most once per cookie within the cache lifetime and returns
// its reply; concurrent and later callers with the same cookie get the same
// bytes. cached tells whether fn ran in another call. If fn panics the
// cookie is abandoned and the panic continues.
func (c *Cache) Do(ctx context.Context, cookie string, fn func() []byte) (reply []byte, cached bool, err error) {
	ch := make(chan []byte, 1)
	reply, p, out := c.Begin(cookie, func(b []byte) { ch <- b })
	switch out {
	case Hit:
		return reply, true, nil
	case Busy:
		// Too many duplicates are parked on this cookie already.
		return nil, true, ErrAbandoned
	case Waiting:
		select {
		case b := <-ch:
			if b == nil {
				return nil, true, ErrAbandoned
			}
			return b, true, nil
		case <-ctx.Done():
			return nil, true, ctx.Err()
		}
	}
	completed := false
	defer func() {
		if !completed {
			p.Abandon()
		}
	}()
	reply = fn()
	p.Complete(reply)
	completed = true
	return reply, false, nil
}

// Rotate starts a new generation now, dropping the old one.
func (c *Cache) Rotate() {
	c.mu.Lock()
	c.rotateOnceLocked()
	c.lastRotate = c.cfg.Now()
	c.mu.Unlock()
}

// Sweep drops the generations that have aged out. Begin does so too, but a
// cache nobody asks anything any more must still let its replies go: the
// server sweeps it every interval.
func (c *Cache) Sweep() {
	c.mu.Lock()
	c.rotateLocked()
	c.mu.Unlock()
}

// Size returns the number of cookies held and the bytes they account for.
func (c *Cache) Size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked()
	return len(c.cur.entries) + len(c.old.entries), c.cur.bytes + c.old.bytes
}

// Len returns the number of cookies held, pending ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked()
	return len(c.cur.entries) + len(c.old.entries)
}

// rotateLocked applies the rotations due by the clock. Rotation times stay
// on a grid of Interval so that every entry lives between one and two
// intervals no matter how irregular the traffic is.
func (c *Cache) rotateLocked() {
	elapsed := c.cfg.Now().Sub(c.lastRotate)
	if elapsed < c.cfg.Interval {
		return
	}
	n := elapsed / c.cfg.Interval
	c.rotateOnceLocked()
	if n >= 2 {
		c.rotateOnceLocked()
	}
	c.lastRotate = c.lastRotate.Add(n * c.cfg.Interval)
}

func (c *Cache) rotateOnceLocked() {
	c.old.dropped = true
	c.old = c.cur
	c.cur = newGeneration()
}
