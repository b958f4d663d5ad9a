// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
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

// Requests from a source outside the allow-list are never answered, not
// even from the reply cache, and are counted; allowed sources are served.
func TestServerAllowList(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s := startServer(t, ServerConfig{
		Addr:   netip.MustParseAddrPort("[::]:0"),
		Logger: log,
		Allow:  []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32"), netip.MustParsePrefix("::ffff:127.0.0.64/122")},
	}, newTestHandler())
	port := s.LocalAddr().Port()
	from := func(a string) *net.UDPConn {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(a+":0")),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	proxy, proxy2, stranger := from("127.0.0.2"), from("127.0.0.100"), from("127.0.0.1")
	if got := roundTrip(t, proxy, "a1 d7:command4:pinge"); got != "a1 d6:result4:ponge" {
		t.Fatalf("allowed proxy: %q", got)
	}
	if got := roundTrip(t, proxy2, "a2 d7:command4:pinge"); got != "a2 d6:result4:ponge" {
		t.Fatalf("proxy in an allowed IPv4-mapped prefix: %q", got)
	}
	// The cached cookie, a fresh one and garbage: nothing comes back.
	for _, msg := range []string{"a1 d7:command4:pinge", "b1 d7:command4:pinge", "garbage", "b2 d7:command"} {
		send(t, stranger, msg)
	}
	// The stranger's datagrams were read before this one.
	if got := roundTrip(t, proxy, "a3 d7:command4:pinge"); got != "a3 d6:result4:ponge" {
		t.Fatalf("allowed proxy after the stranger: %q", got)
	}
	_ = stranger.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := stranger.Read(make([]byte, 100)); err == nil {
		t.Errorf("a source outside the allow-list got a %d-byte reply", n)
	}
	st := s.Stats()
	if st.Refused != 4 || st.Requests != 3 || st.Retransmits != 0 || st.Dropped != 0 {
		t.Errorf("stats: refused %d, requests %d, retransmits %d, dropped %d; want 4, 3, 0, 0",
			st.Refused, st.Requests, st.Retransmits, st.Dropped)
	}
	if _, ok := st.Proxies[netip.MustParseAddr("127.0.0.1")]; ok {
		t.Error("a refused source appears among the proxies")
	}
	if !strings.Contains(logs.String(), `msg="refusing ng datagram from a source not in ng-allow-from" size=`) ||
		!strings.Contains(logs.String(), "source=127.0.0.1") {
		t.Errorf("no log line for the refused source:\n%s", logs.String())
	}

	// SIGHUP: the list changes while serving.
	s.SetAllow(nil)
	if got := roundTrip(t, stranger, "c1 d7:command4:pinge"); got != "c1 d6:result4:ponge" {
		t.Errorf("empty allow-list: %q", got)
	}
	s.SetAllow([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	send(t, proxy, "c2 d7:command4:pinge")
	_ = proxy.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := proxy.Read(make([]byte, 100)); err == nil {
		t.Error("a proxy dropped from the list is still answered")
	}
}
