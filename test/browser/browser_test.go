// SPDX-License-Identifier: Apache-2.0

package browser

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The flag strings the test, as the SIP proxy, gives relayd. seedFlags is
// what Kamailio's production routes send for every call
// (examples/kamailio-rtpengine-routes.cfg); each direction adds what its
// receiver needs: a browser gets ICE-lite, DTLS-SRTP with relayd as the DTLS
// server (DTLS=passive), rtcp-mux and a=mid, spelled out or as the WebRTC
// flag; a SIP phone gets plain RTP/AVP without ICE and with RTCP taken off
// the RTP port (and no DTLS=passive: on an offer that goes out as RTP/AVP
// relayd rightly warns that it has no effect).
const (
	seedFlags         = "replace-origin replace-session-connection"
	toBrowserExplicit = seedFlags + " ICE=force DTLS=passive SDES-off UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require generate-mid"
	toBrowserWebRTC   = seedFlags + " ICE=force DTLS=passive SDES-off WebRTC"
	toPhone           = seedFlags + " ICE=remove SDES-off RTP/AVP rtcp-mux-demux"
	// toBrowserActive has no DTLS=passive, as the seed routes' answer from
	// a SIP phone (its reply does not come over WebSocket): relayd answers
	// the browser's actpass with active and is the DTLS client, starting
	// its handshake on the pair the browser nominates.
	toBrowserActive = seedFlags + " ICE=force SDES-off UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require generate-mid"
)

// The browser calls the phone: its offer goes to the phone as RTP/AVP, the
// phone's answer comes back to it as DTLS-SRTP with ICE-lite, with relayd as
// the DTLS server (DTLS=passive) or the client.
func TestBrowserCallsPhone(t *testing.T) {
	for _, c := range []struct {
		name, flags, setup, browserRole string
	}{
		{"relayd passive", toBrowserExplicit, "passive", "client"},
		{"relayd active", toBrowserActive, "active", "server"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			e := newEnv(t, pcmu)
			ph := e.newPhone()
			b := e.startChromium("offer")
			offer := string(e.fromPage(b, "offer"))
			checkBrowserCodecs(t, "the browser's offer", parseSDP(t, offer), pcmu)
			reply := e.ng("offer", toPhone, map[string]any{"call-id": t.Name(), "from-tag": "browser", "sdp": offer})
			toPh := checkPhoneSDP(t, reply)
			ph.relay = netip.AddrPortFrom(netip.MustParseAddr(toPh.addr), uint16(toPh.port))
			ph.tePT = toPh.pts["telephone-event/8000"]
			reply = e.ng("answer", c.flags, map[string]any{"call-id": t.Name(), "from-tag": "browser",
				"to-tag": "phone", "sdp": ph.sdp()})
			toBr := checkBrowserSDP(t, reply, c.setup)
			e.toPage("answer", []byte(reply["sdp"].(string)))
			ph.send()
			e.verifyCall(b, ph, toPh, toBr, c.browserRole)
			t.Logf("call verified in %v", time.Since(start).Round(time.Millisecond))
		})
	}
}

// The phone calls the browser: its offer goes to the browser as DTLS-SRTP
// with ICE-lite (the WebRTC flag), the browser answers active and relayd is
// the DTLS server.
func TestPhoneCallsBrowser(t *testing.T) {
	start := time.Now()
	e := newEnv(t, pcmu)
	ph := e.newPhone()
	reply := e.ng("offer", toBrowserWebRTC, map[string]any{"call-id": t.Name(), "from-tag": "phone", "sdp": ph.sdp()})
	toBr := checkBrowserSDP(t, reply, "actpass")
	e.toPage("offer", []byte(reply["sdp"].(string)))
	b := e.startChromium("answer")
	answer := string(e.fromPage(b, "answer"))
	br := parseSDP(t, answer)
	checkBrowserCodecs(t, "the browser's answer", br, pcmu)
	if !br.has("setup:active") {
		t.Errorf("the browser's answer is not a=setup:active: relayd would not be the DTLS server:\n%s", answer)
	}
	reply = e.ng("answer", toPhone, map[string]any{"call-id": t.Name(), "from-tag": "phone", "to-tag": "browser",
		"sdp": answer})
	toPh := checkPhoneSDP(t, reply)
	ph.relay = netip.AddrPortFrom(netip.MustParseAddr(toPh.addr), uint16(toPh.port))
	ph.send()
	e.verifyCall(b, ph, toPh, toBr, "client")
	t.Logf("call verified in %v", time.Since(start).Round(time.Millisecond))
}

