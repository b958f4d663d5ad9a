// SPDX-License-Identifier: Apache-2.0

package session

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	"github.com/relayd/relayd/pkg/sdp"
	"github.com/relayd/relayd/pkg/webrtc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Test ports live in 25000-29999, below the kernel's ephemeral range (so other
// tests' sockets cannot take them) and so that golden files can tell them from the
// numbers of the example SDPs.
const testPortMin, testPortMax = 25000, 29999

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestManager(t *testing.T, mod func(*Config)) (*Manager, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	cfg := Config{
		Interfaces: []Interface{
			{Name: "internal", Local: netip.MustParseAddr("127.0.0.1")},
			{Name: "external", Local: netip.MustParseAddr("127.0.0.2"), Advertised: netip.MustParseAddr("203.0.113.20")},
			{Name: "v6", Local: netip.IPv6Loopback()},
		},
		PortMin: testPortMin, PortMax: testPortMax,
		Timeout: 60 * time.Second, SilentTimeout: time.Hour, OfferTimeout: time.Hour,
		DeleteDelay: 30 * time.Second, TOS: 184, MaxSessions: -1,
		Now: clk.now, Identity: testIdentity(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m, clk
}

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sdp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var portRE = regexp.MustCompile(`\b2[5-9]\d{3}\b`)

// normalize replaces relay ports by placeholders numbered in order of first
// appearance, and ICE credentials by fixed words.
func normalize(out []byte) string {
	seen := map[string]string{}
	s := portRE.ReplaceAllStringFunc(string(out), func(p string) string {
		if _, ok := seen[p]; !ok {
			seen[p] = "PORT" + strconv.Itoa(len(seen)+1)
		}
		return seen[p]
	})
	s = regexp.MustCompile(`a=ice-ufrag:\w{8}`).ReplaceAllString(s, "a=ice-ufrag:UFRAG")
	s = regexp.MustCompile(`a=ice-pwd:\w{26}`).ReplaceAllString(s, "a=ice-pwd:PWD")
	s = regexp.MustCompile(`candidate:\w{16} `).ReplaceAllString(s, "candidate:FOUNDATION ")
	s = regexp.MustCompile(`a=fingerprint:sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}`).ReplaceAllString(s, "a=fingerprint:sha-256 FINGERPRINT")
	s = regexp.MustCompile(`inline:[A-Za-z0-9+/=]+`).ReplaceAllString(s, "inline:KEY")
	return s
}

func golden(t *testing.T, name string, out []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".sdp")
	got := normalize(out)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s: SDP differs from golden file\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// mPort returns the port of the n-th m= line of an SDP.
func mPort(t *testing.T, sdp []byte, n int) int {
	t.Helper()
	i := 0
	for _, line := range strings.Split(string(sdp), "\n") {
		if strings.HasPrefix(line, "m=") {
			if i == n {
				p, err := strconv.Atoi(strings.Fields(line)[1])
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			i++
		}
	}
	t.Fatalf("no m= line %d in\n%s", n, sdp)
	return 0
}

func opts(mod func(*Options)) Options {
	var o Options
	if mod != nil {
		mod(&o)
	}
	return o
}

// A golden case is a sequence of signals; each output is compared to its file.
type step struct {
	answer   bool
	from, to string
	sdp      string // file under testdata/sdp
	opts     func(*Options)
}

func TestGoldenSDP(t *testing.T) {
	extInt := func(o *Options) { o.Direction = []string{"external", "internal"} }
	intExt := func(o *Options) { o.Direction = []string{"internal", "external"} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"trunk-call", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: extInt},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp"},
		}},
		{"trunk-replace-origin", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) {
				extInt(o)
				o.Replace = []string{"origin", "session-connection"}
			}},
		}},
		{"desk-phone-nat", []step{
			{from: "A", sdp: "desk-phone-behind-nat-offer.sdp", opts: func(o *Options) {
				o.Direction = []string{"external", "internal"}
				o.Flags.SIPSourceAddress = true
				o.ReceivedFrom = netip.MustParseAddr("198.51.100.7")
			}},
		}},
		{"freeswitch-hold", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: extInt},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp"},
			{from: "B", to: "A", sdp: "freeswitch-hold-reinvite.sdp"},
		}},
		{"trunk-hold-zero", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: extInt},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp"},
			{from: "A", to: "B", sdp: "sip-trunk-hold-zero-address.sdp"},
		}},
		{"browser-ice-remove", []step{
			{from: "A", sdp: "browser-chromium-offer.sdp", opts: func(o *Options) {
				extInt(o)
				o.ICE = "remove"
				o.RTCPMux = []string{"demux"}
				o.TransportProtocol = "RTP/AVP"
			}},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp", opts: func(o *Options) { o.ICE = "force" }},
		}},
		{"trunk-to-browser-trickle", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) {
				extInt(o)
				o.ICE, o.ICETrickle, o.TransportProtocol = "force", true, "UDP/TLS/RTP/SAVPF"
				o.RTCPMux = []string{"offer"}
			}},
		}},
		{"browser-ice-default", []step{
			{from: "A", sdp: "browser-chromium-offer.sdp", opts: extInt},
		}},
		{"ipv6-audio-video", []step{
			{from: "A", sdp: "ipv6-audio-video-offer.sdp", opts: func(o *Options) { o.Direction = []string{"v6", "v6"} }},
		}},
		{"ipv6-to-ipv4", []step{
			{from: "A", sdp: "ipv6-audio-video-offer.sdp", opts: func(o *Options) {
				o.Direction = []string{"v6", "internal"}
				o.AddressFamily = "IP4"
			}},
			{answer: true, from: "A", to: "B", sdp: "answer-audio-video-reject-video.sdp"},
		}},
		{"ipv4-to-ipv6", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) {
				o.Direction = []string{"external", "v6"}
				o.AddressFamily = "IP6"
			}},
		}},
		{"rtcp-mux-offer", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { intExt(o); o.RTCPMux = []string{"offer"} }},
		}},
		{"rtcp-mux-require", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { intExt(o); o.RTCPMux = []string{"require"} }},
		}},
		{"rtcp-mux-accept", []step{
			{from: "A", sdp: "browser-chromium-offer.sdp", opts: func(o *Options) { extInt(o); o.ICE = "remove" }},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp", opts: func(o *Options) { o.RTCPMux = []string{"accept"} }},
		}},
		{"rtcp-mux-reject", []step{
			{from: "A", sdp: "browser-chromium-offer.sdp", opts: func(o *Options) { extInt(o); o.ICE = "remove" }},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp", opts: func(o *Options) { o.RTCPMux = []string{"reject"} }},
		}},
		{"no-rtcp-attribute", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { o.Flags.NoRTCPAttribute = true }},
		}},
		{"full-rtcp-attribute", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { o.Flags.FullRTCPAttribute = true }},
		}},
		{"codec-strip", []step{
			{from: "A", sdp: "desk-phone-behind-nat-offer.sdp", opts: func(o *Options) {
				for _, c := range []string{"G729", "PCMU"} {
					sp, _ := codecs.ParseSpec(c)
					o.Codec.Strip = append(o.Codec.Strip, sp)
				}
			}},
		}},
		{"sdp-version", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { o.Replace = []string{"SDP-version"} }},
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) { o.Replace = []string{"SDP-version"} }},
			{from: "A", sdp: "sip-trunk-offer-moved.sdp", opts: func(o *Options) { o.Replace = []string{"SDP-version"} }},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestManager(t, nil)
			for i, st := range tc.steps {
				s := Signal{CallID: "call-" + tc.name, FromTag: st.from, ToTag: st.to,
					SDP: example(t, st.sdp), Options: opts(st.opts)}
				var out []byte
				var err error
				if st.answer {
					out, err = m.Answer(s)
				} else {
					out, err = m.Offer(s)
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				golden(t, fmt.Sprintf("%s.%d", tc.name, i), out)
			}
		})
	}
}

