// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/lograte"
)

// syncBuffer is a log destination the test reads while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// A flood of malformed datagrams writes a few lines per kind and source
// and one summary per interval, not a line per datagram; the statistics
// still count every one.
func TestServerLogFlood(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	clk := &testClock{now: time.Unix(1_700_000_000, 0)}
	lim := lograte.Config{Interval: 10 * time.Second, Burst: 3, Now: clk.Now, AfterFunc: clk.AfterFunc}
	s := startServer(t, ServerConfig{Logger: log, LogLimit: lim}, newTestHandler())
	c := dial(t, s.LocalAddr())
	const n = 20_000
	kinds := []string{"c%d d7:command4:pin", "c%d hello", "c%d d1:a" + strings.Repeat("l", 100) + strings.Repeat("e", 100) + "e"}
	for i := range n {
		msg := strings.Replace(kinds[i%len(kinds)], "%d", strconv.Itoa(i), 1)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			// Stay within the socket's buffers: every datagram must count.
			waitFor(t, func() bool { return s.Stats().Commands[StatsInvalid].Requests == uint64(i+1) })
		}
	}
	waitFor(t, func() bool { return s.Stats().Commands[StatsInvalid].Requests == n })
	if st := s.Stats(); st.Errors != n || st.Replies < n {
		t.Errorf("stats: %d errors, %d replies; want %d each", st.Errors, st.Replies, n)
	}
	during := logs.Len()
	t.Logf("%d malformed datagrams: %d log bytes, %d lines", n, during, strings.Count(logs.String(), "\n"))
	if lines := strings.Count(logs.String(), "\n"); lines > 3*lim.Burst+1 {
		t.Errorf("%d log lines for a flood of %d datagrams, want at most %d:\n%s", lines, n, 3*lim.Burst+1, logs.String())
	}
	// The interval ends: one summary per kind.
	clk.advance(10 * time.Second)
	if got := strings.Count(logs.String(), "more dropped in the last 10s"); got != 3 {
		t.Errorf("%d summary lines, want 3:\n%s", got, logs.String())
	}
	out := logs.String()
	var dropped int
	for _, l := range strings.Split(out, "\n") {
		if i := strings.Index(l, " dropped="); i >= 0 {
			var d int
			for _, ch := range l[i+len(" dropped="):] {
				if ch < '0' || ch > '9' {
					break
				}
				d = d*10 + int(ch-'0')
			}
			dropped += d
		}
	}
	if logged := strings.Count(out, `msg="rejecting ng request" `); logged+dropped != n {
		t.Errorf("%d lines + %d summarised = %d, want %d:\n%s", logged, dropped, logged+dropped, n, out)
	}
	if len(out) > 8<<10 {
		t.Errorf("%d log bytes for the flood, want under 8 KiB", len(out))
	}
}

// testClock is a lograte clock the test moves.
type testClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []func()
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) AfterFunc(_ time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, f)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	fs := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
