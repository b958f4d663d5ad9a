// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/cli"
	"github.com/relayd/relayd/pkg/ngproto"
)

// Ports 24280-24297 belong to this file's tests.

func notifySocket(t *testing.T) (*net.UnixConn, func(time.Duration) []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	read := func(d time.Duration) []string {
		var out []string
		buf := make([]byte, 4096)
		deadline := time.Now().Add(d)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, err := conn.Read(buf)
			if err != nil {
				return out
			}
			out = append(out, string(buf[:n]))
		}
	}
	return conn, read
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// relayd under systemd: READY=1 once the sockets are up, WATCHDOG=1 while
// it runs, STOPPING=1 when it is told to stop; /metrics and the CLI answer.
func TestSystemdNotifyMetricsAndCLI(t *testing.T) {
	_, read := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", "")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--config-file=none", "--listen-ng=127.0.0.1:24280", "--port-min=24000", "--port-max=24099",
			"--listen-http=127.0.0.1:24281", "--listen-cli=127.0.0.1:24282", "--xdp=off"}, logs)
	}()
	msgs := read(2 * time.Second)
	if len(msgs) == 0 || !strings.HasPrefix(msgs[0], "READY=1\n") {
		cancel()
		<-done
		t.Fatalf("first notification %q, want READY=1 (logs:\n%s)", msgs, logs.String())
	}
	watchdogs := 0
	for _, m := range msgs[1:] {
		if m == "WATCHDOG=1" {
			watchdogs++
		}
	}
	if watchdogs < 3 {
		t.Errorf("%d WATCHDOG=1 in 2 s with WatchdogSec=0.4s, want >= 3 (%q)", watchdogs, msgs)
	}
	// Ready means ready: ng, metrics and CLI answer at once.
	if got := ng(t, "127.0.0.1:24280", map[string]any{"command": "ping"}); got["result"] != "pong" {
		t.Errorf("ping: %v", got)
	}
	resp, err := http.Get("http://127.0.0.1:24281/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`rtpengine_sessions{type="own"} 0`, `rtpengine_requests_total{proxy="127.0.0.1",request="ping"} 1`,
		`relayd_control_request_duration_seconds_count{command="ping"} 1`, `relayd_build_info{version="dev"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if out, err := cli.Send("127.0.0.1:24282", "list maxsessions", time.Second); err != nil || out != "Maximum sessions configured on rtpengine: -1\n" {
		t.Errorf("CLI: %q %v", out, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A watchdog ping may still be on its way; STOPPING=1 must follow.
	msgs = read(500 * time.Millisecond)
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "STOPPING=1") }) {
		t.Errorf("after cancel: %q, want STOPPING=1", msgs)
	}
}

// SIGHUP applies log level, timeouts and max-sessions from the edited file
// and names the changed keys it cannot apply.
func TestSIGHUPReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relayd.conf")
	write := func(s string) {
		if err := os.WriteFile(path, []byte("[rtpengine]\nlisten-ng = 127.0.0.1:24283\nlisten-cli = 127.0.0.1:24284\nxdp = off\n"+s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("port-min = 24100\nport-max = 24199\ntimeout = 60\nlog-level = 6\nng-allow-from = 127.0.0.0/8\n")
	logs := start(t, "--config-file="+path)
	ng(t, "127.0.0.1:24283", map[string]any{"command": "ping"})
	write("port-min = 24200\nport-max = 24299\ntimeout = 17\nlog-level = 7\nmax-sessions = 0\nsilent-timeout = 99\nng-allow-from = 192.0.2.1\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload log line", 5*time.Second, func() bool { return strings.Contains(logs.String(), "configuration reloaded") })
	send := func(cmd string) string {
		out, err := cli.Send("127.0.0.1:24284", cmd, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for cmd, want := range map[string]string{
		"list timeout":       "TIMEOUT=17\n",
		"list silenttimeout": "SILENT_TIMEOUT=99\n",
		"list maxsessions":   "Maximum sessions configured on rtpengine: 0\n",
		"list loglevel":      "core = 7\n",
	} {
		if got := send(cmd); got != want {
			t.Errorf("after SIGHUP %s = %q, want %q", cmd, got, want)
		}
	}
	l := logs.String()
	// The allow-list no longer holds this host: its requests go unanswered.
	c, err := ngproto.Dial("127.0.0.1:24283")
	if err != nil {
		t.Fatal(err)
	}
	c.Timeout, c.Tries = 200*time.Millisecond, 1
	if reply, err := c.Do(context.Background(), map[string]any{"command": "ping"}); !errors.Is(err, ngproto.ErrTimeout) {
		t.Errorf("ping from outside the reloaded ng-allow-from: %v, %v; want no reply", reply, err)
	}
	c.Close()
	if !strings.Contains(l, `applied="[ng-allow-from timeout silent-timeout max-sessions log-level]"`) {
		t.Errorf("reload log does not list the applied keys:\n%s", l)
	}
	if !strings.Contains(l, `msg="SIGHUP: changed keys need a restart to take effect" keys="[port-min port-max]"`) {
		t.Errorf("reload log does not name the keys needing a restart:\n%s", l)
	}
	// A broken file is reported and changes nothing.
	write("timeout = abc\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the rejected reload", 5*time.Second, func() bool { return strings.Contains(logs.String(), "configuration not reloaded") })
	if got := send("list timeout"); got != "TIMEOUT=17\n" {
		t.Errorf("after a bad reload: %q", got)
	}
}

// A call whose media never comes is torn down on timeout and the proxy is
// told with dlg.terminate_dlg (the Kamailio run is in test/e2e).
func TestTimeoutNotice(t *testing.T) {
	type rpc struct {
		Method string   `xml:"methodName"`
		Params []string `xml:"params>param>value>string"`
	}
	var mu sync.Mutex
	var got []rpc
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c rpc
		b, _ := io.ReadAll(r.Body)
		if xml.Unmarshal(b, &c) != nil {
			http.Error(w, "bad", 400)
			return
		}
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
		io.WriteString(w, `<?xml version="1.0"?><methodResponse><params><param><value><string>ok</string></value></param></params></methodResponse>`)
	}))
	defer srv.Close()
	logs := start(t, "--config-file=none", "--listen-ng=127.0.0.1:24285", "--port-min=24300", "--port-max=24399",
		"--timeout=1", "--b2b-url="+srv.URL+"/RPC2", "--xmlrpc-format=2", "--xdp=off")
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 17000 RTP/AVP 8\r\n"
	ng(t, "127.0.0.1:24285", map[string]any{"command": "offer", "call-id": "quiet", "from-tag": "f", "sdp": sdp})
	ng(t, "127.0.0.1:24285", map[string]any{"command": "answer", "call-id": "quiet", "from-tag": "f", "to-tag": "t", "sdp": sdp})
	waitFor(t, "the teardown notice", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Method != "dlg.terminate_dlg" || strings.Join(got[0].Params, " ") != "quiet f t" {
		t.Errorf("notices %+v, want one dlg.terminate_dlg(quiet, f, t)", got)
	}
	if !strings.Contains(logs.String(), "msg=CDR component=session call-id=quiet reason=timeout") {
		t.Errorf("no CDR line:\n%s", logs.String())
	}
}
