// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// readFixture loads a reply the incumbent (rtpengine 10.5) sent during a
// harness run.
func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "rtpengine-10.5", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestEncodeDecodeNG(t *testing.T) {
	tests := []struct {
		name string
		dict map[string]any
	}{
		{"ping", map[string]any{"command": "ping"}},
		{"query", map[string]any{"command": "query", "call-id": "a b@c"}},
		{"nested", map[string]any{"command": "offer", "flags": []any{"trust-address"}, "limit": int64(3), "codec": map[string]any{"strip": []any{"PCMU"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, err := EncodeNG("c00k1e", tt.dict)
			if err != nil {
				t.Fatalf("EncodeNG: %v", err)
			}
			cookie, got, err := DecodeNG(msg)
			if err != nil {
				t.Fatalf("DecodeNG(%q): %v", msg, err)
			}
			if cookie != "c00k1e" {
				t.Errorf("cookie = %q, want %q", cookie, "c00k1e")
			}
			again, err := EncodeNG(cookie, got)
			if err != nil {
				t.Fatalf("EncodeNG(decoded): %v", err)
			}
			if !bytes.Equal(again, msg) {
				t.Errorf("round trip:\n got %q\nwant %q", again, msg)
			}
		})
	}
}

func TestEncodeNGRejectsBadCookie(t *testing.T) {
	for _, cookie := range []string{"", "two words", "line\nbreak"} {
		if _, err := EncodeNG(cookie, map[string]any{"command": "ping"}); !errors.Is(err, ErrNGMalformed) {
			t.Errorf("EncodeNG(%q) error = %v, want ErrNGMalformed", cookie, err)
		}
	}
}

func TestDecodeNGErrors(t *testing.T) {
	tests := []struct {
		name string
		msg  string
	}{
		{"empty", ""},
		{"no space", "cookie"},
		{"leading space", " d6:result2:oke"},
		{"empty body", "c "},
		{"list body", "c l2:oke"},
		{"json body", `c {"result":"ok"}`},
		{"unterminated dict", "c d6:result2:ok"},
		{"odd dict", "c d6:resulte"},
		{"integer key", "c di1ei2ee"},
		{"string longer than message", "c d6:result99:oke"},
		{"huge string length", "c d6:result2147483647:oke"},
		{"negative string length", "c d6:result-1:e"},
		{"bad integer", "c d1:ai1x2ee"},
		{"unterminated integer", "c d1:ai12"},
		{"trailing bytes", "c d6:result2:okeXX"},
		{"too deep", "c d1:a" + strings.Repeat("l", maxBencodeDepth+2) + strings.Repeat("e", maxBencodeDepth+2) + "e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DecodeNG([]byte(tt.msg))
			if !errors.Is(err, ErrNGMalformed) {
				t.Errorf("DecodeNG(%q) error = %v, want ErrNGMalformed", tt.msg, err)
			}
		})
	}
}

func TestRtpengineFixtures(t *testing.T) {
	t.Run("ping", func(t *testing.T) {
		_, reply, err := DecodeNG(readFixture(t, "ping-reply.ng"))
		if err != nil {
			t.Fatal(err)
		}
		if got := reply["result"]; got != "pong" {
			t.Errorf("result = %v, want pong", got)
		}
	})
	t.Run("list", func(t *testing.T) {
		for file, want := range map[string][]string{
			"list-reply.ng":       {"fixture-call@198.51.100.10"},
			"list-empty-reply.ng": {},
		} {
			_, reply, err := DecodeNG(readFixture(t, file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ListCalls(reply)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: calls = %q, want %q", file, got, want)
			}
		}
	})
	t.Run("query", func(t *testing.T) {
		_, reply, err := DecodeNG(readFixture(t, "query-reply.ng"))
		if err != nil {
			t.Fatal(err)
		}
		eps, err := QueryEndpoints(reply)
		if err != nil {
			t.Fatal(err)
		}
		want := []StreamEndpoint{
			{Tag: "callee-tag", Address: "192.0.2.1", Port: 30000, Flags: []string{"RTP", "filled"}},
			{Tag: "callee-tag", Address: "192.0.2.1", Port: 30001, Flags: []string{"RTCP", "filled"}},
			{Tag: "caller-tag", Address: "198.51.100.1", Port: 30000, Flags: []string{"RTP", "filled"}},
			{Tag: "caller-tag", Address: "198.51.100.1", Port: 30001, Flags: []string{"RTCP", "filled"}},
		}
		if len(eps) != len(want) {
			t.Fatalf("endpoints = %v, want %v", eps, want)
		}
		for i := range want {
			if eps[i].Tag != want[i].Tag || eps[i].Address != want[i].Address || eps[i].Port != want[i].Port || !slices.Equal(eps[i].Flags, want[i].Flags) {
				t.Errorf("endpoint %d = %v, want %v", i, eps[i], want[i])
			}
		}
		if !hasEndpoint(eps, "198.51.100.1", 30000) || hasEndpoint(eps, "198.51.100.1", 30002) {
			t.Errorf("hasEndpoint disagrees with %v", eps)
		}
	})
	t.Run("statistics", func(t *testing.T) {
		for file, want := range map[string]int64{"statistics-during-reply.ng": 1, "statistics-reply.ng": 0} {
			_, reply, err := DecodeNG(readFixture(t, file))
			if err != nil {
				t.Fatal(err)
			}
			own, total, err := SessionCounts(reply)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if own != want || total != want {
				t.Errorf("%s: sessionsown=%d sessionstotal=%d, want %d and %d", file, own, total, want, want)
			}
		}
	})
}

func TestReplyShapeErrors(t *testing.T) {
	tests := []struct {
		name string
		fn   func() error
	}{
		{"list without calls", func() error { _, err := ListCalls(map[string]any{"result": "ok"}); return err }},
		{"list calls not a list", func() error { _, err := ListCalls(map[string]any{"calls": "x"}); return err }},
		{"list call-id not a string", func() error { _, err := ListCalls(map[string]any{"calls": []any{int64(1)}}); return err }},
		{"query without tags", func() error { _, err := QueryEndpoints(map[string]any{}); return err }},
		{"query tag not a dict", func() error { _, err := QueryEndpoints(map[string]any{"tags": map[string]any{"a": "b"}}); return err }},
		{"query port not a number", func() error {
			_, err := QueryEndpoints(map[string]any{"tags": map[string]any{"a": map[string]any{"medias": []any{
				map[string]any{"streams": []any{map[string]any{"local port": "x"}}},
			}}}})
			return err
		}},
		{"statistics missing", func() error { _, _, err := SessionCounts(map[string]any{}); return err }},
		{"statistics no current", func() error {
			_, _, err := SessionCounts(map[string]any{"statistics": map[string]any{}})
			return err
		}},
		{"statistics no sessionsown", func() error {
			_, _, err := SessionCounts(map[string]any{"statistics": map[string]any{"currentstatistics": map[string]any{"sessionstotal": int64(0)}}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, ErrReplyShape) {
				t.Errorf("error = %v, want ErrReplyShape", err)
			}
		})
	}
}

// fakeRelay answers ng requests on loopback with behaviour chosen per test.
func fakeRelay(t *testing.T, handle func(n int, cookie string, req map[string]any) [][]byte) *net.UDPAddr {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for n := 0; ; n++ {
			size, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			cookie, req, err := DecodeNG(buf[:size])
			if err != nil {
				continue
			}
			for _, reply := range handle(n, cookie, req) {
				_, _ = conn.WriteToUDP(reply, from)
			}
		}
	}()
	return conn.LocalAddr().(*net.UDPAddr)
}

func newTestClient(t *testing.T, server *net.UDPAddr, tries int) *NGClient {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c := NewNGClient(conn, server, 100*time.Millisecond, tries)
	t.Cleanup(func() { c.Close() })
	return c
}

func mustEncode(t *testing.T, cookie string, dict map[string]any) []byte {
	msg, err := EncodeNG(cookie, dict)
	if err != nil {
		t.Error(err)
	}
	return msg
}

func TestNGClientRetransmitsWithSameCookie(t *testing.T) {
	cookies := make(chan string, 4)
	server := fakeRelay(t, func(n int, cookie string, req map[string]any) [][]byte {
		cookies <- cookie
		if n == 0 {
			return nil // lost: the client must retransmit
		}
		return [][]byte{
			mustEncode(t, "stale", map[string]any{"result": "error"}), // not ours: skipped
			mustEncode(t, cookie, map[string]any{"result": "pong"}),
		}
	})
	c := newTestClient(t, server, 3)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	first, second := <-cookies, <-cookies
	if first != second {
		t.Errorf("retransmission used cookie %q, first try %q: must be the same", second, first)
	}
}

func TestNGClientErrors(t *testing.T) {
	t.Run("error result", func(t *testing.T) {
		server := fakeRelay(t, func(_ int, cookie string, _ map[string]any) [][]byte {
			return [][]byte{mustEncode(t, cookie, map[string]any{"result": "error", "error-reason": "Unknown call-id"})}
		})
		_, err := newTestClient(t, server, 1).Query(context.Background(), "x")
		if !errors.Is(err, ErrNGFailed) || !strings.Contains(err.Error(), "Unknown call-id") {
			t.Errorf("error = %v, want ErrNGFailed with the reason", err)
		}
	})
	t.Run("wrong ping result", func(t *testing.T) {
		server := fakeRelay(t, func(_ int, cookie string, _ map[string]any) [][]byte {
			return [][]byte{mustEncode(t, cookie, map[string]any{"result": "ok"})}
		})
		if err := newTestClient(t, server, 1).Ping(context.Background()); !errors.Is(err, ErrReplyShape) {
			t.Errorf("error = %v, want ErrReplyShape", err)
		}
	})
	t.Run("malformed reply", func(t *testing.T) {
		server := fakeRelay(t, func(_ int, cookie string, _ map[string]any) [][]byte {
			return [][]byte{[]byte(cookie + " d6:result")}
		})
		if _, err := newTestClient(t, server, 1).Statistics(context.Background()); !errors.Is(err, ErrNGMalformed) {
			t.Errorf("error = %v, want ErrNGMalformed", err)
		}
	})
	t.Run("silence", func(t *testing.T) {
		server := fakeRelay(t, func(int, string, map[string]any) [][]byte { return nil })
		start := time.Now()
		_, err := newTestClient(t, server, 2).List(context.Background())
		if !errors.Is(err, ErrNGTimeout) {
			t.Errorf("error = %v, want ErrNGTimeout", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("gave up after %v, want 2 tries of 100ms", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		server := fakeRelay(t, func(int, string, map[string]any) [][]byte { return nil })
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := newTestClient(t, server, 5).List(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
}

func FuzzDecodeNG(f *testing.F) {
	for _, name := range []string{"ping-reply.ng", "list-reply.ng", "query-reply.ng", "query-unknown-reply.ng", "statistics-reply.ng"} {
		data, err := os.ReadFile(filepath.Join("testdata", "rtpengine-10.5", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cookie, dict, err := DecodeNG(msg)
		if err != nil {
			return
		}
		// Whatever decodes must survive the helpers and re-encode.
		_, _ = ListCalls(dict)
		_, _ = QueryEndpoints(dict)
		_, _, _ = SessionCounts(dict)
		if cookie == "" {
			t.Fatalf("decoded %q with an empty cookie", msg)
		}
		if _, err := EncodeNG("c", dict); err != nil {
			t.Fatalf("decoded %q but cannot re-encode: %v", msg, err)
		}
	})
}
