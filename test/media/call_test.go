// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/e2e"
)

// sdpSpec is the session description a party sends: one PCMA audio stream.
type sdpSpec struct {
	origin  netip.Addr // o= address (the party's own, also when on hold)
	addr    netip.Addr // c= address (0.0.0.0 for an RFC 2543 hold)
	port    int
	version int
	mux     bool   // a=rtcp-mux
	dir     string // direction attribute; "" writes none
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IP4"
	}
	return "IP6"
}

// spec is the SDP of party p advertising its RTP socket.
func (p *party) spec(version int) sdpSpec {
	return sdpSpec{origin: p.addr, addr: p.addr, port: int(p.rtp.local.Port()), version: version, dir: "sendrecv"}
}

func (s sdpSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\n")
	fmt.Fprintf(&b, "o=- 4242 %d IN %s %s\r\n", s.version, family(s.origin), s.origin)
	fmt.Fprintf(&b, "s=-\r\n")
	fmt.Fprintf(&b, "c=IN %s %s\r\n", family(s.addr), s.addr)
	fmt.Fprintf(&b, "t=0 0\r\n")
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %d\r\n", s.port, rtpPayloadType)
	fmt.Fprintf(&b, "a=rtpmap:%d PCMA/8000\r\n", rtpPayloadType)
	fmt.Fprintf(&b, "a=ptime:20\r\n")
	if s.mux {
		fmt.Fprintf(&b, "a=rtcp-mux\r\n")
	}
	if s.dir != "" {
		fmt.Fprintf(&b, "a=%s\r\n", s.dir)
	}
	return b.String()
}

// relaySDP is what the relay told a party in its rewritten SDP.
type relaySDP struct {
	body      string
	addr      netip.Addr // the audio stream's c= address
	port      int
	rtcpPort  int // a=rtcp, or port+1 when absent
	rtcpAttr  bool
	mux       bool
	direction string
}

func parseRelaySDP(t *testing.T, what, body string) relaySDP {
	t.Helper()
	s, err := e2e.ParseSDP(body)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
	audio, ok := s.Audio()
	if !ok {
		t.Fatalf("%s: no m=audio\n%s", what, body)
	}
	addr, err := netip.ParseAddr(audio.Connection)
	if err != nil {
		t.Fatalf("%s: audio c= %q: %v\n%s", what, audio.Connection, err, body)
	}
	out := relaySDP{body: body, addr: addr, port: audio.Port, rtcpPort: audio.Port + 1}
	inAudio := false
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, "m=") {
			inAudio = strings.HasPrefix(line, "m=audio ")
			continue
		}
		if !inAudio {
			continue
		}
		switch {
		case strings.HasPrefix(line, "a=rtcp:"):
			f := strings.Fields(strings.TrimPrefix(line, "a=rtcp:"))
			if len(f) == 0 {
				t.Fatalf("%s: empty %q", what, line)
			}
			n, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("%s: %q: %v", what, line, err)
			}
			out.rtcpPort, out.rtcpAttr = n, true
		case line == "a=rtcp-mux":
			out.mux = true
		case line == "a=sendrecv", line == "a=sendonly", line == "a=recvonly", line == "a=inactive":
			out.direction = strings.TrimPrefix(line, "a=")
		}
	}
	return out
}

// check verifies that the relay advertised addr and a port of its range,
// and, without rtcp-mux, an RTCP port right after the RTP port.
func (s relaySDP) check(t *testing.T, what, addr string) {
	t.Helper()
	if s.addr != ip(addr) {
		t.Errorf("%s: audio c= %s, want %s\n%s", what, s.addr, addr, s.body)
	}
	if s.port < portMin || s.port > portMax {
		t.Errorf("%s: m=audio port %d outside the relay's range %d-%d\n%s", what, s.port, portMin, portMax, s.body)
	}
	if !s.mux && s.rtcpPort != s.port+1 {
		t.Errorf("%s: RTCP port %d, want RTP port + 1 = %d\n%s", what, s.rtcpPort, s.port+1, s.body)
	}
}

// call is one call set up through the relay: a offers (from-tag aTag)
// towards b, b answers (to-tag bTag).
type call struct {
	id         string
	aTag, bTag string
	toB        relaySDP // the relay's offer to b
	toA        relaySDP // the relay's answer to a
}

