// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// rpcCall is one request an XML-RPC server received.
type rpcCall struct {
	Path   string
	Method string
	Params []string
}

// rpcServer is a small XML-RPC server: it decodes every methodCall and
// answers with reply(call).
type rpcServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls []rpcCall
}

func newRPCServer(t *testing.T, reply func(rpcCall) (int, string)) *rpcServer {
	t.Helper()
	s := &rpcServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var mc struct {
			MethodName string   `xml:"methodName"`
			Params     []string `xml:"params>param>value>string"`
		}
		if r.Header.Get("Content-Type") != "text/xml" || xml.Unmarshal(body, &mc) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		c := rpcCall{Path: r.URL.Path, Method: mc.MethodName, Params: mc.Params}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		code, text := reply(c)
		w.WriteHeader(code)
		io.WriteString(w, text)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rpcServer) received() []rpcCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rpcCall(nil), s.calls...)
}

const okReply = `<?xml version="1.0"?><methodResponse><params><param><value><string>ok</string></value></param></params></methodResponse>`

func faultReply(s string) string {
	return `<?xml version="1.0"?><methodResponse><fault><value><struct><member><name>faultCode</name><value><int>500</int></value></member>` +
		`<member><name>faultString</name><value><string>` + s + `</string></value></member></struct></value></fault></methodResponse>`
}

func timedOut(id string) session.CallEnd {
	return session.CallEnd{CallID: id, Reason: "timeout", Timeout: true,
		Tags: []string{"from<&>", "to"}, Dialogues: [][2]string{{"from<&>", "to"}},
		Origin: netip.MustParseAddrPort("127.0.0.1:5060")}
}

func run(t *testing.T, n *Notifier) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func waitStats(t *testing.T, n *Notifier, want Stats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", n.Stats(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		format int
		want   []rpcCall
	}{
		{FormatKamailio, []rpcCall{{"/RPC2", "dlg.terminate_dlg", []string{"c<1>", "from<&>", "to"}}}},
		{FormatCallID, []rpcCall{{"/RPC2", "teardown", []string{"c<1>"}}}},
		{FormatSEMS, []rpcCall{{"/RPC2", "di", []string{"sbc", "postControlCmd", "from<&>", "teardown"}},
			{"/RPC2", "di", []string{"sbc", "postControlCmd", "to", "teardown"}}}},
	} {
		srv := newRPCServer(t, func(rpcCall) (int, string) { return 200, okReply })
		n, err := New(Config{URL: srv.URL + "/RPC2", Format: c.format})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, n)
		n.CallEnded(timedOut("c<1>"))
		// Calls the SIP side or the operator ended need no notice.
		n.CallEnded(session.CallEnd{CallID: "deleted", Reason: "terminated", Dialogues: [][2]string{{"a", "b"}}})
		waitStats(t, n, Stats{Sent: uint64(len(c.want))})
		stop()
		got := srv.received()
		if len(got) != len(c.want) {
			t.Fatalf("format %d: %+v, want %+v", c.format, got, c.want)
		}
		for i := range got {
			if got[i].Path != c.want[i].Path || got[i].Method != c.want[i].Method || strings.Join(got[i].Params, "|") != strings.Join(c.want[i].Params, "|") {
				t.Errorf("format %d call %d: %+v, want %+v", c.format, i, got[i], c.want[i])
			}
		}
	}
}

