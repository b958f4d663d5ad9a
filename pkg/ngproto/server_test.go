// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testHandler answers a few made-up commands so the server can be driven
// without the session layer.
type testHandler struct {
	calls   atomic.Int32
	started chan string   // "slow" reports its call-id here
	release chan struct{} // and waits for this
}

func newTestHandler() *testHandler {
	return &testHandler{started: make(chan string, 16), release: make(chan struct{})}
}

func (h *testHandler) HandleNG(ctx context.Context, req *Request, from netip.AddrPort) Reply {
	h.calls.Add(1)
	switch req.Command {
	case "ping":
		return Pong()
	case "slow":
		h.started <- req.CallID
		select {
		case <-h.release:
		case <-ctx.Done():
		}
		return OK(F("call-id", Str(req.CallID)), F("n", Int(int64(h.calls.Load()))))
	case "panic":
		panic("handler bug")
	case "nil":
		return Reply{}
	case "echo":
		return OK(F("call-id", Str(req.CallID)), F("ignored", Strings(req.Ignored)), F("from", Str(from.Addr().String())))
	}
	return ErrorReply(ReasonUnknownCommand)
}

func startServer(t *testing.T, cfg ServerConfig, h Handler) *Server {
	t.Helper()
	if !cfg.Addr.IsValid() {
		cfg.Addr = netip.MustParseAddrPort("127.0.0.1:0")
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return s
}

// dial returns a UDP socket connected to the server: like Kamailio's, it
// only accepts datagrams from the address it sends to.
func dial(t *testing.T, to netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		t.Fatalf("dial %v: %v", to, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c *net.UDPConn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func recv(t *testing.T, c *net.UDPConn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return string(buf[:n])
}

func roundTrip(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	send(t, c, msg)
	return recv(t, c)
}

func TestServerPing(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, ServerConfig{}, h)
	c := dial(t, s.LocalAddr())
	if got, want := roundTrip(t, c, "0_4711_1 d7:command4:pinge"), "0_4711_1 d6:result4:ponge"; got != want {
		t.Errorf("ping reply = %q, want %q", got, want)
	}
	if got, want := roundTrip(t, c, `j1 {"command":"ping"}`), `j1 {"result":"pong"}`; got != want {
		t.Errorf("JSON ping reply = %q, want %q", got, want)
	}
	if got, want := roundTrip(t, c, "u1 "+benc(dict{{"command", "frobnicate"}})),
		"u1 d12:error-reason20:Unrecognized command6:result5:errore"; got != want {
		t.Errorf("unknown command reply = %q, want %q", got, want)
	}
}

func TestServerMalformed(t *testing.T) {
	errReply := func(cookie, reason string) string {
		b, err := Encode(cookie, FormatBencode, ErrorReply(reason))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"bad bencode", "c1 d7:command4:pin", "c1 d12:error-reason35:Could not decode bencode dictionary6:result5:errore"},
		{"no payload", "c2 ", errReply("c2", ReasonNoPayload)},
		{"unknown format", "c3 hello", errReply("c3", ReasonBadFormat)},
		{"no command", "c4 d7:call-id1:xe", `c4 d12:error-reason36:Dictionary contains no key "command"6:result5:errore`},
		{"bencode list", "c5 le", errReply("c5", ReasonBadFormat)},
		{"bad JSON answered in JSON", `c6 {"command":`, `c6 {"error-reason":"Failed to parse JSON document","result":"error"}`},
		{"JSON not an object", `c7 {`, `c7 {"error-reason":"Failed to parse JSON document","result":"error"}`},
		{"deep nesting", "c8 d1:a" + strings.Repeat("l", 400) + strings.Repeat("e", 400) + "e", errReply("c8", ReasonTooDeep)},
		{"oversized", "c9 d1:a2000:" + strings.Repeat("x", 2000) + "e", errReply("c9", ReasonTooLarge)},
		{"oversized JSON", `c10 {"a":"` + strings.Repeat("x", 2000) + `"}`, `c10 {"error-reason":"Message too large","result":"error"}`},
		{"invalid value", "c11 " + benc(dict{{"command", "offer"}, {"TOS", "loud"}}), errReply("c11", `invalid value for key "TOS"`)},
		{"integer overflow", "c12 d7:commandi99999999999999999999999ee", errReply("c12", ReasonBadBencode)},
	}
	h := newTestHandler()
	s := startServer(t, ServerConfig{MaxMessage: 1024}, h)
	c := dial(t, s.LocalAddr())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := roundTrip(t, c, tc.msg); got != tc.want {
				t.Errorf("reply\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	if n := h.calls.Load(); n != 0 {
		t.Errorf("handler called %d times for malformed requests", n)
	}
	st := s.Stats()
	if st.Commands[StatsInvalid].Requests != uint64(len(tests)) || st.Errors != uint64(len(tests)) {
		t.Errorf("stats: %d invalid requests, %d errors; want %d each", st.Commands[StatsInvalid].Requests, st.Errors, len(tests))
	}
}

func TestServerDropsNoCookie(t *testing.T) {
	s := startServer(t, ServerConfig{}, newTestHandler())
	c := dial(t, s.LocalAddr())
	for _, msg := range []string{"d7:command4:pinge", " d7:command4:pinge", "nospace"} {
		send(t, c, msg)
	}
	// Datagrams are read in order, so if the first reply is the pong,
	// nothing was sent for the cookie-less ones.
	if got, want := roundTrip(t, c, "p d7:command4:pinge"), "p d6:result4:ponge"; got != want {
		t.Errorf("first reply = %q, want %q (a cookie-less datagram was answered?)", got, want)
	}
	if st := s.Stats(); st.Dropped != 3 || st.Requests != 1 {
		t.Errorf("Dropped = %d, Requests = %d; want 3, 1", st.Dropped, st.Requests)
	}
}

// TestServerRetransmitWhileSlow sends copies of a cookie while its request
// is still running: one with another body, one from another socket. The
// handler must run once and every copy must get the same bytes.
func TestServerRetransmitWhileSlow(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, ServerConfig{}, h)
	a := dial(t, s.LocalAddr())
	b := dial(t, s.LocalAddr())
	req := "r1 " + benc(dict{{"command", "slow"}, {"call-id", "call-1"}})
	send(t, a, req)
	if id := <-h.started; id != "call-1" {
		t.Fatalf("started %q", id)
	}
	send(t, a, req)
	send(t, a, "r1 d7:command4:pinge") // same cookie, different body
	send(t, b, req)                    // same cookie, different source
	waitFor(t, func() bool { return s.Stats().Retransmits == 3 })
	close(h.release)
	want := recv(t, a)
	if !strings.HasPrefix(want, "r1 d7:call-id6:call-1") {
		t.Fatalf("reply = %q", want)
	}
	for i, got := range []string{recv(t, a), recv(t, a), recv(t, b)} {
		if got != want {
			t.Errorf("copy %d got %q, want %q", i, got, want)
		}
	}
	// After completion a retransmission is answered from the cache.
	if got := roundTrip(t, b, "r1 d7:command4:pinge"); got != want {
		t.Errorf("late retransmission got %q, want %q", got, want)
	}
	if n := h.calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
	// The server counts a reply right after sending it: wait for the count.
	waitFor(t, func() bool { return s.Stats().Replies == 5 })
	st := s.Stats()
	if st.Requests != 1 || st.Retransmits != 4 || st.Replies != 5 {
		t.Errorf("stats: Requests %d, Retransmits %d, Replies %d; want 1, 4, 5", st.Requests, st.Retransmits, st.Replies)
	}
}

func TestServerCookieReuseAcrossCommands(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, ServerConfig{}, h)
	c := dial(t, s.LocalAddr())
	first := roundTrip(t, c, "same "+benc(dict{{"command", "echo"}, {"call-id", "x"}}))
	// As in the reference: a new command under an old cookie gets the old reply.
	if got := roundTrip(t, c, "same d7:command4:pinge"); got != first {
		t.Errorf("reused cookie got %q, want cached %q", got, first)
	}
}