// callOptions change the ng requests setupCall sends.
type callOptions struct {
	aSpec, bSpec     *sdpSpec // nil: the party's own RTP socket, sendrecv
	flags            []string // in the offer and in the answer
	offerExtra       map[string]any
	answerExtra      map[string]any
	wantToB, wantToA string // addresses the relay must advertise; default relayInt4 / relayAdv4
	callIDPrefix     string
}

func newCallID(t *testing.T, prefix string) string {
	if prefix == "" {
		prefix = strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	}
	return fmt.Sprintf("%s-%08x", prefix, rand.Uint32())
}

// offerReq and answerReq are the dictionaries Kamailio's rtpengine module
// sends for a call from the external side: direction external→internal on
// the offer, the reverse on the answer.
func offerReq(callID, fromTag string, s sdpSpec, flags []string, extra map[string]any) map[string]any {
	req := map[string]any{
		"command":   "offer",
		"call-id":   callID,
		"from-tag":  fromTag,
		"sdp":       s.String(),
		"direction": []string{"external", "internal"},
	}
	if len(flags) > 0 {
		req["flags"] = flags
	}
	for k, v := range extra {
		req[k] = v
	}
	return req
}

func answerReq(callID, fromTag, toTag string, s sdpSpec, flags []string, extra map[string]any) map[string]any {
	req := map[string]any{
		"command":   "answer",
		"call-id":   callID,
		"from-tag":  fromTag,
		"to-tag":    toTag,
		"sdp":       s.String(),
		"direction": []string{"internal", "external"},
	}
	if len(flags) > 0 {
		req["flags"] = flags
	}
	for k, v := range extra {
		req[k] = v
	}
	return req
}

func replySDP(t *testing.T, what string, reply map[string]any) relaySDP {
	t.Helper()
	body, ok := reply["sdp"].(string)
	if !ok {
		t.Fatalf("%s: reply has no sdp: %v", what, reply)
	}
	return parseRelaySDP(t, what, body)
}

// setupCall runs offer (a → b) and answer (b → a) and checks the addresses
// the relay advertised. The call is deleted when the test ends.
func setupCall(t *testing.T, r *relayd, a, b *party, o callOptions) *call {
	t.Helper()
	c := &call{id: newCallID(t, o.callIDPrefix), aTag: "tag-a-" + strconv.Itoa(rand.IntN(1e6)), bTag: "tag-b-" + strconv.Itoa(rand.IntN(1e6))}
	as, bs := a.spec(1), b.spec(1)
	if o.aSpec != nil {
		as = *o.aSpec
	}
	if o.bSpec != nil {
		bs = *o.bSpec
	}
	c.toB = replySDP(t, "offer reply (SDP for b)", r.must(t, offerReq(c.id, c.aTag, as, o.flags, o.offerExtra)))
	t.Cleanup(func() {
		// The call may be gone already (a scenario deletes it or lets it
		// time out); only a transport failure matters here.
		if _, err := r.do(map[string]any{"command": "delete", "call-id": c.id}); err != nil && !errors.Is(err, e2e.ErrNGFailed) {
			t.Errorf("delete %s: %v", c.id, err)
		}
	})
	c.toA = replySDP(t, "answer reply (SDP for a)", r.must(t, answerReq(c.id, c.aTag, c.bTag, bs, o.flags, o.answerExtra)))
	wantB, wantA := o.wantToB, o.wantToA
	if wantB == "" {
		wantB = relayInt4
	}
	if wantA == "" {
		wantA = relayAdv4
	}
	c.toB.check(t, "SDP the relay offered to b", wantB)
	c.toA.check(t, "SDP the relay answered to a", wantA)
	if t.Failed() {
		t.FailNow()
	}
	return c
}

// qStream is one relay socket as a query reply shows it.
type qStream struct {
	tag       string
	local     netip.AddrPort
	endpoint  netip.AddrPort // where the relay sends that party's media
	flags     []string
	stats     map[string]int64 // received from the party
	statsOut  map[string]int64
	raw       map[string]any
	rawFields []string
}

func (s qStream) String() string {
	return fmt.Sprintf("tag %q local %s endpoint %s flags %v stats %v stats_out %v", s.tag, s.local, s.endpoint, s.flags, s.stats, s.statsOut)
}

// num accepts a bencode integer or a numeric string, as the ng protocol
// allows either.
func num(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func counterMap(v any) map[string]int64 {
	out := map[string]int64{}
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			if n, ok := num(x); ok {
				out[k] = n
			}
		}
	}
	return out
}