// verifyCall checks a connected call from both ends: the browser's DTLS
// transport and ICE pair, each side's tone, the browser's DTMF at the phone,
// then hangs up.
func (e *env) verifyCall(b *chromium, ph *phone, toPh, toBr sdpMedia, browserRole string) {
	t := e.t
	t.Helper()
	checkTransport(t, "when connected", e.fromPage(b, "connected"), toBr, browserRole)

	// The phone: a second of the browser's tone, after its first half
	// second, all of it from the relay's port for the phone.
	checkTone(t, "the phone", ph.waitPCMU(75)[25*frame:], rate, browserHz)
	want := netip.AddrPortFrom(netip.MustParseAddr(relayAddr), uint16(toPh.port))
	for src, n := range ph.sourcesSeen() {
		if src != want {
			t.Errorf("the phone got %d packets from %v, want all from relayd's %v", n, src, want)
		}
	}

	// The browser: what its decoder produced from the phone's tone.
	var heard struct {
		Rate   int     `json:"rate"`
		Format string  `json:"format"`
		Frames int     `json:"frames"`
		PCM    []int16 `json:"pcm"`
	}
	if body := e.fromPage(b, "audio"); json.Unmarshal(body, &heard) != nil || heard.Rate == 0 {
		t.Fatalf("the page's audio: %.200s", body)
	}
	t.Logf("the browser's track processor gave %d AudioData frames (%s)", heard.Frames, heard.Format)
	checkTone(t, "the browser", heard.PCM, heard.Rate, phoneHz)

	// DTMF from the browser, as RFC 4733 events at the phone.
	e.toPage("dtmf", nil)
	var tones []string
	if body := e.fromPage(b, "dtmf-done"); json.Unmarshal(body, &tones) != nil {
		t.Fatalf("the page's DTMF report: %s", body)
	}
	if !slices.Equal(tones, []string{"1", "#", "9"}) {
		t.Errorf("the browser played tones %q, want 1 # 9", tones)
	}
	events := checkDTMF(t, ph, []uint8{1, 11, 9}, 100*time.Millisecond)
	checkPhoneRTP(t, ph, events)
	final := e.fromPage(b, "stats")
	browserEP := checkTransport(t, "after DTMF", final, toBr, browserRole)
	checkFinalStats(t, final, e.codec)

	// relayd's own view: it sends to the pair the browser uses now (Chromium
	// nominates more than one pair and may switch: relayd follows the
	// latest) and to the phone, and media went both ways on both sides.
	q := e.ng("query", "", map[string]any{"call-id": t.Name()})
	checkRelayStream(t, q, "the browser", toBr.port, browserEP)
	checkRelayStream(t, q, "the phone", toPh.port, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ph.port())))
	e.checkTranscoding(q)

	e.ng("delete", "", map[string]any{"call-id": t.Name()})
	if n := e.transcodedMedia(); n != 0 {
		t.Errorf("relayd's statistics count %d transcoded media after the call's delete, want 0", n)
	}
	e.toPage("hangup", nil)
	e.fromPage(b, "closed")
}

// event is one telephone-event as the phone received it.
type event struct {
	digit      uint8
	packets    int
	endPackets int
	marker     bool
	ended      bool
	duration   uint16
	timestamp  uint32
	first, end time.Time // arrival of its first and last packet
}