func TestServerHandlerFailures(t *testing.T) {
	s := startServer(t, ServerConfig{}, newTestHandler())
	c := dial(t, s.LocalAddr())
	want := "x d12:error-reason14:internal error6:result5:errore"
	if got := roundTrip(t, c, "x "+benc(dict{{"command", "panic"}, {"call-id", "p1"}})); got != want {
		t.Errorf("panicking handler reply = %q, want %q", got, want)
	}
	want = "y d12:error-reason14:internal error6:result5:errore"
	if got := roundTrip(t, c, "y d7:command3:nile"); got != want {
		t.Errorf("nil reply = %q, want %q", got, want)
	}
	if got, want := roundTrip(t, c, "z d7:command4:pinge"), "z d6:result4:ponge"; got != want {
		t.Errorf("after a panic, ping = %q, want %q", got, want)
	}
}

func TestServerIgnoredAndSource(t *testing.T) {
	s := startServer(t, ServerConfig{}, newTestHandler())
	c := dial(t, s.LocalAddr())
	got := roundTrip(t, c, "i "+benc(dict{{"command", "echo"}, {"call-id", "c"}, {"bogus", "1"}, {"flags", []string{"nope"}}}))
	want := "i d7:call-id1:c4:from9:127.0.0.17:ignoredl5:bogus10:flags=nopee6:result2:oke"
	if got != want {
		t.Errorf("reply\n got %q\nwant %q", got, want)
	}
}