// The advertised ports are the ports relayd bound, on the right addresses.
func TestOfferAnswerPortsAreBound(t *testing.T) {
	m, _ := newTestManager(t, nil)
	dir := Options{Direction: []string{"external", "internal"}}
	offer, err := m.Offer(Signal{CallID: "c1", FromTag: "A", SDP: example(t, "sip-trunk-offer.sdp"), Options: dir})
	if err != nil {
		t.Fatal(err)
	}
	answer, err := m.Answer(Signal{CallID: "c1", FromTag: "A", ToTag: "B", SDP: example(t, "freeswitch-answer.sdp")})
	if err != nil {
		t.Fatal(err)
	}
	info, err := m.Query("c1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]netip.AddrPort{} // tag -> RTP socket facing that party
	for _, tag := range info.Tags {
		st := tag.Medias[0].Streams
		if len(st) != 2 || st[0].RTCP || !st[1].RTCP || st[1].Local.Port() != st[0].Local.Port()+1 || st[0].Local.Port()%2 != 0 {
			t.Fatalf("tag %q streams %+v: want even RTP and RTP+1 RTCP", tag.Tag, st)
		}
		local[tag.Tag] = st[0].Local
	}
	// B (callee, internal) is sent the offer; A (trunk, external) the answer.
	if got := local["B"]; got.Addr().String() != "127.0.0.1" || int(got.Port()) != mPort(t, offer, 0) {
		t.Errorf("callee's socket %v, offer advertises port %d", got, mPort(t, offer, 0))
	}
	if got := local["A"]; got.Addr().String() != "127.0.0.2" || int(got.Port()) != mPort(t, answer, 0) {
		t.Errorf("caller's socket %v, answer advertises port %d", got, mPort(t, answer, 0))
	}
	if !strings.Contains(string(answer), "c=IN IP4 203.0.113.20\r\n") || !strings.Contains(string(offer), "c=IN IP4 127.0.0.1\r\n") {
		t.Errorf("advertised addresses wrong:\noffer:\n%s\nanswer:\n%s", offer, answer)
	}
	// The endpoints recorded are the parties' SDP addresses.
	for _, tag := range info.Tags {
		want := map[string]string{"A": "203.0.113.50:30000", "B": "10.0.1.30:19200"}[tag.Tag]
		if got := tag.Medias[0].Streams[0].AdvertisedEndpoint.String(); got != want {
			t.Errorf("tag %s endpoint %s, want %s", tag.Tag, got, want)
		}
	}
}

func TestReinviteKeepsPortsUnlessEndpointMoves(t *testing.T) {
	m, _ := newTestManager(t, nil)
	trunk, moved := example(t, "sip-trunk-offer.sdp"), example(t, "sip-trunk-offer-moved.sdp")
	fs := example(t, "freeswitch-answer.sdp")
	o1, _ := m.Offer(Signal{CallID: "c", FromTag: "A", SDP: trunk})
	a1, err := m.Answer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: fs})
	if err != nil {
		t.Fatal(err)
	}
	// Re-INVITE from the caller, same endpoint: same ports both ways.
	o2, _ := m.Offer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: trunk})
	a2, _ := m.Answer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: fs})
	if mPort(t, o1, 0) != mPort(t, o2, 0) || mPort(t, a1, 0) != mPort(t, a2, 0) {
		t.Errorf("re-INVITE changed ports: offer %d->%d answer %d->%d", mPort(t, o1, 0), mPort(t, o2, 0), mPort(t, a1, 0), mPort(t, a2, 0))
	}
	// Re-INVITE from the callee (reverse direction), same endpoint.
	o3, _ := m.Offer(Signal{CallID: "c", FromTag: "B", ToTag: "A", SDP: fs})
	if mPort(t, o3, 0) != mPort(t, a1, 0) {
		t.Errorf("callee re-INVITE advertised %d to the caller, want %d", mPort(t, o3, 0), mPort(t, a1, 0))
	}
	a3, _ := m.Answer(Signal{CallID: "c", FromTag: "B", ToTag: "A", SDP: trunk})
	if mPort(t, a3, 0) != mPort(t, o1, 0) {
		t.Errorf("answer to callee re-INVITE advertised %d, want %d", mPort(t, a3, 0), mPort(t, o1, 0))
	}
	// The caller moves: the callee is given new ports; the caller keeps its own.
	o4, _ := m.Offer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: moved})
	if mPort(t, o4, 0) == mPort(t, o1, 0) {
		t.Errorf("endpoint moved but callee kept port %d", mPort(t, o4, 0))
	}
	a4, _ := m.Answer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: fs})
	if mPort(t, a4, 0) != mPort(t, a1, 0) {
		t.Errorf("caller's port changed %d -> %d", mPort(t, a1, 0), mPort(t, a4, 0))
	}
	// ... unless port-latching is asked for.
	o5, _ := m.Offer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: trunk, Options: Options{Flags: Flags{PortLatching: true}}})
	if mPort(t, o5, 0) != mPort(t, o4, 0) {
		t.Errorf("port-latching: got %d want %d", mPort(t, o5, 0), mPort(t, o4, 0))
	}
	// Going back to an endpoint seen before reuses its ports.
	o6, _ := m.Offer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: trunk})
	if mPort(t, o6, 0) != mPort(t, o1, 0) {
		t.Errorf("endpoint returned: got %d want %d", mPort(t, o6, 0), mPort(t, o1, 0))
	}
	// Hold with 0.0.0.0 keeps the ports.
	o7, _ := m.Offer(Signal{CallID: "c", FromTag: "A", ToTag: "B", SDP: example(t, "sip-trunk-hold-zero-address.sdp")})
	if mPort(t, o7, 0) != mPort(t, o1, 0) {
		t.Errorf("hold: got %d want %d", mPort(t, o7, 0), mPort(t, o1, 0))
	}
}