// checkDTMF waits for the phone to hold the telephone-events of digits,
// each ended, lasting want, in order, and returns them.
func checkDTMF(t *testing.T, ph *phone, digits []uint8, want time.Duration) []event {
	t.Helper()
	var events []event
	deadline := time.Now().Add(3 * time.Second)
	for {
		events = events[:0]
		for _, p := range ph.dtmf() {
			if n := len(events); n == 0 || events[n-1].timestamp != p.timestamp {
				events = append(events, event{digit: p.event, marker: p.marker, timestamp: p.timestamp, first: p.at})
			}
			ev := &events[len(events)-1]
			ev.packets++
			ev.end = p.at
			if p.marker && ev.packets > 1 {
				t.Errorf("telephone-event %d has a marker on its packet %d, want it on the first only", p.event, ev.packets)
			}
			if p.event != ev.digit {
				t.Errorf("telephone-event at timestamp %d changes from %d to %d", p.timestamp, ev.digit, p.event)
			}
			if p.end {
				ev.ended = true
				ev.endPackets++
			} else if ev.ended {
				t.Errorf("telephone-event %d goes on after its end", p.event)
			}
			ev.duration = max(ev.duration, p.duration)
		}
		if len(events) >= len(digits) && events[len(digits)-1].ended || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pkts := ph.dtmf(); len(pkts) > 0 {
		first, last := pkts[0].at, pkts[len(pkts)-1].at
		// Chromium sends no audio while a tone plays (only in the gaps).
		t.Logf("phone: %d telephone-event packets over %v, %d PCMU packets meanwhile", len(pkts),
			last.Sub(first).Round(time.Millisecond), ph.pcmuBetween(first, last))
	}
	var got []uint8
	for _, ev := range events {
		got = append(got, ev.digit)
		t.Logf("phone: telephone-event %d, %d packets (%d with the end bit), marker %v, duration %d (%v)", ev.digit,
			ev.packets, ev.endPackets, ev.marker, ev.duration, time.Duration(ev.duration)*time.Second/rate)
	}
	if !slices.Equal(got, digits) {
		t.Fatalf("the phone got telephone-events %v, want %v", got, digits)
	}
	wantTS := uint16(want.Seconds() * rate)
	for _, ev := range events {
		if !ev.ended || !ev.marker {
			t.Errorf("telephone-event %d: end bit %v, marker on its first packet %v: want both", ev.digit, ev.ended, ev.marker)
		}
		// One 20 ms packet either way: the sender counts in packets.
		if d := int(ev.duration) - int(wantTS); d < -frame || d > frame {
			t.Errorf("telephone-event %d lasts %d timestamp units, want %d (%v)", ev.digit, ev.duration, wantTS, want)
		}
	}
	return events
}

// checkPhoneRTP checks the RTP stream the phone received as one stream: one
// SSRC for audio and events, no sequence number missing or repeated, audio
// timestamps moving forward, and each event's timestamp on the audio's
// clock: after the audio before it and at least its duration before the
// audio after it (a telephone-event/48000 event carried over unchanged
// would be six times too far ahead).
func checkPhoneRTP(t *testing.T, ph *phone, events []event) {
	t.Helper()
	hs := ph.rtpHeaders()
	ssrcs := map[uint32]int{}
	gaps, dups := 0, 0
	for i, h := range hs {
		ssrcs[h.ssrc]++
		if i == 0 {
			continue
		}
		switch d := h.seq - hs[i-1].seq; {
		case d == 0 || d > 0x8000:
			dups++
		case d > 1:
			gaps += int(d) - 1
		}
	}
	t.Logf("phone: %d RTP packets, SSRCs %v, %d sequence numbers missing, %d repeated or reordered", len(hs), ssrcs, gaps, dups)
	if len(ssrcs) != 1 || gaps > 0 || dups > 0 {
		t.Errorf("the phone's RTP is not one unbroken stream: SSRCs %v, %d sequence numbers missing, %d repeated or reordered",
			ssrcs, gaps, dups)
	}
	var prevAudio *rtpHeader
	for i := range hs {
		if hs[i].pt != 0 {
			continue
		}
		if prevAudio != nil && int32(hs[i].timestamp-prevAudio.timestamp) <= 0 {
			t.Errorf("the phone's audio timestamp goes from %d to %d", prevAudio.timestamp, hs[i].timestamp)
			break
		}
		prevAudio = &hs[i]
	}
	for _, ev := range events {
		var before, after *rtpHeader
		for i := range hs {
			if hs[i].pt != 0 {
				continue
			}
			if hs[i].at.Before(ev.first) {
				before = &hs[i]
			} else if hs[i].at.After(ev.end) && after == nil {
				after = &hs[i]
			}
		}
		if before == nil || after == nil {
			t.Errorf("telephone-event %d: no audio before (%v) or after (%v) it", ev.digit, before != nil, after != nil)
			continue
		}
		lead, tail := int32(ev.timestamp-before.timestamp), int32(after.timestamp-ev.timestamp)
		t.Logf("phone: telephone-event %d starts %d after the audio before it and %d before the audio after it",
			ev.digit, lead, tail)
		if lead <= 0 || lead > rate || tail < int32(ev.duration) || tail > rate {
			t.Errorf("telephone-event %d at timestamp %d is off the audio's clock: the audio before it is at %d, after it at %d",
				ev.digit, ev.timestamp, before.timestamp, after.timestamp)
		}
	}
}

// checkFinalStats checks the browser's counters after the call: its codec
// both ways, packets received and sent, the tone's level played out.
func checkFinalStats(t *testing.T, body []byte, codec string) {
	t.Helper()
	stats := parseStats(t, body)
	for _, typ := range []string{"inbound-rtp", "outbound-rtp"} {
		list := ofType(stats, typ)
		if len(list) != 1 {
			t.Errorf("getStats has %d %s, want 1", len(list), typ)
			continue
		}
		s := list[0]
		mime := stats[s.str("codecId")]
		n := s.num("packetsReceived") + s.num("packetsSent")
		t.Logf("browser %s: %s, %.0f packets, %.0f lost, audio energy %.3f", typ, mime.str("mimeType"), n,
			s.num("packetsLost"), s.num("totalAudioEnergy"))
		if !strings.EqualFold(mime.str("mimeType"), "audio/"+codec) {
			t.Errorf("browser %s codec is %q, want audio/%s", typ, mime.str("mimeType"), codec)
		}
		if n < 100 {
			t.Errorf("browser %s counted %.0f packets, want at least 100 (2 s)", typ, n)
		}
		if typ == "inbound-rtp" {
			// What the browser's jitter buffer did to the audio: concealment
			// and time stretching both show in the captured tone.
			t.Logf("browser inbound-rtp: %.0f samples received, %.0f concealed (%.0f silent), %.0f inserted to slow down, "+
				"%.0f removed to speed up, jitter buffer delay %.0f ms, jitter %.1f ms", s.num("totalSamplesReceived"),
				s.num("concealedSamples"), s.num("silentConcealedSamples"), s.num("insertedSamplesForDeceleration"),
				s.num("removedSamplesForAcceleration"), 1000*s.num("jitterBufferDelay")/max(s.num("jitterBufferEmittedCount"), 1),
				1000*s.num("jitter"))
			// The played-out level: a tone of peak toneAmp is a level of
			// toneAmp/32767 (Chromium's audio level is a peak level).
			level := math.Sqrt(s.num("totalAudioEnergy") / max(s.num("totalSamplesDuration"), 1e-9))
			t.Logf("browser plays out %.1f s at a level of %.3f (the tone's is %.3f)", s.num("totalSamplesDuration"),
				level, toneAmp/32767)
			if level < toneAmp/32767/2 {
				t.Errorf("browser's played-out audio level is %.3f, want about %.3f", level, toneAmp/32767)
			}
		}
	}
}

// browserCodecs are the rtpmaps of a browser speaking one codec, sorted.
var browserCodecs = map[string][]string{
	pcmu: {"pcmu/8000", "telephone-event/8000"},
	opus: {"opus/48000/2", "telephone-event/48000"},
}

// checkBrowserCodecs requires an SDP of the browser, or to it, to carry
// codec and the telephone-event at its clock rate and nothing else, the
// codec first: what the page restricted the browser to.
func checkBrowserCodecs(t *testing.T, what string, m sdpMedia, codec string) {
	t.Helper()
	var names []string
	for enc := range m.pts {
		names = append(names, enc)
	}
	slices.Sort(names)
	want := browserCodecs[codec]
	if !slices.Equal(names, want) || len(m.fmts) != 2 || m.fmts[0] != fmt.Sprint(m.pts[want[0]]) {
		t.Fatalf("%s has payload types %v (%v), want %s then %s only", what, m.fmts, names, want[0], want[1])
	}
}

// checkPhoneSDP checks relayd's SDP to the phone: plain RTP/AVP at the
// relay's address, PCMU and telephone-event, nothing of WebRTC.
func checkPhoneSDP(t *testing.T, reply map[string]any) sdpMedia {
	t.Helper()
	s, _ := reply["sdp"].(string)
	m := parseSDP(t, s)
	if m.proto != "RTP/AVP" || m.addr != relayAddr {
		t.Errorf("relayd's SDP to the phone is %s at %s, want RTP/AVP at %s", m.proto, m.addr, relayAddr)
	}
	for _, a := range []string{"ice-", "candidate", "end-of-candidates", "fingerprint", "setup", "crypto",
		"extmap", "rtcp-mux", "mid", "ssrc", "msid", "group", "rtcp-fb"} {
		if m.has(a) {
			t.Errorf("relayd's SDP to the phone has a=%s…, a browser attribute", a)
		}
	}
	if _, ok := m.pts["pcmu/8000"]; !ok {
		t.Errorf("relayd's SDP to the phone has no PCMU")
	}
	if m.pts["telephone-event/8000"] == 0 {
		t.Errorf("relayd's SDP to the phone has no telephone-event/8000")
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// checkBrowserSDP checks relayd's SDP to the browser: DTLS-SRTP with
// ICE-lite, relayd's one host candidate, rtcp-mux, a=mid, setup as wanted.
func checkBrowserSDP(t *testing.T, reply map[string]any, setup string) sdpMedia {
	t.Helper()
	s, _ := reply["sdp"].(string)
	m := parseSDP(t, s)
	if m.proto != "UDP/TLS/RTP/SAVPF" || m.addr != relayAddr {
		t.Errorf("relayd's SDP to the browser is %s at %s, want UDP/TLS/RTP/SAVPF at %s", m.proto, m.addr, relayAddr)
	}
	for _, a := range []string{"ice-lite", "ice-ufrag:", "ice-pwd:", "fingerprint:sha-256 ", "setup:" + setup,
		"rtcp-mux", "mid:", "candidate:"} {
		if !m.has(a) {
			t.Errorf("relayd's SDP to the browser lacks a=%s", a)
		}
	}
	cand := false
	for _, a := range m.attrs {
		if f := strings.Fields(a); strings.HasPrefix(a, "candidate:") && len(f) >= 8 {
			if f[4] == relayAddr && f[5] == fmt.Sprint(m.port) && f[7] == "host" {
				cand = true
			}
		}
	}
	if !cand {
		t.Errorf("relayd's SDP to the browser has no host candidate %s %d", relayAddr, m.port)
	}
	if m.has("crypto:") {
		t.Errorf("relayd's SDP to the browser has a=crypto despite SDES-off")
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

// stat is one entry of the browser's getStats().
type stat map[string]any

func (s stat) str(k string) string { v, _ := s[k].(string); return v }
func (s stat) num(k string) float64 {
	v, _ := s[k].(float64)
	return v
}

func parseStats(t *testing.T, body []byte) map[string]stat {
	t.Helper()
	var list []stat
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("getStats JSON: %v\n%s", err, body)
	}
	out := map[string]stat{}
	for _, s := range list {
		out[s.str("id")] = s
	}
	return out
}

func ofType(stats map[string]stat, typ string) []stat {
	var out []stat
	for _, s := range stats {
		if s.str("type") == typ {
			out = append(out, s)
		}
	}
	return out
}

// checkTransport checks the browser's own view of its transport: DTLS
// connected in the role wanted (client: relayd is the server), the selected
// pair succeeded, nominated and leading to relayd's candidate. It returns
// the browser's end of that pair.
func checkTransport(t *testing.T, when string, body []byte, toBr sdpMedia, role string) netip.AddrPort {
	t.Helper()
	stats := parseStats(t, body)
	tr := ofType(stats, "transport")
	if len(tr) != 1 {
		t.Fatalf("getStats %s has %d transports, want 1", when, len(tr))
	}
	tp := tr[0]
	t.Logf("browser transport %s: dtlsState %s, dtlsRole %s, %s, SRTP %s, ICE role %s, selected pair changes %v",
		when, tp.str("dtlsState"), tp.str("dtlsRole"), tp.str("dtlsCipher"), tp.str("srtpCipher"), tp.str("iceRole"),
		tp["selectedCandidatePairChanges"])
	if tp.str("dtlsState") != "connected" {
		t.Errorf("browser's DTLS state %s is %q, want connected", when, tp.str("dtlsState"))
	}
	if tp.str("dtlsRole") != role {
		t.Errorf("browser's DTLS role is %q, want %s", tp.str("dtlsRole"), role)
	}
	if tp.str("srtpCipher") == "" {
		t.Errorf("browser's transport has no SRTP cipher")
	}
	pair, ok := stats[tp.str("selectedCandidatePairId")]
	if !ok {
		t.Fatalf("browser's transport has no selected candidate pair %s", when)
	}
	remote := stats[pair.str("remoteCandidateId")]
	local := stats[pair.str("localCandidateId")]
	t.Logf("browser's ICE pair %s: %s:%v -> %s:%v (%s), state %s, nominated %v", when,
		local.str("address"), local["port"], remote.str("address"), remote["port"], remote.str("candidateType"),
		pair.str("state"), pair["nominated"])
	if pair.str("state") != "succeeded" || pair["nominated"] != true {
		t.Errorf("browser's selected pair is %s, nominated %v: want succeeded and nominated", pair.str("state"), pair["nominated"])
	}
	if remote.str("address") != relayAddr || int(remote.num("port")) != toBr.port {
		t.Errorf("browser's pair leads to %s:%v, want relayd's candidate %s:%d", remote.str("address"), remote["port"],
			relayAddr, toBr.port)
	}
	ep, err := netip.ParseAddrPort(fmt.Sprintf("%s:%.0f", local.str("address"), local.num("port")))
	if err != nil {
		t.Errorf("browser's local candidate: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return ep
}

// checkRelayStream finds, in relayd's query reply, the socket at localPort
// facing a party, and requires it to send to want and to have carried media
// both ways.
func checkRelayStream(t *testing.T, q map[string]any, who string, localPort int, want netip.AddrPort) {
	t.Helper()
	tags, _ := q["tags"].(map[string]any)
	for _, tv := range tags {
		tag, _ := tv.(map[string]any)
		medias, _ := tag["medias"].([]any)
		for _, mv := range medias {
			md, _ := mv.(map[string]any)
			streams, _ := md["streams"].([]any)
			for _, sv := range streams {
				st, _ := sv.(map[string]any)
				if num(st["local port"]) != float64(localPort) {
					continue
				}
				epd, _ := st["endpoint"].(map[string]any)
				ep := fmt.Sprintf("%v:%.0f", epd["address"], num(epd["port"]))
				in, _ := st["stats"].(map[string]any)
				out, _ := st["stats_out"].(map[string]any)
				t.Logf("relayd: port %d faces %s at %s: %.0f packets in, %.0f out, %.0f errors", localPort, who, ep,
					num(in["packets"]), num(out["packets"]), num(in["errors"]))
				if ep != want.String() {
					t.Errorf("relayd sends to %s at %s, want %v", who, ep, want)
				}
				if num(in["packets"]) < 100 || num(out["packets"]) < 100 {
					t.Errorf("relayd's port for %s counted %.0f packets in and %.0f out, want at least 100 each",
						who, num(in["packets"]), num(out["packets"]))
				}
				return
			}
		}
	}
	t.Errorf("relayd's query has no stream on port %d (facing %s):\n%v", localPort, who, q)
}

// num reads a number of a decoded reply: bencode integers or JSON numbers.
func num(v any) float64 {
	switch n := v.(type) {
	case int64:
		return float64(n)
	case int:
		return float64(n)
	case float64:
		return n
	}
	return math.NaN()
}
