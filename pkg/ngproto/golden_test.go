// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/relayd/relayd/pkg/webrtc"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/* from the current code")

// goldenClock is the time of the first golden exchange; each further one
// happens a second later, so that times and the order of calls are fixed.
var goldenClock = time.Unix(1767225600, 123456000)

// goldenPeer is where every golden request comes from.
var goldenPeer = netip.MustParseAddrPort("127.0.0.30:5060")

// goldenRig runs requests through the server's own path (decode, parse,
// Control, session.Manager, encode) without a socket in between, and makes
// the reply bytes reproducible: the session layer picks ports and ICE
// credentials at random, so they are renamed to fixed values of the same
// length (bencode length prefixes stay valid).
type goldenRig struct {
	t   *testing.T
	srv *Server
	mgr *session.Manager
	seq int
	now time.Time

	ports map[int]int // allocated port -> placeholder
	ice   [][2]string // ICE ufrag and pwd pairs in order of appearance
}

// Port ranges keep every allocated port at five digits and never equal to
// the configured bounds, which statistics print too.
const (
	goldenPortMin     = 30001
	goldenPortMax     = 39998
	goldenPlaceholder = 40000
)

func newGoldenRig(t *testing.T, mod func(*session.Config), h func(*session.Manager) Handler) *goldenRig {
	t.Helper()
	cfg := session.Config{
		Interfaces: []session.Interface{
			{Name: "internal", Local: netip.MustParseAddr("127.0.0.1")},
			{Name: "external", Local: netip.MustParseAddr("127.0.0.2"), Advertised: netip.MustParseAddr("203.0.113.20")},
		},
		PortMin: goldenPortMin, PortMax: goldenPortMax, MaxSessions: -1, TOS: 184,
	}
	id, err := webrtc.NewKeeper(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity = id
	r := &goldenRig{t: t, ports: map[int]int{}, now: goldenClock}
	cfg.Now = func() time.Time { return r.now }
	if mod != nil {
		mod(&cfg)
	}
	mgr, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	var handler Handler
	ctrl := NewControl(mgr, nil)
	if h != nil {
		handler = h(mgr)
	} else {
		handler = ctrl
	}
	srv, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), MaxMessage: 4096}, handler)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctrl.AttachServer(srv)
	r.srv, r.mgr = srv, mgr
	return r
}

// exchange runs one request body and returns the normalised reply datagram.
func (r *goldenRig) exchange(body []byte) []byte {
	r.t.Helper()
	r.seq++
	r.now = goldenClock.Add(time.Duration(r.seq-1) * time.Second)
	cookie := "0_4711_" + strconv.Itoa(r.seq)
	out := r.srv.process(context.Background(), cookie, body, len(body) > r.srv.cfg.MaxMessage, goldenPeer)
	if out == nil {
		r.t.Fatalf("no reply to %q", body)
	}
	r.learnPorts()
	return r.normalise(out)
}

// learnPorts gives every port of every live call a placeholder, in the
// order the calls, parties, media and streams are reported.
func (r *goldenRig) learnPorts() {
	for _, id := range r.mgr.List(0) {
		ci, err := r.mgr.Query(id, "", "")
		if err != nil {
			continue
		}
		for _, tag := range ci.Tags {
			for _, md := range tag.Medias {
				for _, st := range md.Streams {
					p := int(st.Local.Port())
					if _, ok := r.ports[p]; !ok {
						if p < goldenPortMin || p > goldenPortMax {
							r.t.Fatalf("port %d outside the golden range", p)
						}
						r.ports[p] = goldenPlaceholder + len(r.ports)
					}
				}
			}
		}
	}
}

var (
	digitsRe = regexp.MustCompile(`[0-9]+`)
	ufragRe  = regexp.MustCompile(`a=ice-ufrag:([A-Za-z0-9]{8})`)
	pwdRe    = regexp.MustCompile(`a=ice-pwd:([A-Za-z0-9]{26})`)
	fpRe     = regexp.MustCompile(`fingerprint:sha-256 [0-9A-F]{2}(:[0-9A-F]{2}){31}`)
)