// queryStreams walks tags → medias → streams of a query reply.
func queryStreams(t *testing.T, reply map[string]any) []qStream {
	t.Helper()
	tags, ok := reply["tags"].(map[string]any)
	if !ok {
		t.Fatalf("query reply has no tags dictionary: %v", reply)
	}
	var out []qStream
	for tag, tv := range tags {
		td, _ := tv.(map[string]any)
		medias, _ := td["medias"].([]any)
		for _, mv := range medias {
			md, _ := mv.(map[string]any)
			streams, _ := md["streams"].([]any)
			for _, sv := range streams {
				sd, _ := sv.(map[string]any)
				s := qStream{tag: tag, raw: sd, stats: counterMap(sd["stats"]), statsOut: counterMap(sd["stats_out"])}
				port, _ := num(sd["local port"])
				if a, err := netip.ParseAddr(fmt.Sprint(sd["local address"])); err == nil {
					s.local = netip.AddrPortFrom(a, uint16(port))
				}
				if ep, ok := sd["endpoint"].(map[string]any); ok {
					p, _ := num(ep["port"])
					if a, err := netip.ParseAddr(fmt.Sprint(ep["address"])); err == nil {
						s.endpoint = netip.AddrPortFrom(a, uint16(p))
					}
				}
				if fl, ok := sd["flags"].([]any); ok {
					for _, f := range fl {
						s.flags = append(s.flags, fmt.Sprint(f))
					}
				}
				for k := range sd {
					s.rawFields = append(s.rawFields, k)
				}
				sort.Strings(s.rawFields)
				out = append(out, s)
			}
		}
	}
	return out
}

// streamAt returns the relay socket bound to port.
func streamAt(t *testing.T, streams []qStream, port int) qStream {
	t.Helper()
	for _, s := range streams {
		if int(s.local.Port()) == port {
			return s
		}
	}
	var all []string
	for _, s := range streams {
		all = append(all, s.String())
	}
	t.Fatalf("query lists no stream on local port %d; streams: %s", port, strings.Join(all, "; "))
	return qStream{}
}

// dropCounters lists a stream's counters whose names mention drops or
// rejects, for the log: the reference has none, relayd may add some.
func dropCounters(s qStream) map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.stats {
		if lk := strings.ToLower(k); strings.Contains(lk, "drop") || strings.Contains(lk, "reject") {
			out["stats."+k] = v
		}
	}
	for k, v := range s.raw {
		if lk := strings.ToLower(k); strings.Contains(lk, "drop") || strings.Contains(lk, "reject") {
			if n, ok := num(v); ok {
				out[k] = n
			}
		}
	}
	return out
}

// totalStatistic reads statistics.totalstatistics.<key>.
func totalStatistic(t *testing.T, reply map[string]any, key string) int64 {
	t.Helper()
	stats, _ := reply["statistics"].(map[string]any)
	tot, _ := stats["totalstatistics"].(map[string]any)
	n, ok := num(tot[key])
	if !ok {
		t.Fatalf("statistics reply has no totalstatistics.%s: %v", key, tot)
	}
	return n
}

// portsUsed reads statistics.interfaces[].ports.used per interface address.
func portsUsed(t *testing.T, reply map[string]any) map[string]int64 {
	t.Helper()
	stats, _ := reply["statistics"].(map[string]any)
	ifaces, ok := stats["interfaces"].([]any)
	if !ok {
		t.Fatalf("statistics reply has no interfaces list: %v", stats)
	}
	out := map[string]int64{}
	for _, iv := range ifaces {
		im, _ := iv.(map[string]any)
		ports, _ := im["ports"].(map[string]any)
		n, ok := num(ports["used"])
		if !ok {
			t.Fatalf("statistics interface %v has no ports.used", im)
		}
		out[fmt.Sprintf("%v/%v", im["name"], im["address"])] = n
	}
	return out
}

// waitHandled polls query until the relay socket on port shows cond on its
// counters: proof that the relay has handled the packets a test sent there,
// after which a check that nothing arrived elsewhere cannot pass merely
// because the relay was slow. It fails the test when cond never holds.
func waitHandled(t *testing.T, r *relayd, c *call, port int, what string, cond func(s qStream) bool) qStream {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := streamAt(t, queryStreams(t, r.query(t, c.id)), port)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay socket %d never showed %s: %s", port, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
