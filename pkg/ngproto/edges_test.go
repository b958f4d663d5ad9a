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
	"github.com/relayd/relayd/pkg/lograte/lograttest"
	"github.com/relayd/relayd/pkg/session"
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
	clk := lograttest.NewClock()
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
		if i%50 == 49 {
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
	clk.Advance(10 * time.Second)
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

// manyMediaSDP is an offer with n audio media.
func manyMediaSDP(n, port int) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1000 1 IN IP4 127.0.0.30\r\ns=-\r\nc=IN IP4 127.0.0.30\r\nt=0 0\r\n")
	for i := range n {
		b.WriteString("m=audio " + strconv.Itoa(port+2*i) + " RTP/AVP 0 8\r\na=sendrecv\r\n")
	}
	return b.String()
}

// A delete (or query) of a call with 60 media has a statistics tree
// larger than a datagram. The call is deleted and the proxy still gets its
// reply, without the per-stream statistics and with a warning saying so.
func TestOversizedReplyShed(t *testing.T) {
	r := newControlRig(t, func(c *session.Config) { c.PortMin, c.PortMax = 22000, 22999 })
	offer := with(with(kamailioOffer1(), "sdp", manyMediaSDP(60, 6000)), "call-id", "big")
	if got := r.do(offer); got["result"] != "ok" {
		t.Fatalf("offer: %v", got)
	}
	answer := with(with(kamailioAnswer(), "sdp", manyMediaSDP(60, 8000)), "call-id", "big")
	if got := r.do(answer); got["result"] != "ok" {
		t.Fatalf("answer: %v", got)
	}
	for _, cmd := range []string{"query", "delete"} {
		raw := r.doRaw(with(with(with(kamailioDelete(), "call-id", "big"), "command", cmd), "delete delay", 0))
		if len(raw) > MaxReplyDatagram {
			t.Fatalf("%s: %d-byte reply", cmd, len(raw))
		}
		_, body, _ := SplitMessage(raw)
		got, _, err := Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := got["warning"].(string)
		if got["result"] != "ok" || !strings.Contains(w, "too large for one datagram: left out per-stream statistics") {
			t.Errorf("%s: result %v, warning %q", cmd, got["result"], w)
		}
		tags, _ := got["tags"].(map[string]any)
		ff, _ := tags["ff2e887"].(map[string]any)
		medias, _ := ff["medias"].([]any)
		if len(medias) != 60 || got["created"] == nil || got["totals"] == nil {
			t.Fatalf("%s: %d medias, created %v, totals %v", cmd, len(medias), got["created"], got["totals"])
		}
		st := medias[59].(map[string]any)["streams"].([]any)[0].(map[string]any)
		if st["local port"] == nil || st["stats"] != nil {
			t.Errorf("%s: a stream kept %v, want its local port and endpoint only", cmd, st)
		}
	}
	if l := r.do(dict{{"command", "list"}}); len(l["calls"].([]any)) != 0 {
		t.Errorf("the call survived its delete: %v", l)
	}
}

// doRaw is do returning the reply datagram.
func (r *controlRig) doRaw(d dict) []byte {
	r.t.Helper()
	r.seq++
	cookie := "k" + strconv.Itoa(r.seq)
	if _, err := r.conn.Write([]byte(cookie + " " + benc(d))); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, 1<<17)
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := r.conn.Read(buf)
	if err != nil {
		r.t.Fatalf("no reply to %s: %v", d, err)
	}
	return buf[:n]
}

