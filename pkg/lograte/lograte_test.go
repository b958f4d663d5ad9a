// SPDX-License-Identifier: Apache-2.0

package lograte

import (
	"bytes"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/lograte/lograttest"
)

func newTest(t *testing.T, cfg Config) (*Limiter, *bytes.Buffer, *lograttest.Clock) {
	t.Helper()
	var buf bytes.Buffer
	clk := lograttest.NewClock()
	cfg.Now, cfg.AfterFunc = clk.Now, clk.AfterFunc
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return New(log, cfg), &buf, clk
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A flood from one source writes Burst lines and one summary per interval,
// whatever its size; another kind or source has a budget of its own.
func TestFloodSummarised(t *testing.T) {
	l, buf, clk := newTest(t, Config{Burst: 3, Interval: 10 * time.Second})
	src := netip.MustParseAddr("192.0.2.1")
	for range 10_000 {
		l.Log(slog.LevelInfo, "rejecting ng request", "malformed", src, "size", 7)
	}
	l.Log(slog.LevelInfo, "rejecting ng request", "too large", src)
	l.Log(slog.LevelInfo, "rejecting ng request", "malformed", netip.MustParseAddr("192.0.2.2"))
	if got := lines(buf); len(got) != 5 {
		t.Fatalf("%d lines before the interval ended, want 5:\n%s", len(got), buf)
	}
	clk.Advance(10 * time.Second)
	got := lines(buf)
	if len(got) != 6 {
		t.Fatalf("%d lines after the interval, want 6 (one summary):\n%s", len(got), buf)
	}
	if s := got[5]; !strings.Contains(s, `msg="rejecting ng request: 9997 more dropped in the last 10s"`) ||
		!strings.Contains(s, "kind=malformed") || !strings.Contains(s, "source=192.0.2.1") || !strings.Contains(s, "dropped=9997") {
		t.Errorf("summary line %q", s)
	}
	if l.Dropped() != 9997 {
		t.Errorf("Dropped() = %d, want 9997", l.Dropped())
	}
	// The next interval starts afresh.
	buf.Reset()
	l.Log(slog.LevelInfo, "rejecting ng request", "malformed", src)
	if got := lines(buf); len(got) != 1 || strings.Contains(got[0], "more dropped") {
		t.Errorf("new interval: %q", got)
	}
	clk.Advance(10 * time.Second)
	if got := lines(buf); len(got) != 1 {
		t.Errorf("an interval without drops wrote a summary: %q", got)
	}
}

// Spoofed sources cannot grow the table: beyond MaxKeys they share one
// entry, and their lines are still limited.
func TestSourcesBounded(t *testing.T) {
	l, buf, clk := newTest(t, Config{Burst: 1, MaxKeys: 8})
	for i := range 5000 {
		l.Log(slog.LevelWarn, "m", "k", netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	if n := len(l.keys); n > 9 {
		t.Errorf("%d keys, want at most 8 and the shared one", n)
	}
	if got := lines(buf); len(got) != 9 {
		t.Errorf("%d lines, want 8 sources + 1 shared", len(got))
	}
	clk.Advance(time.Minute)
	if !strings.Contains(buf.String(), `msg="m: 4991 more dropped in the last 10s" kind=k source="(other sources)"`) {
		t.Errorf("no summary for the shared entry:\n%s", buf)
	}
	if len(l.keys) != 0 {
		t.Errorf("%d keys left after every interval ended", len(l.keys))
	}
}

// Below the logger's level nothing is counted or written.
func TestDisabledLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})), Config{})
	for range 100 {
		l.Log(slog.LevelInfo, "m", "k", netip.Addr{})
	}
	if buf.Len() != 0 || len(l.keys) != 0 {
		t.Errorf("wrote %q, %d keys", buf.String(), len(l.keys))
	}
}

func TestConcurrent(t *testing.T) {
	l := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Interval: time.Millisecond, Burst: 2})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				l.Log(slog.LevelError, "m", "k", netip.AddrFrom4([4]byte{10, 0, byte(g), byte(i % 3)}))
			}
		}()
	}
	wg.Wait()
	time.Sleep(5 * time.Millisecond)
	l.Flush()
}