func (r *goldenRig) normalise(b []byte) []byte {
	b = digitsRe.ReplaceAllFunc(b, func(d []byte) []byte {
		if p, err := strconv.Atoi(string(d)); err == nil {
			if ph, ok := r.ports[p]; ok {
				return []byte(strconv.Itoa(ph))
			}
		}
		return d
	})
	// The relay's certificate is new every run: its fingerprint becomes a
	// fixed one of the same length (bencode counts the bytes).
	b = fpRe.ReplaceAll(b, []byte("fingerprint:sha-256 "+strings.TrimSuffix(strings.Repeat("AB:", 32), ":")))
	// ICE: the foundation is ufrag + pwd[:8], so each pair is renamed together.
	ufrags, pwds := ufragRe.FindAllSubmatch(b, -1), pwdRe.FindAllSubmatch(b, -1)
	if len(ufrags) != len(pwds) {
		r.t.Fatalf("%d ice-ufrag but %d ice-pwd lines in %q", len(ufrags), len(pwds), b)
	}
	for i := range ufrags {
		if pair := [2]string{string(ufrags[i][1]), string(pwds[i][1])}; !slices.Contains(r.ice, pair) {
			r.ice = append(r.ice, pair)
		}
	}
	for n, pair := range r.ice {
		u, p := fmt.Sprintf("ufrag%03d", n), fmt.Sprintf("pwd%023d", n)
		b = bytes.ReplaceAll(b, []byte(pair[0]+pair[1][:8]), []byte(u+p[:8]))
		b = bytes.ReplaceAll(b, []byte(pair[1]), []byte(p))
		b = bytes.ReplaceAll(b, []byte(pair[0]), []byte(u))
	}
	return b
}

// checkGolden compares got with testdata/golden/name, or writes it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs\n got %q\nwant %q", name, got, want)
	}
}

// jsonOf renders d as a JSON object with its keys in d's order.
func jsonOf(v any) string {
	var b strings.Builder
	jsonTo(&b, v)
	return b.String()
}

func jsonTo(b *strings.Builder, v any) {
	switch x := v.(type) {
	case string:
		b.WriteString(strconv.Quote(x))
	case int:
		b.WriteString(strconv.Itoa(x))
	case []string:
		b.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonTo(b, s)
		}
		b.WriteByte(']')
	case dict:
		b.WriteByte('{')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonTo(b, e.k)
			b.WriteByte(':')
			jsonTo(b, e.v)
		}
		b.WriteByte('}')
	default:
		panic(fmt.Sprintf("jsonOf: unsupported %T", v))
	}
}

// goldenStep is one request of the golden conversation. body, when set, is
// sent as is (malformed input); otherwise req is encoded in the rig's format.
type goldenStep struct {
	name string
	req  dict
	body map[Format]string
}