func TestResults(t *testing.T) {
	var mu sync.Mutex
	answer := func(rpcCall) (int, string) { return 200, okReply }
	srv := newRPCServer(t, func(c rpcCall) (int, string) { mu.Lock(); defer mu.Unlock(); return answer(c) })
	set := func(f func(rpcCall) (int, string)) { mu.Lock(); answer = f; mu.Unlock() }
	n, err := New(Config{URL: srv.URL + "/RPC2", Format: FormatKamailio, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, n)
	defer stop()
	set(func(rpcCall) (int, string) { return 200, faultReply("Dialog not found") })
	n.CallEnded(timedOut("gone"))
	waitStats(t, n, Stats{Sent: 1})
	set(func(rpcCall) (int, string) { return 200, faultReply("Something else") })
	n.CallEnded(timedOut("fault"))
	waitStats(t, n, Stats{Sent: 1, Failed: 1})
	set(func(rpcCall) (int, string) { return 500, "oops" })
	n.CallEnded(timedOut("http-error"))
	waitStats(t, n, Stats{Sent: 1, Failed: 2})
	set(func(rpcCall) (int, string) { return 200, "<html/>" })
	n.CallEnded(timedOut("not-xmlrpc"))
	waitStats(t, n, Stats{Sent: 1, Failed: 3})
	if c := n.Counters(); c["sent"] != 1 || c["failed"] != 3 || c["dropped"] != 0 {
		t.Errorf("Counters() = %v", c)
	}
}

// A proxy that does not answer must not hold up the caller: the queue fills,
// further notices are dropped and counted, and CallEnded stays instant.
func TestQueueBoundsAndNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	srv := newRPCServer(t, func(rpcCall) (int, string) { <-release; return 200, okReply })
	defer close(release)
	n, err := New(Config{URL: srv.URL, Format: FormatKamailio, Queue: 2, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, n)
	defer stop()
	start := time.Now()
	for i := 0; i < 10; i++ {
		n.CallEnded(timedOut("c"))
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("10 CallEnded took %v", d)
	}
	// Two queued (and one in flight, if the worker took it before the
	// queue filled); the rest dropped; those sent time out.
	deadline := time.Now().Add(5 * time.Second)
	for s := n.Stats(); s.Failed+s.Dropped != 10; s = n.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want failed+dropped = 10", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := n.Stats(); s.Sent != 0 || s.Dropped < 7 || s.Dropped > 8 {
		t.Errorf("stats %+v: want 7 or 8 dropped", s)
	}
}

func TestUnreachableProxy(t *testing.T) {
	n, err := New(Config{URL: "http://127.0.0.1:1/RPC2", Format: FormatKamailio})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, n)
	defer stop()
	n.CallEnded(timedOut("x"))
	waitStats(t, n, Stats{Failed: 1})
}

func TestExpandURL(t *testing.T) {
	for _, c := range []struct {
		url    string
		origin netip.AddrPort
		want   string
	}{
		{"http://%%:8090/RPC2", netip.MustParseAddrPort("192.0.2.7:5060"), "http://192.0.2.7:8090/RPC2"},
		{"http://%%:8090/", netip.MustParseAddrPort("[2001:db8::1]:5060"), "http://[2001:db8::1]:8090/"},
		{"http://%%:8090/", netip.MustParseAddrPort("[::ffff:10.0.0.1]:5060"), "http://10.0.0.1:8090/"},
		{"http://%%:8090/", netip.AddrPort{}, "http://127.0.0.1:8090/"},
		{"http://proxy:8090/", netip.MustParseAddrPort("192.0.2.7:5060"), "http://proxy:8090/"},
	} {
		if got := expandURL(c.url, c.origin); got != c.want {
			t.Errorf("expandURL(%q, %v) = %q, want %q", c.url, c.origin, got, c.want)
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no URL accepted")
	}
	if _, err := New(Config{URL: "http://x/", Format: 3}); err == nil {
		t.Error("format 3 accepted")
	}
}

func TestParseResponse(t *testing.T) {
	if err := ParseResponse([]byte(okReply)); err != nil {
		t.Errorf("ok: %v", err)
	}
	var f *Fault
	if err := ParseResponse([]byte(faultReply("Dialog not found"))); !errors.As(err, &f) || f.Code != 500 || f.String != "Dialog not found" {
		t.Errorf("fault: %v", err)
	}
	for _, bad := range []string{"", "<x/>", "<methodResponse></methodResponse>"} {
		if err := ParseResponse([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(okReply))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = ParseResponse(b) // must not panic
	})
}