// Each step of the shedding leaves out one more part, and the warning lists
// them all; a reply with nothing optional left is answered with an error.
func TestShedSteps(t *testing.T) {
	stream := func(port int) Value {
		return Dict(F("local port", Int(int64(port))), F("endpoint", Dict(F("port", Int(4000)))),
			F("stats", Dict(F("packets", Int(1)))), F("flags", Strings([]string{"RTP"})),
			F("SSRC", List(Dict(F("SSRC", Int(1)), F("packets", Int(100))))))
	}
	media := Dict(F("index", Int(1)), F("type", Str("audio")), F("streams", List(stream(30000), stream(30001))))
	tree := OK(
		F("SSRC", Dict(F("1", Dict(F("tag", Str("a")), F("packets", Int(100)),
			F("average MOS", Dict(F("MOS", Int(43)))))))),
		F("created", Int(1)),
		F("tags", Dict(F("a", Dict(F("tag", Str("a")), F("label", Str("caller")), F("medias", List(media, media)))))),
		F("totals", Dict(F("RTP", Dict(F("packets", Int(2)))))),
		F("warning", Str("earlier warning")),
	)
	full, _ := Encode("c", FormatBencode, tree)
	want := []struct {
		left string
		has  []string
		lost []string
	}{
		{"per-SSRC statistics", []string{"average MOS", "local port", "5:stats"}, []string{"relay MOS", "9:packetsi100e"}},
		{"per-SSRC statistics, per-SSRC MOS", []string{"local port", "5:stats"}, []string{"average MOS"}},
		{"per-SSRC statistics, per-SSRC MOS, per-stream statistics", []string{"local port", "endpoint", "6:medias"}, []string{"5:stats", "5:flags"}},
		{"per-SSRC statistics, per-SSRC MOS, per-stream statistics, streams", []string{"6:medias", "5:index"}, []string{"local port"}},
		{"per-SSRC statistics, per-SSRC MOS, per-stream statistics, streams, medias", []string{"5:label", "4:tags"}, []string{"6:medias"}},
		{"per-SSRC statistics, per-SSRC MOS, per-stream statistics, streams, medias, tags", []string{"6:totals", "7:created"}, []string{"4:tags"}},
	}
	prev := len(full)
	for max := len(full) - 1; max > 0; max-- {
		b, left := shedReply("c", FormatBencode, tree, len(full), max)
		if len(b) > max && !strings.Contains(string(b), ReasonTooLarge) {
			t.Fatalf("max %d: %d bytes", max, len(b))
		}
		if strings.Contains(string(b), "result5:error") {
			if !strings.Contains(string(b), "does not fit one datagram of") {
				t.Errorf("max %d: %s", max, b)
			}
			break
		}
		if len(b) == prev {
			continue
		}
		prev = len(b)
		if len(want) == 0 {
			t.Fatalf("max %d: another step %v: %s", max, left, b)
		}
		w := want[0]
		want = want[1:]
		if got := strings.Join(left, ", "); got != w.left {
			t.Errorf("max %d: left out %q, want %q", max, got, w.left)
		}
		s := string(b)
		if !strings.Contains(s, "earlier warning; reply of "+strconv.Itoa(len(full))+" bytes too large for one datagram: left out "+w.left) {
			t.Errorf("max %d: warning not kept or not naming %q: %s", max, w.left, s)
		}
		for _, h := range w.has {
			if !strings.Contains(s, h) {
				t.Errorf("after %q: %q lost: %s", w.left, h, s)
			}
		}
		for _, l := range w.lost {
			if strings.Contains(s, l) {
				t.Errorf("after %q: %q kept: %s", w.left, l, s)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("steps never taken: %v", want)
	}
	// A list of call-ids is cut.
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = "call-" + strconv.Itoa(i)
	}
	list := OK(F("calls", Strings(ids)))
	lb, _ := Encode("c", FormatJSON, list)
	b, left := shedReply("c", FormatJSON, list, len(lb), 600)
	if len(b) > 600 || !strings.Contains(string(b), `"warning":"reply of `) || len(left) != 1 || !strings.HasPrefix(left[0], "all but the first ") {
		t.Errorf("list: %d bytes, left %v: %s", len(b), left, b)
	}
}

// SDP limits: 200 media (the incumbent's tested figure) are served; past a
// limit the error says which; a long unknown key does not swell the
// warning.
func TestSDPLimitReplies(t *testing.T) {
	r := newControlRig(t, func(c *session.Config) { c.PortMin, c.PortMax = 22000, 22999 })
	if got := r.do(with(with(kamailioOffer1(), "sdp", manyMediaSDP(200, 6000)), "call-id", "two-hundred")); got["result"] != "ok" {
		t.Errorf("offer with 200 media: %v", got)
	}
	got := r.do(with(with(kamailioOffer1(), "sdp", manyMediaSDP(1501, 6000)), "call-id", "too-many"))
	if got["error-reason"] != "Failed to parse SDP: 1501 media sections exceed the limit of 1500" {
		t.Errorf("offer with 1501 media: %v", got)
	}
	long := strings.Repeat("k", 5000)
	got = r.do(with(with(kamailioOffer1(), "call-id", "long-key"), long, "x"))
	if w, _ := got["warning"].(string); got["result"] != "ok" || len(w) > 200 || !strings.Contains(w, strings.Repeat("k", 64)+"...") {
		t.Errorf("offer with a 5000-byte unknown key: result %v, %d-byte warning %q", got["result"], len(w), w)
	}
}
