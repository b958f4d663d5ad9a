// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// controlRig is a real control server on loopback in front of a real session
// manager, reached through a real UDP socket.
type controlRig struct {
	t    *testing.T
	conn *net.UDPConn
	mgr  *session.Manager
	seq  int
}

func newControlRig(t *testing.T, mod func(*session.Config)) *controlRig {
	t.Helper()
	cfg := session.Config{
		Interfaces: []session.Interface{
			{Name: "internal", Local: netip.MustParseAddr("127.0.0.1")},
			{Name: "external", Local: netip.MustParseAddr("127.0.0.2"), Advertised: netip.MustParseAddr("203.0.113.20")},
		},
		PortMin: 23000, PortMax: 23999, DeleteDelay: 30 * time.Second, MaxSessions: -1, TOS: 184,
	}
	if mod != nil {
		mod(&cfg)
	}
	mgr, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctrl := NewControl(mgr, nil)
	srv, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, ctrl)
	if err != nil {
		t.Fatal(err)
	}
	ctrl.AttachServer(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(srv.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		<-done
		mgr.Close()
	})
	return &controlRig{t: t, conn: conn, mgr: mgr}
}

// do sends a bencoded dictionary and returns the decoded reply.
func (r *controlRig) do(d dict) map[string]any {
	r.t.Helper()
	r.seq++
	cookie := fmt.Sprintf("k%d", r.seq)
	if _, err := r.conn.Write([]byte(cookie + " " + benc(d))); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, 65536)
	r.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := r.conn.Read(buf)
	if err != nil {
		r.t.Fatalf("no reply to %s: %v", benc(d), err)
	}
	c, body, err := SplitMessage(buf[:n])
	if err != nil || c != cookie {
		r.t.Fatalf("reply %q: cookie %q err %v", buf[:n], c, err)
	}
	m, _, err := Decode(body)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func without(d dict, keys ...string) dict {
	var out dict
	for _, e := range d {
		drop := false
		for _, k := range keys {
			drop = drop || e.k == k
		}
		if !drop {
			out = append(out, e)
		}
	}
	return out
}

func with(d dict, k string, v any) dict {
	out := without(d, k)
	return append(out, kv{k, v})
}

func TestControlValidationOrder(t *testing.T) {
	r := newControlRig(t, nil)
	offer, answer := kamailioOffer1(), kamailioAnswer()
	tests := []struct {
		name string
		req  dict
		want string
	}{
		{"offer without sdp (and without call-id)", without(offer, "sdp", "call-id"), ReasonNoSDP},
		{"offer without call-id", without(offer, "call-id"), ReasonNoCallID},
		{"offer without from-tag", without(offer, "from-tag"), ReasonNoFromTag},
		{"answer without to-tag", without(answer, "to-tag"), ReasonNoToTag},
		{"answer to unknown call", with(answer, "call-id", "nope"), ReasonUnknownCallID},
		{"bad sdp", with(offer, "sdp", "hello"), ReasonParseSDP},
		{"sdp without c=", with(offer, "sdp", "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"), ReasonIncompleteSDP},
		{"query without call-id", dict{{"command", "query"}}, ReasonNoCallID},
		{"query unknown", dict{{"command", "query"}, {"call-id", "nope"}}, ReasonUnknownCallID},
		{"unknown command", dict{{"command", "frobnicate"}}, ReasonUnknownCommand},
	}
	for _, tc := range tests {
		got := r.do(tc.req)
		if got["result"] != "error" || got["error-reason"] != tc.want {
			t.Errorf("%s: got %v, want error %q", tc.name, got, tc.want)
		}
	}
	if got := r.mgr.List(0); len(got) != 0 {
		t.Errorf("failed requests left calls: %v", got)
	}
}

