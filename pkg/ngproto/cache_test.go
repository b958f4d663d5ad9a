// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for cache rotation tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// store runs a Miss to completion for cookie with reply.
func store(t *testing.T, c *Cache, cookie, reply string) {
	t.Helper()
	_, p, out := c.Begin(cookie, nil)
	if out != Miss {
		t.Fatalf("Begin(%q) = %v, want miss", cookie, out)
	}
	p.Complete([]byte(reply))
}

func lookup(c *Cache, cookie string) (string, Outcome) {
	b, p, out := c.Begin(cookie, nil)
	if out == Miss {
		p.Abandon()
	}
	return string(b), out
}

func TestCacheHit(t *testing.T) {
	c := NewCache(CacheConfig{})
	store(t, c, "a", "a d6:result2:oke")
	got, out := lookup(c, "a")
	if out != Hit || got != "a d6:result2:oke" {
		t.Errorf("lookup = %q, %v; want the stored reply, hit", got, out)
	}
	if _, out := lookup(c, "b"); out != Miss {
		t.Errorf("unknown cookie = %v, want miss", out)
	}
	if _, out := lookup(c, "b"); out != Miss {
		t.Errorf("abandoned cookie = %v, want miss again", out)
	}
}

func TestCacheRotation(t *testing.T) {
	const interval = 30 * time.Second
	tests := []struct {
		name     string
		storeAt  time.Duration // since the cache was created
		lookupAt time.Duration
		want     Outcome
	}{
		{"fresh", 0, time.Second, Hit},
		{"just before first rotation", 0, interval - time.Second, Hit},
		{"after one rotation", 0, interval + time.Second, Hit},
		{"just before second rotation", 0, 2*interval - time.Second, Hit},
		{"after second rotation", 0, 2 * interval, Miss},
		{"late in generation lives at least one interval", interval - time.Second, 2*interval - 2*time.Second, Hit},
		{"late in generation gone after the grid's second rotation", interval - time.Second, 2 * interval, Miss},
		{"long idle", 0, 10 * interval, Miss},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			c := NewCache(CacheConfig{Interval: interval, Now: clk.Now})
			clk.Advance(tc.storeAt)
			store(t, c, "k", "reply")
			clk.Advance(tc.lookupAt - tc.storeAt)
			if _, out := lookup(c, "k"); out != tc.want {
				t.Errorf("lookup at %v of an entry stored at %v = %v, want %v", tc.lookupAt, tc.storeAt, out, tc.want)
			}
		})
	}
}

func TestCacheRotateExplicit(t *testing.T) {
	c := NewCache(CacheConfig{})
	store(t, c, "k", "reply")
	c.Rotate()
	if _, out := lookup(c, "k"); out != Hit {
		t.Errorf("after one Rotate = %v, want hit (old generation)", out)
	}
	c.Rotate()
	if _, out := lookup(c, "k"); out != Miss {
		t.Errorf("after two Rotates = %v, want miss", out)
	}
}