// goldenConversation covers every reply Control and the server produce:
// ping, a Kamailio call (offer, answer, query, list, delete with its stats
// tree), a second call with ICE, labels and an untagged party, statistics,
// and every error reply reachable over the wire.
func goldenConversation() []goldenStep {
	offer1, answer1 := kamailioOffer1(), kamailioAnswer()
	offer2 := kamailioOffer2()
	badSDP := "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	deep := "d1:a" + strings.Repeat("l", 40) + strings.Repeat("e", 40) + "e"
	deepJSON := `{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + "}"
	big := "d7:command4:ping1:x5000:" + strings.Repeat("x", 5000) + "e"
	bigJSON := `{"command":"ping","x":"` + strings.Repeat("x", 5000) + `"}`
	both := func(s string) map[Format]string { return map[Format]string{FormatBencode: s, FormatJSON: s} }
	return []goldenStep{
		{name: "ping", req: dict{{"command", "ping"}}},
		{name: "offer", req: offer1},
		{name: "answer", req: answer1},
		{name: "query", req: dict{{"command", "query"}, {"call-id", "c81028bc8a@test"}}},
		{name: "list", req: dict{{"command", "list"}}},
		{name: "offer-ice-label", req: offer2},
		{name: "query-untagged", req: dict{{"command", "query"}, {"call-id", "526a03b39@test"}, {"from-tag", "f5c0bd3"}}},
		{name: "list-limit", req: dict{{"command", "list"}, {"limit", 1}}},
		{name: "error-offer-no-sdp", req: without(offer1, "sdp", "call-id")},
		{name: "error-offer-no-call-id", req: without(offer1, "call-id")},
		{name: "error-offer-no-from-tag", req: without(offer1, "from-tag")},
		{name: "error-answer-no-to-tag", req: without(answer1, "to-tag")},
		{name: "error-answer-unknown-call", req: with(answer1, "call-id", "nope")},
		{name: "error-answer-dialogue", req: with(answer1, "from-tag", "stranger")},
		{name: "error-offer-bad-sdp", req: with(offer1, "sdp", "hello")},
		{name: "error-offer-incomplete-sdp", req: with(offer1, "sdp", badSDP)},
		{name: "error-query-no-call-id", req: dict{{"command", "query"}}},
		{name: "error-query-unknown", req: dict{{"command", "query"}, {"call-id", "nope"}}},
		{name: "error-query-dialogue", req: dict{{"command", "query"}, {"call-id", "c81028bc8a@test"}, {"from-tag", "stranger"}}},
		{name: "error-delete-no-call-id", req: dict{{"command", "delete"}}},
		{name: "error-unknown-command", req: dict{{"command", "frobnicate"}}},
		{name: "error-no-command", req: dict{{"call-id", "x"}}},
		{name: "error-invalid-value", req: dict{{"command", "offer"}, {"TOS", "abc"}}},
		{name: "error-invalid-list", req: dict{{"command", "offer"}, {"flags", dict{{"a", "b"}}}}},
		{name: "error-malformed", body: map[Format]string{FormatBencode: "d7:command4:pin", FormatJSON: `{"command":`}},
		{name: "error-json-array", body: map[Format]string{FormatJSON: `["command","ping"]`}},
		{name: "error-bad-format", body: map[Format]string{FormatBencode: "x"}},
		{name: "error-no-payload", body: map[Format]string{FormatBencode: ""}},
		{name: "error-too-deep", body: map[Format]string{FormatBencode: deep, FormatJSON: deepJSON}},
		{name: "error-too-large", body: map[Format]string{FormatBencode: big, FormatJSON: bigJSON}},
		{name: "error-binary", body: both("\x00\xff")},
		{name: "statistics", req: dict{{"command", "statistics"}}},
		{name: "delete", req: with(kamailioDelete(), "delete delay", 0)},
		{name: "delete-fast", req: dict{{"command", "delete"}, {"call-id", "526a03b39@test"}, {"flags", []string{"fast"}}, {"delete-delay", 0}}},
		{name: "delete-unknown", req: kamailioDelete()},
		{name: "error-delete-unknown-fatal", req: with(kamailioDelete(), "flags", []string{"fatal"})},
		{name: "list-empty", req: dict{{"command", "list"}}},
	}
}

var goldenFormats = []struct {
	f   Format
	ext string
}{{FormatBencode, "bencode"}, {FormatJSON, "json"}}

// TestGolden pins the exact reply bytes of every command and error, in both
// formats. -update rewrites testdata/golden from the current code; the
// files must then be reviewed as what a SIP proxy would receive.
func TestGolden(t *testing.T) {
	for _, gf := range goldenFormats {
		t.Run(gf.ext, func(t *testing.T) {
			r := newGoldenRig(t, nil, nil)
			for _, st := range goldenConversation() {
				var body string
				if st.body != nil {
					var ok bool
					if body, ok = st.body[gf.f]; !ok {
						continue
					}
				} else if gf.f == FormatJSON {
					body = jsonOf(st.req)
				} else {
					body = benc(st.req)
				}
				checkGolden(t, st.name+"."+gf.ext, r.exchange([]byte(body)))
			}
		})
	}
}

// TestGoldenLimits pins the failover errors and the internal error, which
// need a rig of their own.
func TestGoldenLimits(t *testing.T) {
	for _, gf := range goldenFormats {
		enc := func(d dict) []byte {
			if gf.f == FormatJSON {
				return []byte(jsonOf(d))
			}
			return []byte(benc(d))
		}
		t.Run(gf.ext, func(t *testing.T) {
			r := newGoldenRig(t, func(c *session.Config) { c.MaxSessions = 0 }, nil)
			checkGolden(t, "error-session-limit."+gf.ext, r.exchange(enc(without(kamailioOffer1(), "supports"))))
			// Kamailio lists "load limit" in supports: it gets the
			// incumbent's answer for it.
			checkGolden(t, "load-limit."+gf.ext, r.exchange(enc(with(kamailioOffer1(), "call-id", "third"))))

			// One slot per address: the first call takes it (or finds it
			// busy elsewhere), the second runs out either way.
			r = newGoldenRig(t, func(c *session.Config) { c.PortMin, c.PortMax = 31170, 31171 }, nil)
			r.exchange(enc(kamailioOffer1()))
			checkGolden(t, "error-out-of-ports."+gf.ext, r.exchange(enc(with(kamailioOffer1(), "call-id", "second"))))

			r = newGoldenRig(t, nil, func(*session.Manager) Handler {
				return HandlerFunc(func(context.Context, *Request, netip.AddrPort) Reply { panic("handler bug") })
			})
			checkGolden(t, "error-internal."+gf.ext, r.exchange(enc(dict{{"command", "ping"}})))
		})
	}
}