func TestServerStats(t *testing.T) {
	s := startServer(t, ServerConfig{}, newTestHandler())
	c := dial(t, s.LocalAddr())
	roundTrip(t, c, "1 d7:command4:pinge")
	roundTrip(t, c, "2 d7:command4:pinge")
	roundTrip(t, c, "2 d7:command4:pinge") // retransmission
	roundTrip(t, c, "3 d7:command5:Offere")
	roundTrip(t, c, "4 d7:command9:frobnicate")
	roundTrip(t, c, "5 x")
	// The server counts a reply right after sending it: wait for the count.
	waitFor(t, func() bool { return s.Stats().Replies == 6 })
	st := s.Stats()
	lo := netip.MustParseAddr("127.0.0.1")
	checks := []struct {
		name string
		got  CommandStats
		reqs uint64
		errs uint64
	}{
		{"ping", st.Commands["ping"], 2, 0},
		{"offer", st.Commands["offer"], 1, 1},
		{"unknown", st.Commands[StatsUnknown], 1, 1},
		{"invalid", st.Commands[StatsInvalid], 1, 1},
		{"proxy ping", st.Proxies[lo]["ping"], 2, 0},
		{"proxy offer", st.Proxies[lo]["offer"], 1, 1},
	}
	for _, ck := range checks {
		if ck.got.Requests != ck.reqs || ck.got.Errors != ck.errs {
			t.Errorf("%s: %d requests, %d errors; want %d, %d", ck.name, ck.got.Requests, ck.got.Errors, ck.reqs, ck.errs)
		}
	}
	if st.Requests != 5 || st.Retransmits != 1 || st.Replies != 6 || st.Errors != 3 {
		t.Errorf("totals %+v", st)
	}
	if st.HandleTime <= 0 || st.Commands["ping"].HandleTime <= 0 {
		t.Errorf("handle time not recorded: %v, %v", st.HandleTime, st.Commands["ping"].HandleTime)
	}
	// The snapshot is a copy.
	st.Commands["ping"] = CommandStats{}
	if s.Stats().Commands["ping"].Requests != 2 {
		t.Error("Stats returned shared maps")
	}
}

func TestServerMaxInFlight(t *testing.T) {
	h := newTestHandler()
	s := startServer(t, ServerConfig{MaxInFlight: 1}, h)
	c := dial(t, s.LocalAddr())
	send(t, c, "a "+benc(dict{{"command", "slow"}, {"call-id", "A"}}))
	<-h.started
	send(t, c, "b d7:command4:pinge")
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 100)); err == nil {
		t.Fatalf("got a reply (%d bytes) while the only handler slot was busy", n)
	}
	close(h.release)
	if got := recv(t, c); !strings.HasPrefix(got, "a ") {
		t.Errorf("first reply = %q, want the slow one", got)
	}
	if got := recv(t, c); got != "b d6:result4:ponge" {
		t.Errorf("second reply = %q, want the pong", got)
	}
}

func TestServerShutdownWaitsForHandlers(t *testing.T) {
	h := newTestHandler()
	s, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := dial(t, s.LocalAddr())
	send(t, c, "s "+benc(dict{{"command", "slow"}, {"call-id", "S"}}))
	<-h.started
	cancel()
	// The handler sees ctx done, returns, and its reply still goes out.
	if got := recv(t, c); !strings.HasPrefix(got, "s d7:call-id1:S") {
		t.Errorf("reply during shutdown = %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.Serve(context.Background()); !errors.Is(err, ErrServing) {
		t.Errorf("second Serve = %v, want ErrServing", err)
	}
}

// TestServerWildcardReplySource checks that a wildcard listener replies from
// the address a request was sent to: the client's connected socket drops
// anything else, as Kamailio's does.
func TestServerWildcardReplySource(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		target string
	}{
		{"IPv4 wildcard", "0.0.0.0:0", "127.0.0.2"},
		{"dual-stack wildcard, IPv4 client", "[::]:0", "127.0.0.3"},
		{"dual-stack wildcard, IPv6 client", "[::]:0", "::1"},
		{"IPv6 loopback", "[::1]:0", "::1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort(tc.listen)}, newTestHandler())
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tc.listen, err)
			}
			s.Close()
			s = startServer(t, ServerConfig{Addr: netip.MustParseAddrPort(tc.listen)}, newTestHandler())
			to := netip.AddrPortFrom(netip.MustParseAddr(tc.target), s.LocalAddr().Port())
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
			if err != nil {
				t.Skipf("cannot reach %v here: %v", to, err)
			}
			defer c.Close()
			if got, want := roundTrip(t, c, "w d7:command4:pinge"), "w d6:result4:ponge"; got != want {
				t.Errorf("reply = %q, want %q", got, want)
			}
		})
	}
}

func TestNewServerErrors(t *testing.T) {
	if _, err := NewServer(ServerConfig{}, newTestHandler()); err == nil {
		t.Error("NewServer without an address succeeded")
	}
	if _, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, nil); err == nil {
		t.Error("NewServer without a handler succeeded")
	}
	s := startServer(t, ServerConfig{}, newTestHandler())
	if _, err := NewServer(ServerConfig{Addr: s.LocalAddr()}, newTestHandler()); err == nil {
		t.Error("NewServer on a port in use succeeded")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

// Requests run on long-lived workers that wait for the next one: closing
// the socket must still end Serve at once, not after their idle time.
func TestServerCloseEndsIdleWorkers(t *testing.T) {
	s, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, newTestHandler())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	c := dial(t, s.LocalAddr())
	for i := range 4 {
		send(t, c, fmt.Sprintf("c%d d7:command4:pinge", i))
		if got := recv(t, c); got != fmt.Sprintf("c%d d6:result4:ponge", i) {
			t.Fatalf("reply %d = %q", i, got)
		}
	}
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close while its workers were idle")
	}
}