func TestCacheBounds(t *testing.T) {
	t.Run("entries", func(t *testing.T) {
		c := NewCache(CacheConfig{MaxEntries: 10})
		for i := range 1000 {
			store(t, c, fmt.Sprint(i), "r")
			if n := c.Len(); n > 10 {
				t.Fatalf("after %d inserts Len = %d, want <= 10", i+1, n)
			}
		}
		if _, out := lookup(c, "999"); out != Hit {
			t.Errorf("newest entry = %v, want hit", out)
		}
		if _, out := lookup(c, "0"); out != Miss {
			t.Errorf("oldest entry = %v, want miss (shed)", out)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		c := NewCache(CacheConfig{MaxBytes: 1000})
		big := string(bytes.Repeat([]byte("x"), 100))
		for i := range 100 {
			store(t, c, fmt.Sprint(i), big)
		}
		c.mu.Lock()
		total := c.cur.bytes + c.old.bytes
		c.mu.Unlock()
		if total > 1000 {
			t.Errorf("cached bytes = %d, want at most 1000", total)
		}
		if _, out := lookup(c, "99"); out != Hit {
			t.Errorf("newest entry = %v, want hit", out)
		}
	})
}

func TestCacheWaiters(t *testing.T) {
	c := NewCache(CacheConfig{MaxWaiters: 2})
	_, p, out := c.Begin("k", nil)
	if out != Miss {
		t.Fatalf("first Begin = %v", out)
	}
	var got [][]byte
	var mu sync.Mutex
	wait := func(b []byte) { mu.Lock(); got = append(got, b); mu.Unlock() }
	for i, want := range []Outcome{Waiting, Waiting, Busy} {
		if _, _, out := c.Begin("k", wait); out != want {
			t.Errorf("duplicate %d = %v, want %v", i, out, want)
		}
	}
	if _, _, out := c.Begin("k", nil); out != Busy {
		t.Errorf("duplicate without callback = %v, want busy", out)
	}
	p.Complete([]byte("reply"))
	p.Complete([]byte("second completion is ignored"))
	if len(got) != 2 || string(got[0]) != "reply" || string(got[1]) != "reply" {
		t.Errorf("waiters got %q, want the reply twice", got)
	}
	if b, out := lookup(c, "k"); out != Hit || b != "reply" {
		t.Errorf("after completion = %q, %v", b, out)
	}
}

func TestCacheAbandonWakesWaiters(t *testing.T) {
	c := NewCache(CacheConfig{})
	_, p, _ := c.Begin("k", nil)
	woken := make(chan []byte, 1)
	if _, _, out := c.Begin("k", func(b []byte) { woken <- b }); out != Waiting {
		t.Fatalf("duplicate = %v", out)
	}
	p.Abandon()
	if b := <-woken; b != nil {
		t.Errorf("waiter got %q, want nil", b)
	}
	if _, out := lookup(c, "k"); out != Miss {
		t.Errorf("abandoned cookie = %v, want miss", out)
	}
}

// TestCacheConcurrentDuplicates proves the handler runs once however many
// copies of one cookie arrive while it runs, and every copy gets its bytes.
func TestCacheConcurrentDuplicates(t *testing.T) {
	c := NewCache(CacheConfig{MaxWaiters: 100})
	var runs atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{})
	fn := func() []byte {
		if runs.Add(1) == 1 {
			close(started)
		}
		<-release
		return []byte("k d6:result2:oke")
	}
	const n = 50
	results := make([][]byte, n)
	cached := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		results[0], cached[0], errs[0] = c.Do(context.Background(), "k", fn)
	}()
	<-started
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], cached[i], errs[i] = c.Do(context.Background(), "k", fn)
		}()
	}
	// Let the duplicates park before releasing the first.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c.mu.Lock()
		parked := len(c.cur.entries["k"].waiters)
		c.mu.Unlock()
		if parked == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d duplicates parked", parked)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if r := runs.Load(); r != 1 {
		t.Errorf("handler ran %d times, want 1", r)
	}
	for i := range n {
		if errs[i] != nil || !bytes.Equal(results[i], results[0]) || cached[i] != (i != 0) {
			t.Errorf("call %d = %q, cached %v, %v; want %q, cached %v", i, results[i], cached[i], errs[i], results[0], i != 0)
		}
	}
	// And a later retransmission too.
	b, wasCached, err := c.Do(context.Background(), "k", fn)
	if err != nil || !wasCached || !bytes.Equal(b, results[0]) || runs.Load() != 1 {
		t.Errorf("later Do = %q, %v, %v after %d runs", b, wasCached, err, runs.Load())
	}
}