func TestForksAndBranches(t *testing.T) {
	m, _ := newTestManager(t, nil)
	trunk, fs := example(t, "sip-trunk-offer.sdp"), example(t, "freeswitch-answer.sdp")
	// Two branches of one INVITE (Kamailio forking with via-branch).
	b1, _ := m.Offer(Signal{CallID: "f", FromTag: "A", ViaBranch: "z9hG4bK1", SDP: trunk})
	b2, _ := m.Offer(Signal{CallID: "f", FromTag: "A", ViaBranch: "z9hG4bK2", SDP: trunk})
	if mPort(t, b1, 0) == mPort(t, b2, 0) {
		t.Fatalf("two branches share port %d", mPort(t, b1, 0))
	}
	// Early media from branch 1 (183), then branch 2 answers (200).
	a1, err := m.Answer(Signal{CallID: "f", FromTag: "A", ToTag: "B1", ViaBranch: "z9hG4bK1", SDP: fs})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := m.Answer(Signal{CallID: "f", FromTag: "A", ToTag: "B2", ViaBranch: "z9hG4bK2", SDP: fs})
	if err != nil {
		t.Fatal(err)
	}
	if mPort(t, a1, 0) != mPort(t, a2, 0) {
		t.Errorf("caller's port differs between the answers of two branches: %d %d", mPort(t, a1, 0), mPort(t, a2, 0))
	}
	info, _ := m.Query("f", "", "")
	if len(info.Tags) != 3 {
		t.Fatalf("want 3 parties, got %+v", info.Tags)
	}
	// A downstream fork: a new to-tag on a branch that already answered.
	if _, err := m.Answer(Signal{CallID: "f", FromTag: "A", ToTag: "B3", ViaBranch: "z9hG4bK2", SDP: fs}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Query("f", "A", "B3"); err != nil {
		t.Errorf("forked to-tag not known: %v", err)
	}
	if _, err := m.Query("f", "A", "B2"); err != nil {
		t.Errorf("earlier to-tag of the fork forgotten: %v", err)
	}
	// Failure route deletes branch 1 only.
	used := usedSlots(m)
	if _, err := m.Delete(DeleteRequest{CallID: "f", FromTag: "A", ViaBranch: "z9hG4bK1"}); err != nil {
		t.Fatal(err)
	}
	if got := usedSlots(m); got != used-1 {
		t.Errorf("branch delete freed %d slots, want 1", used-got)
	}
	if _, err := m.Query("f", "A", "B1"); !errors.Is(err, ErrDialogue) {
		t.Errorf("deleted branch still answers queries: %v", err)
	}
}

func usedSlots(m *Manager) int {
	n := 0
	pools := map[netip.Addr]bool{}
	for _, ia := range m.order {
		if pools[ia.local] {
			continue
		}
		pools[ia.local] = true
		u, _ := ia.pool.Stats()
		n += u
	}
	return n
}

func TestDelete(t *testing.T) {
	m, clk := newTestManager(t, nil)
	trunk, fs := example(t, "sip-trunk-offer.sdp"), example(t, "freeswitch-answer.sdp")
	for _, id := range []string{"d1", "d2", "d3"} {
		if _, err := m.Offer(Signal{CallID: id, FromTag: "A", SDP: trunk}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Answer(Signal{CallID: id, FromTag: "A", ToTag: "B", SDP: fs}); err != nil {
			t.Fatal(err)
		}
	}
	if got := usedSlots(m); got != 6 {
		t.Fatalf("3 calls use %d slots, want 6", got)
	}
	// Unknown call and unknown tag.
	if _, err := m.Delete(DeleteRequest{CallID: "nope"}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("unknown call: %v", err)
	}
	if _, err := m.Delete(DeleteRequest{CallID: "d1", FromTag: "X"}); !errors.Is(err, ErrDialogue) {
		t.Errorf("unknown tag: %v", err)
	}
	// Immediate delete by call-id and from-tag (what Kamailio sends on BYE).
	zero := 0
	info, err := m.Delete(DeleteRequest{CallID: "d1", FromTag: "A", Options: Options{DeleteDelay: &zero}})
	if err != nil || info == nil || len(info.Tags) != 2 {
		t.Fatalf("delete: %v %+v", err, info)
	}
	if got := usedSlots(m); got != 4 {
		t.Errorf("after delete %d slots in use, want 4", got)
	}
	// Default delete-delay: still listed until it passes.
	if _, err := m.Delete(DeleteRequest{CallID: "d2"}); err != nil {
		t.Fatal(err)
	}
	if got := m.List(0); len(got) != 2 {
		t.Errorf("listed %v, want d2 and d3 while d2's delete-delay runs", got)
	}
	clk.add(29 * time.Second)
	m.Expire()
	if got := m.List(0); len(got) != 2 {
		t.Errorf("d2 gone before its delete-delay: %v", got)
	}
	clk.add(2 * time.Second)
	m.Expire()
	if got := m.List(0); len(got) != 1 || got[0] != "d3" {
		t.Errorf("after delete-delay: %v, want [d3]", got)
	}
	// fast: no stats in the reply.
	if info, err := m.Delete(DeleteRequest{CallID: "d3", Options: Options{Flags: Flags{Fast: true}, DeleteDelay: &zero}}); err != nil || info != nil {
		t.Errorf("fast delete: %v %+v", err, info)
	}
	if got := usedSlots(m); got != 0 {
		t.Errorf("%d slots still in use", got)
	}
	s := m.Statistics()
	if s.RegularTerminated != 3 || s.Managed != 3 || s.SessionsOwn != 0 {
		t.Errorf("statistics %+v", s)
	}
}

// A new offer on a call waiting for its delete-delay revives it.
func TestOfferCancelsPendingDelete(t *testing.T) {
	m, clk := newTestManager(t, nil)
	trunk := example(t, "sip-trunk-offer.sdp")
	if _, err := m.Offer(Signal{CallID: "r", FromTag: "A", SDP: trunk}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(DeleteRequest{CallID: "r", FromTag: "A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Offer(Signal{CallID: "r", FromTag: "A", SDP: trunk}); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	m.Expire()
	if got := m.List(0); len(got) != 1 {
		t.Errorf("revived call expired: %v", got)
	}
}

func TestSessionLimit(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) { c.MaxSessions = 2 })
	trunk := example(t, "sip-trunk-offer.sdp")
	for _, id := range []string{"s1", "s2"} {
		if _, err := m.Offer(Signal{CallID: id, FromTag: "A", SDP: trunk}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Offer(Signal{CallID: "s3", FromTag: "A", SDP: trunk}); !errors.Is(err, ErrSessionLimit) {
		t.Fatalf("third call: %v, want ErrSessionLimit", err)
	}
	// Existing calls are untouched: a re-INVITE still works.
	if _, err := m.Offer(Signal{CallID: "s1", FromTag: "A", SDP: trunk}); err != nil {
		t.Errorf("re-INVITE of an existing call at the limit: %v", err)
	}
	if s := m.Statistics(); s.Rejected != 1 || s.SessionsOwn != 2 {
		t.Errorf("statistics: rejected %d own %d", s.Rejected, s.SessionsOwn)
	}
}

func TestOutOfPortsLeavesNothingBehind(t *testing.T) {
	// 4 slots: one call of one media needs 2 (caller side + callee side).
	m, _ := newTestManager(t, func(c *Config) {
		c.PortMin, c.PortMax = 25100, 25107
		c.Interfaces = c.Interfaces[:1]
	})
	trunk := example(t, "sip-trunk-offer.sdp")
	av := example(t, "ipv4-audio-video-offer.sdp")
	if _, err := m.Offer(Signal{CallID: "p1", FromTag: "A", SDP: trunk}); err != nil {
		t.Fatal(err)
	}
	// Audio+video needs 4 slots, 2 are left: the call must fail whole.
	if _, err := m.Offer(Signal{CallID: "p2", FromTag: "A", SDP: av}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("got %v, want ErrNoPorts", err)
	}
	if got := m.List(0); len(got) != 1 {
		t.Errorf("calls after failure: %v", got)
	}
	if got := usedSlots(m); got != 2 {
		t.Errorf("%d slots in use, want 2 (the first call's)", got)
	}
	// An existing call's failing re-INVITE (the caller moves and adds video:
	// 3 new slots, 2 free) keeps the call as it was.
	before, _ := m.Query("p1", "", "")
	if _, err := m.Offer(Signal{CallID: "p1", FromTag: "A", SDP: av}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("re-INVITE beyond capacity: got %v, want ErrNoPorts", err)
	}
	after, _ := m.Query("p1", "", "")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("failed re-INVITE changed the call:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := usedSlots(m); got != 2 {
		t.Errorf("%d slots in use after the failed re-INVITE, want 2", got)
	}
	if _, err := m.Offer(Signal{CallID: "p3", FromTag: "A", SDP: trunk}); err != nil {
		t.Fatalf("a call that fits: %v", err)
	}
	if _, err := m.Offer(Signal{CallID: "p4", FromTag: "A", SDP: trunk}); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("got %v, want ErrNoPorts", err)
	}
	if s := m.Statistics(); s.Rejected != 2 || s.Managed != 2 {
		t.Errorf("rejected=%d managed=%d, want 2 and 2", s.Rejected, s.Managed)
	}
}

func TestBadInput(t *testing.T) {
	m, _ := newTestManager(t, nil)
	if _, err := m.Offer(Signal{CallID: "x", FromTag: "A", SDP: []byte("garbage")}); !errors.Is(err, ErrParseSDP) {
		t.Errorf("garbage SDP: %v", err)
	}
	noConn := []byte("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
	if _, err := m.Offer(Signal{CallID: "x", FromTag: "A", SDP: noConn}); !errors.Is(err, ErrIncompleteSDP) {
		t.Errorf("no c=: %v", err)
	}
	if got := m.List(0); len(got) != 0 {
		t.Errorf("failed offers left calls: %v", got)
	}
	if _, err := m.Answer(Signal{CallID: "nope", FromTag: "A", ToTag: "B", SDP: example(t, "freeswitch-answer.sdp")}); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("answer to unknown call: %v", err)
	}
	if _, err := m.Offer(Signal{CallID: "y", FromTag: "A", SDP: example(t, "sip-trunk-offer.sdp")}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Answer(Signal{CallID: "y", FromTag: "Z", ToTag: "B", SDP: example(t, "freeswitch-answer.sdp")}); !errors.Is(err, ErrDialogue) {
		t.Errorf("answer with unknown from-tag: %v", err)
	}
}

func TestTimeoutsWithoutMedia(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.OfferTimeout = 10 * time.Second; c.FinalTimeout = time.Minute })
	trunk, fs := example(t, "sip-trunk-offer.sdp"), example(t, "freeswitch-answer.sdp")
	m.Offer(Signal{CallID: "unanswered", FromTag: "A", SDP: trunk})
	m.Offer(Signal{CallID: "answered", FromTag: "A", SDP: trunk})
	m.Answer(Signal{CallID: "answered", FromTag: "A", ToTag: "B", SDP: fs})
	clk.add(11 * time.Second)
	m.Expire()
	if got := m.List(0); len(got) != 1 || got[0] != "answered" {
		t.Errorf("after offer-timeout: %v", got)
	}
	clk.add(time.Minute)
	m.Expire()
	if got := m.List(0); len(got) != 0 {
		t.Errorf("after final-timeout: %v", got)
	}
	s := m.Statistics()
	if s.OfferTimeout != 1 || s.FinalTimeout != 1 || usedSlots(m) != 0 {
		t.Errorf("statistics %+v, %d slots used", s, usedSlots(m))
	}
}

func TestConcurrentCalls(t *testing.T) {
	m, _ := newTestManager(t, nil)
	trunk, fs := example(t, "sip-trunk-offer.sdp"), example(t, "freeswitch-answer.sdp")
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("cc%d", i)
			if _, err := m.Offer(Signal{CallID: id, FromTag: "A", SDP: trunk}); err != nil {
				t.Error(err)
				return
			}
			if _, err := m.Answer(Signal{CallID: id, FromTag: "A", ToTag: "B", SDP: fs}); err != nil {
				t.Error(err)
			}
			m.Query(id, "", "")
			m.Statistics()
			zero := 0
			if _, err := m.Delete(DeleteRequest{CallID: id, Options: Options{DeleteDelay: &zero}}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if n := usedSlots(m); n != 0 || len(m.List(0)) != 0 {
		t.Errorf("%d slots, %d calls left", n, len(m.List(0)))
	}
}

// loop-protect marks the SDP; an SDP that carries the mark is returned as is.
func TestLoopProtect(t *testing.T) {
	m, _ := newTestManager(t, nil)
	out, err := m.Offer(Signal{CallID: "loop", FromTag: "A", SDP: example(t, "sip-trunk-offer.sdp"),
		Options: Options{Flags: Flags{LoopProtect: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\r\na=rtpengine:"+m.instance()+"\r\n") {
		t.Fatalf("no loop-protect mark:\n%s", out)
	}
	again, err := m.Offer(Signal{CallID: "loop2", FromTag: "A", SDP: out})
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(out) {
		t.Errorf("looped SDP was rewritten:\n%s", again)
	}
}

func testIdentity(t *testing.T) *webrtc.Keeper {
	t.Helper()
	k, err := webrtc.NewKeeper(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testCodecs transcodes what pkg/transcode has in a build with libopus.
func testCodecs(f codecs.Format) error {
	switch strings.ToLower(f.Name) {
	case "pcmu", "pcma", "g722", "opus":
		return nil
	}
	return fmt.Errorf("%s: no such codec", f.Name)
}

// Codec negotiation as the proxy's codec options ask, byte for byte: the
// incumbent's browser example (Opus + telephone-event/48000 offered with
// transcode PCMU reaches the phone as 111 0 96 110, the phone's PCMU answer
// reaches the browser as 111 110), masking, strip-all with offer.
func TestGoldenCodecSDP(t *testing.T) {
	spec := func(list ...string) []codecs.Spec {
		var out []codecs.Spec
		for _, s := range list {
			sp, err := codecs.ParseSpec(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sp)
		}
		return out
	}
	toSIP := func(o *Options) {
		o.Direction = []string{"external", "internal"}
		o.ICE, o.TransportProtocol, o.RTCPMux = "remove", "RTP/AVP", []string{"demux"}
	}
	toBrowser := func(o *Options) { o.ICE = "force" }
	tests := []struct {
		name  string
		steps []step
	}{
		{"browser-transcode-pcmu", []step{
			{from: "A", sdp: "browser-opus-only-offer.sdp", opts: func(o *Options) { toSIP(o); o.Codec.Transcode = spec("PCMU") }},
			{answer: true, from: "A", to: "B", sdp: "pcmu-phone-answer.sdp", opts: toBrowser},
		}},
		{"browser-mask-opus-transcode-pcma", []step{
			{from: "A", sdp: "browser-opus-only-offer.sdp", opts: func(o *Options) {
				toSIP(o)
				o.Codec.Mask, o.Codec.Transcode = spec("opus"), spec("PCMA")
			}},
		}},
		{"trunk-strip-all-offer-pcma", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) {
				o.Direction = []string{"external", "internal"}
				o.Codec.Strip, o.Codec.Offer = spec("all"), spec("PCMA")
			}},
			{answer: true, from: "A", to: "B", sdp: "freeswitch-answer.sdp"},
		}},
		{"trunk-transcode-g722-ptime-30", []step{
			{from: "A", sdp: "sip-trunk-offer.sdp", opts: func(o *Options) {
				o.Direction = []string{"external", "internal"}
				o.Codec.Transcode, o.Codec.PTime = spec("G722"), 30
			}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newTestManager(t, func(c *Config) { c.Codecs = testCodecs })
			for i, st := range tc.steps {
				s := Signal{CallID: "call-" + tc.name, FromTag: st.from, ToTag: st.to,
					SDP: example(t, st.sdp), Options: opts(st.opts)}
				var o Outcome
				var err error
				if st.answer {
					o, err = m.AnswerOutcome(s)
				} else {
					o, err = m.OfferOutcome(s)
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if len(o.Warnings) > 0 {
					t.Errorf("step %d warnings: %q", i, o.Warnings)
				}
				golden(t, fmt.Sprintf("codec-%s.%d", tc.name, i), o.SDP)
			}
		})
	}
}

// minimalMedia is an SDP with n media sections as small as a phone writes.
func minimalMedia(n int) []byte {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n")
	for i := range n {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\n", 4000+2*i)
	}
	return []byte(b.String())
}

// The media cap is what a reply can carry: the most media sections the
// parser takes come back rewritten within MaxSDPOut. An SDP whose rewritten
// form is larger (ICE candidates on every media) is refused saying which
// limit, and the new call leaves nothing behind.
func TestSDPLimits(t *testing.T) {
	m, _ := newTestManager(t, func(c *Config) { c.PortMin, c.PortMax = 20000, 29999 })
	out, err := m.Offer(Signal{CallID: "max", FromTag: "A", SDP: minimalMedia(sdp.MaxMedia)})
	if err != nil {
		t.Fatalf("offer with %d media: %v", sdp.MaxMedia, err)
	}
	if len(out) > MaxSDPOut {
		t.Fatalf("rewritten SDP of %d bytes exceeds MaxSDPOut", len(out))
	}
	t.Logf("%d media: %d bytes in, %d out", sdp.MaxMedia, len(minimalMedia(sdp.MaxMedia)), len(out))
	if _, err := m.Delete(DeleteRequest{CallID: "max", Options: Options{DeleteDelay: new(int)}}); err != nil {
		t.Fatal(err)
	}

	_, err = m.Offer(Signal{CallID: "ice", FromTag: "A", SDP: minimalMedia(1000), Options: Options{ICE: "force"}})
	var le *sdp.LimitError
	if !errors.Is(err, ErrRewriteSDP) || !errors.As(err, &le) || le.What != "bytes of rewritten SDP" || le.Max != MaxSDPOut {
		t.Fatalf("offer whose rewritten SDP is too large: %v", err)
	}
	if ids := m.List(0); len(ids) != 0 {
		t.Errorf("calls left behind: %v", ids)
	}
	if st := m.Statistics(); st.Interfaces[0].PortsUsed != 0 || st.Interfaces[1].PortsUsed != 0 {
		t.Errorf("ports left behind: %+v", st.Interfaces)
	}

	_, err = m.Offer(Signal{CallID: "many", FromTag: "A", SDP: minimalMedia(sdp.MaxMedia + 1)})
	if !errors.Is(err, ErrParseSDP) || !errors.As(err, &le) || le.What != "media sections" {
		t.Errorf("offer with %d media: %v", sdp.MaxMedia+1, err)
	}
}
