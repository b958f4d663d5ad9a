// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// start runs the daemon with args until the test ends.
func start(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, args, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return logs
}

func ng(t *testing.T, addr string, req map[string]any) map[string]any {
	t.Helper()
	c, err := ngproto.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout, c.Tries = 200*time.Millisecond, 25 // the daemon may still be starting
	reply, err := c.Do(context.Background(), req)
	if err != nil {
		t.Fatalf("%v: %v", req, err)
	}
	return reply
}

// The seed tutorial's rtpengine.conf, with its addresses filled in for this
// host, starts relayd and serves an offer on both interfaces.
func TestSeedConfigStarts(t *testing.T) {
	seed, err := os.ReadFile("../config/testdata/rtpengine.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := strings.NewReplacer(
		"10.0.1.20:2223", "127.0.0.1:24299",
		"10.0.1.20", "127.0.0.1",
		"/run/rtpengine/rtpengine.pid", filepath.Join(dir, "run", "relayd.pid"),
	).Replace(string(seed))
	path := filepath.Join(dir, "rtpengine.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := start(t, "--config-file="+path)
	if got := ng(t, "127.0.0.1:24299", map[string]any{"command": "ping"}); got["result"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
	sdp := "v=0\r\no=- 1 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
	got := ng(t, "127.0.0.1:24299", map[string]any{"command": "offer", "call-id": "seed", "from-tag": "a",
		"sdp": sdp, "direction": []any{"internal", "external"}})
	if got["result"] != "ok" || !strings.Contains(got["sdp"].(string), "c=IN IP4 203.0.113.20\r\n") {
		t.Errorf("offer towards external: %v", got)
	}
	pid, err := os.ReadFile(filepath.Join(dir, "run", "relayd.pid"))
	if err != nil || strings.TrimSpace(string(pid)) == "" {
		t.Errorf("pidfile: %q %v", pid, err)
	}
	// Loopback only: the fast path cannot help, relayd says so once and
	// forwards in userspace.
	if n := strings.Count(logs.String(), "XDP fast path unavailable"); n != 1 {
		t.Errorf("%d lines about the fast path falling back, want 1:\n%s", n, logs.String())
	}
	for _, key := range []string{`key \"log-facility\" ignored`, `key \"log-facility-cdr\" ignored`} {
		if !strings.Contains(logs.String(), key) {
			t.Errorf("no warning about %s in:\n%s", key, logs.String())
		}
	}
}

func TestBadConfigStopsStartup(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--config-file=none", "--port-min=abc"}, `"port-min"`},
		{[]string{"--config-file=none", "--interface=nonsense"}, `"interface"`},
		{[]string{"--config-file=none", "--tos=300"}, `"tos"`},
		{[]string{"--config-file=/nonexistent/relayd.conf"}, "/nonexistent/relayd.conf"},
		{[]string{"--config-file=none", "--xdp=kernel"}, `"xdp"`},
		// Asked for explicitly, the fast path must load: on loopback it cannot.
		{[]string{"--config-file=none", "--xdp=native", "--listen-ng=127.0.0.1:24298"}, "xdp = native"},
	}
	for _, tc := range tests {
		err := Run(context.Background(), tc.args, &syncBuffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

// A listen-ng address that cannot be bound is a clear startup error.
func TestListenError(t *testing.T) {
	err := Run(context.Background(), []string{"--config-file=none", "--listen-ng=192.0.2.123:2223"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "listen-ng") {
		t.Errorf("got %v", err)
	}
}