func TestCacheDoPanicAbandons(t *testing.T) {
	c := NewCache(CacheConfig{})
	func() {
		defer func() { _ = recover() }()
		_, _, _ = c.Do(context.Background(), "k", func() []byte { panic("boom") })
	}()
	b, cached, err := c.Do(context.Background(), "k", func() []byte { return []byte("ok") })
	if err != nil || cached || string(b) != "ok" {
		t.Errorf("Do after a panicking run = %q, %v, %v; want a fresh run", b, cached, err)
	}
}

func TestCacheDoWaiterContext(t *testing.T) {
	c := NewCache(CacheConfig{})
	_, p, _ := c.Begin("k", nil)
	defer p.Abandon()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.Do(ctx, "k", func() []byte { return nil }); err != context.Canceled {
		t.Errorf("Do with cancelled context while waiting = %v, want context.Canceled", err)
	}
}

// A restarted relayd answers a retransmission of what its predecessor ran
// from the predecessor's cache, byte for byte, without running it again.
func TestCacheHandOver(t *testing.T) {
	old := NewCache(CacheConfig{})
	for i, cookie := range []string{"a", "b", "c"} {
		_, p, out := old.Begin(cookie, nil)
		if out != Miss {
			t.Fatalf("Begin(%s) = %v", cookie, out)
		}
		if i < 2 {
			p.Complete([]byte("reply " + cookie))
		} // c still running: not handed over
	}
	exported := old.Export()
	if len(exported) != 2 {
		t.Fatalf("exported %d entries, want the 2 completed", len(exported))
	}
	next := NewCache(CacheConfig{MaxEntries: 2})
	if n := next.Import(exported); n != 1 {
		// Half of MaxEntries per generation: one fits.
		t.Fatalf("imported %d, want 1 within the budget", n)
	}
	next = NewCache(CacheConfig{})
	if n := next.Import(exported); n != 2 {
		t.Fatalf("imported %d, want 2", n)
	}
	reply, _, out := next.Begin("b", nil)
	if out != Hit || string(reply) != "reply b" {
		t.Fatalf("retransmission after hand-over: %v %q", out, reply)
	}
	if _, _, out := next.Begin("c", nil); out != Miss {
		t.Fatalf("a request never completed is run afresh, got %v", out)
	}
}

// A cache nobody asks anything any more still lets its replies go: the
// server sweeps it, so memory held for retransmissions is freed after a
// churn even when no request follows.
func TestServerSweepsIdleCache(t *testing.T) {
	s := startServer(t, ServerConfig{CacheInterval: 50 * time.Millisecond}, newTestHandler())
	c := dial(t, s.LocalAddr())
	for i := range 20 {
		roundTrip(t, c, fmt.Sprintf("s%d d7:command4:pinge", i))
	}
	if st := s.Stats(); st.CacheEntries != 20 || st.CacheBytes < 20*entryOverhead {
		t.Fatalf("cache holds %d entries, %d bytes; want 20 and their overhead counted", st.CacheEntries, st.CacheBytes)
	}
	waitFor(t, func() bool { st := s.Stats(); return st.CacheEntries == 0 && st.CacheBytes == 0 })
}

// Bounded by bytes: a churn of statistics-sized replies never holds more
// than the budget, whatever the rate, and the newest replies stay.
func TestCacheByteBudgetUnderChurn(t *testing.T) {
	const budget = 1 << 20
	c := NewCache(CacheConfig{MaxBytes: budget})
	reply := string(bytes.Repeat([]byte("x"), 2200)) // a delete's statistics tree
	for i := range 5000 {
		store(t, c, fmt.Sprintf("0_%d_%d", 4711, i), reply)
		if _, b := c.Size(); b > budget {
			t.Fatalf("after %d replies the cache holds %d bytes, budget %d", i+1, b, budget)
		}
	}
	n, _ := c.Size()
	if n < budget/2/(2200+entryOverhead) {
		t.Errorf("only %d replies kept; the budget holds more", n)
	}
	if _, out := lookup(c, "0_4711_4999"); out != Hit {
		t.Error("the newest reply is gone")
	}
}