// The captured Kamailio exchange: offer, answer, query, delete.
func TestControlKamailioCall(t *testing.T) {
	r := newControlRig(t, nil)
	if got := r.do(dict{{"command", "ping"}}); got["result"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
	off := r.do(kamailioOffer1())
	if off["result"] != "ok" {
		t.Fatalf("offer: %v", off)
	}
	sdp := off["sdp"].(string)
	// direction=external,internal: the offer goes out on the internal side.
	if !strings.Contains(sdp, "c=IN IP4 127.0.0.1\r\n") || !strings.Contains(sdp, "o=- 1000 1 IN IP4 127.0.0.1\r\n") {
		t.Errorf("offer SDP does not advertise the internal interface:\n%s", sdp)
	}
	ans := r.do(kamailioAnswer())
	if ans["result"] != "ok" || !strings.Contains(ans["sdp"].(string), "c=IN IP4 203.0.113.20\r\n") {
		t.Fatalf("answer does not advertise the external address: %v", ans)
	}
	q := r.do(dict{{"command", "query"}, {"call-id", "c81028bc8a@test"}})
	tags, _ := q["tags"].(map[string]any)
	if q["result"] != "ok" || len(tags) != 2 || tags["ff2e887"] == nil || tags["8a7e2b1"] == nil {
		t.Fatalf("query: %v", q)
	}
	caller := tags["ff2e887"].(map[string]any)
	media := caller["medias"].([]any)[0].(map[string]any)
	stream := media["streams"].([]any)[0].(map[string]any)
	if stream["local address"] != "127.0.0.2" || stream["family"] != "IPv4" ||
		stream["advertised endpoint"].(map[string]any)["address"] != "127.0.0.30" {
		t.Errorf("caller's stream: %v", stream)
	}
	for _, k := range []string{"created", "created_us", "last signal", "totals", "SSRC"} {
		if _, ok := q[k]; !ok {
			t.Errorf("query reply lacks %q", k)
		}
	}
	if l := r.do(dict{{"command", "list"}}); fmt.Sprint(l["calls"]) != "[c81028bc8a@test]" {
		t.Errorf("list: %v", l)
	}
	// Kamailio's BYE delete: call-id and from-tag only; delete-delay 0 here.
	del := r.do(with(kamailioDelete(), "delete delay", 0))
	if del["result"] != "ok" || del["tags"] == nil {
		t.Errorf("delete: %v", del)
	}
	if l := r.do(dict{{"command", "list"}}); len(l["calls"].([]any)) != 0 {
		t.Errorf("after delete: %v", l)
	}
	// Deleting again: ok with the reference's warning; with fatal: an error.
	if again := r.do(kamailioDelete()); again["result"] != "ok" || again["warning"] != notFoundWarning {
		t.Errorf("second delete: %v", again)
	}
	if fatal := r.do(with(kamailioDelete(), "flags", []string{"fatal"})); fatal["result"] != "error" {
		t.Errorf("fatal delete of unknown call: %v", fatal)
	}
}

// Kamailio fails over on these two texts: they must come out verbatim.
func TestControlFailoverErrors(t *testing.T) {
	t.Run("ports", func(t *testing.T) {
		r := newControlRig(t, func(c *session.Config) {
			c.PortMin, c.PortMax = 23100, 23101 // one slot on each address
		})
		if got := r.do(kamailioOffer1()); got["result"] != "ok" {
			t.Fatalf("first call: %v", got)
		}
		got := r.do(with(kamailioOffer1(), "call-id", "second"))
		if got["result"] != "error" || got["error-reason"] != "Ran out of ports" {
			t.Errorf("got %v", got)
		}
		if l := r.do(dict{{"command", "list"}}); len(l["calls"].([]any)) != 1 {
			t.Errorf("failed call left behind: %v", l)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		r := newControlRig(t, func(c *session.Config) { c.MaxSessions = 1 })
		r.do(kamailioOffer1())
		got := r.do(without(with(kamailioOffer1(), "call-id", "second"), "supports"))
		if got["result"] != "error" || got["error-reason"] != "Parallel session limit reached" {
			t.Errorf("got %v", got)
		}
		if got := r.do(kamailioAnswer()); got["result"] != "ok" {
			t.Errorf("existing call hurt by the limit: %v", got)
		}
	})
}

// A proxy that lists "load limit" in supports, as Kamailio does on every
// request, is answered "load limit" with the reason as "message" (the
// incumbent's reply, on which Kamailio fails over); the refusal counts as
// a rejected session, not as an ng error.
func TestControlLoadLimit(t *testing.T) {
	r := newControlRig(t, func(c *session.Config) { c.MaxSessions = 0 })
	for _, supports := range [][]string{{"load limit"}, {"foo", "load-limit"}, {"LOAD_LIMIT"}} {
		got := r.do(with(kamailioOffer1(), "supports", supports))
		if got["result"] != "load limit" || got["message"] != "Parallel session limit reached" || got["error-reason"] != nil {
			t.Errorf("supports %q: got %v, want result \"load limit\" with the message", supports, got)
		}
	}
	for _, supports := range []any{nil, []string{"foo"}} {
		req := without(kamailioOffer1(), "supports")
		if supports != nil {
			req = with(req, "supports", supports)
		}
		if got := r.do(req); got["result"] != "error" || got["error-reason"] != "Parallel session limit reached" {
			t.Errorf("supports %v: got %v, want the error", supports, got)
		}
	}
	st := r.do(dict{{"command", "statistics"}})["statistics"].(map[string]any)
	if tot := st["totalstatistics"].(map[string]any); tot["rejectedsessions"] != int64(5) {
		t.Errorf("rejectedsessions = %v, want 5", tot["rejectedsessions"])
	}
	if ctl := st["controlstatistics"].(map[string]any); ctl["totalerrorcount"] != int64(2) {
		t.Errorf("totalerrorcount = %v, want 2 (the load-limit answers are not errors)", ctl["totalerrorcount"])
	}
}

func TestControlStatistics(t *testing.T) {
	r := newControlRig(t, nil)
	r.do(kamailioOffer1())
	r.do(dict{{"command", "ping"}})
	st := r.do(dict{{"command", "statistics"}})
	stats, _ := st["statistics"].(map[string]any)
	cur, _ := stats["currentstatistics"].(map[string]any)
	tot, _ := stats["totalstatistics"].(map[string]any)
	ctl, _ := stats["controlstatistics"].(map[string]any)
	if st["result"] != "ok" || cur["sessionsown"] != int64(1) || tot["managedsessions"] != int64(1) {
		t.Fatalf("statistics: %v", st)
	}
	for _, k := range []string{"sessionsforeign", "sessionstotal", "transcodedmedia", "packetrate", "byterate", "errorrate", "media_userspace", "media_kernel"} {
		if _, ok := cur[k]; !ok {
			t.Errorf("currentstatistics lacks %q", k)
		}
	}
	for _, k := range []string{"uptime", "rejectedsessions", "timeoutsessions", "silenttimeoutsessions", "finaltimeoutsessions",
		"offertimeoutsessions", "regularterminatedsessions", "forcedterminatedsessions", "relayedpackets",
		"relayedpacketerrors", "relayedbytes", "zerowaystreams", "onewaystreams", "avgcallduration"} {
		if _, ok := tot[k]; !ok {
			t.Errorf("totalstatistics lacks %q", k)
		}
	}
	if ctl["totaloffercount"] != int64(1) || ctl["totalpingcount"] != int64(1) {
		t.Errorf("controlstatistics: %v", ctl)
	}
	ifaces, _ := stats["interfaces"].([]any)
	if len(ifaces) != 2 {
		t.Errorf("interfaces: %v", stats["interfaces"])
	}
}
