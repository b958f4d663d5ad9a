// SPDX-License-Identifier: Apache-2.0

package browser

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// The transcoding flag strings: the same as without transcoding, plus the
// codec the receiving side must be offered.
//
// A browser calling a PCMU phone offers Opus, so the phone is offered PCMU
// besides (codec-transcode-PCMU): it answers PCMU and relayd transcodes; a
// phone that has Opus would pick it and nothing would be transcoded.
//
// A PCMU phone calling a browser: codec-transcode-opus adds Opus to the
// offer, but after the phone's own codecs, and Chromium sends the offer's
// first codec it supports whatever its answer says (setCodecPreferences
// only orders what it receives; a browser answering only Opus to "PCMU,
// Opus" still sends PCMU, which relayd, transcoding as that answer asked,
// drops). So the route masks the phone's codecs towards the browser
// (codec-mask-all): it is offered Opus and telephone-event/48000 only,
// relayd still accepts the phone's codecs to transcode from.
const (
	toPhoneTranscodePCMU   = toPhone + " codec-transcode-PCMU"
	toBrowserTranscodeOpus = toBrowserWebRTC + " codec-mask-all codec-transcode-opus"
)

// A browser speaking only Opus calls a PCMU-only phone: the phone is offered
// the browser's Opus and relayd's PCMU, answers PCMU, and the browser is
// answered Opus; relayd transcodes between them.
func TestOpusBrowserCallsPCMUPhone(t *testing.T) {
	start := time.Now()
	e := newEnv(t, opus)
	ph := e.newPhone()
	b := e.startChromium("offer")
	offer := string(e.fromPage(b, "offer"))
	br := parseSDP(t, offer)
	checkBrowserCodecs(t, "the browser's offer", br, opus)
	reply := e.ng("offer", toPhoneTranscodePCMU, map[string]any{"call-id": t.Name(), "from-tag": "browser", "sdp": offer})
	toPh := checkPhoneSDP(t, reply)
	// The browser's codecs first, then PCMU and its telephone-event, then
	// the browser's telephone-event: Opus 111, PCMU 0, te/8000, te/48000.
	ph.tePT = toPh.pts["telephone-event/8000"]
	want := []string{fmt.Sprint(br.pts["opus/48000/2"]), "0", fmt.Sprint(ph.tePT), fmt.Sprint(br.pts["telephone-event/48000"])}
	if !slices.Equal(toPh.fmts, want) || toPh.pts["opus/48000/2"] != br.pts["opus/48000/2"] ||
		toPh.pts["telephone-event/48000"] != br.pts["telephone-event/48000"] {
		t.Errorf("relayd offers the phone payload types %v (%v), want %v: the browser's Opus and telephone-event/48000 "+
			"with PCMU and telephone-event/8000 added", toPh.fmts, toPh.pts, want)
	}
	ph.relay = netip.AddrPortFrom(netip.MustParseAddr(toPh.addr), uint16(toPh.port))
	reply = e.ng("answer", toBrowserExplicit, map[string]any{"call-id": t.Name(), "from-tag": "browser",
		"to-tag": "phone", "sdp": ph.sdp()})
	toBr := checkBrowserSDP(t, reply, "passive")
	// The phone answered PCMU: the browser is answered in its own Opus and
	// telephone-event/48000, with the payload types it offered.
	checkBrowserCodecs(t, "relayd's answer to the browser", toBr, opus)
	if toBr.pts["opus/48000/2"] != br.pts["opus/48000/2"] || toBr.pts["telephone-event/48000"] != br.pts["telephone-event/48000"] {
		t.Errorf("relayd answers the browser payload types %v, want the ones it offered, %v", toBr.pts, br.pts)
	}
	e.toPage("answer", []byte(reply["sdp"].(string)))
	ph.send()
	e.verifyCall(b, ph, toPh, toBr, "client")
	t.Logf("call verified in %v", time.Since(start).Round(time.Millisecond))
}

// A PCMU-only phone calls a browser speaking only Opus: the browser is
// offered relayd's Opus alone, answers it, and the phone is answered its
// own PCMU; relayd transcodes between them.
func TestPCMUPhoneCallsOpusBrowser(t *testing.T) {
	start := time.Now()
	e := newEnv(t, opus)
	ph := e.newPhone()
	reply := e.ng("offer", toBrowserTranscodeOpus, map[string]any{"call-id": t.Name(), "from-tag": "phone", "sdp": ph.sdp()})
	toBr := checkBrowserSDP(t, reply, "actpass")
	// Opus and telephone-event/48000 added, the phone's codecs masked.
	checkBrowserCodecs(t, "relayd's offer to the browser", toBr, opus)
	e.toPage("offer", []byte(reply["sdp"].(string)))
	b := e.startChromium("answer")
	answer := string(e.fromPage(b, "answer"))
	br := parseSDP(t, answer)
	checkBrowserCodecs(t, "the browser's answer", br, opus)
	if br.pts["opus/48000/2"] != toBr.pts["opus/48000/2"] || br.pts["telephone-event/48000"] != toBr.pts["telephone-event/48000"] {
		t.Errorf("the browser answers payload types %v, not the ones offered, %v", br.pts, toBr.pts)
	}
	if !br.has("setup:active") {
		t.Errorf("the browser's answer is not a=setup:active: relayd would not be the DTLS server:\n%s", answer)
	}
	reply = e.ng("answer", toPhone, map[string]any{"call-id": t.Name(), "from-tag": "phone", "to-tag": "browser",
		"sdp": answer})
	toPh := checkPhoneSDP(t, reply)
	// The browser answered Opus: the phone is answered its own PCMU and
	// telephone-event.
	if want := []string{"0", fmt.Sprint(dtmfPT)}; !slices.Equal(toPh.fmts, want) || toPh.pts["telephone-event/8000"] != dtmfPT {
		t.Errorf("relayd answers the phone payload types %v (%v), want %v", toPh.fmts, toPh.pts, want)
	}
	ph.relay = netip.AddrPortFrom(netip.MustParseAddr(toPh.addr), uint16(toPh.port))
	ph.send()
	e.verifyCall(b, ph, toPh, toBr, "client")
	t.Logf("call verified in %v", time.Since(start).Round(time.Millisecond))
}

// checkTranscoding reads relayd's query of the call: each party's codec,
// and with a browser speaking Opus the transcoder at work on both sides
// (the "transcoding" flag and its counters) and counted in the statistics;
// with one speaking PCMU no transcoding at all.
func (e *env) checkTranscoding(q map[string]any) {
	t := e.t
	t.Helper()
	transcoded := e.codec != pcmu
	tags, _ := q["tags"].(map[string]any)
	for _, tag := range []string{"browser", "phone"} {
		td, _ := tags[tag].(map[string]any)
		medias, _ := td["medias"].([]any)
		if len(medias) != 1 {
			t.Errorf("relayd's query has %d media for %s, want 1:\n%v", len(medias), tag, q)
			continue
		}
		md, _ := medias[0].(map[string]any)
		codec, _ := md["codec"].(string)
		var flags []string
		fl, _ := md["flags"].([]any)
		for _, f := range fl {
			flags = append(flags, fmt.Sprint(f))
		}
		tc, _ := md["transcoding"].(map[string]any)
		t.Logf("relayd: the %s's media speaks %s, flags %v, transcoding %v", tag, codec, flags, tc)
		wantCodec := "PCMU/8000"
		if tag == "browser" && transcoded {
			wantCodec = "opus/48000"
		}
		if !strings.EqualFold(codec, wantCodec) {
			t.Errorf("relayd's query says the %s's media speaks %q, want %s", tag, codec, wantCodec)
		}
		if !transcoded {
			if tc != nil || slices.Contains(flags, "transcoding") {
				t.Errorf("relayd transcodes the %s's media (flags %v, %v) though both parties speak PCMU", tag, flags, tc)
			}
			continue
		}
		if !slices.Contains(flags, "transcoding") || tc == nil {
			t.Errorf("relayd's query does not show the %s's media transcoded: flags %v, transcoding %v", tag, flags, tc)
			continue
		}
		// What relayd receives from this party, and what it sends it.
		wantIn, wantOut := "PCMU/8000", "PCMU/8000"
		if tag == "browser" {
			wantIn, wantOut = "opus/48000/2", "opus/48000/2"
		}
		if recv, sent := fmt.Sprint(tc["receives"]), fmt.Sprint(tc["sends"]); !strings.EqualFold(recv, wantIn) ||
			!strings.EqualFold(sent, wantOut) {
			t.Errorf("relayd's transcoder receives %s and sends %s on the %s's side, want %s and %s", recv, sent, tag,
				wantIn, wantOut)
		}
		if in, out := num(tc["packets in"]), num(tc["packets out"]); in < 100 || out < 100 {
			t.Errorf("relayd's transcoder counted %.0f packets in and %.0f out on the %s's side, want at least 100 each",
				in, out, tag)
		}
		if errs, _ := tc["errors"].(map[string]any); len(errs) > 0 {
			t.Errorf("relayd's transcoder counted errors on the %s's side: %v", tag, errs)
		}
	}
	n := e.transcodedMedia()
	t.Logf("relayd's statistics: %d transcoded media", n)
	if transcoded && n < 1 || !transcoded && n != 0 {
		t.Errorf("relayd's statistics count %d transcoded media during the call, want %v", n,
			map[bool]string{true: "at least 1", false: "0"}[transcoded])
	}
}

// transcodedMedia is relayd's current count of transcoded media (ng
// statistics).
func (e *env) transcodedMedia() int {
	e.t.Helper()
	st := e.ng("statistics", "", nil)
	s, _ := st["statistics"].(map[string]any)
	cur, _ := s["currentstatistics"].(map[string]any)
	n := num(cur["transcodedmedia"])
	if math.IsNaN(n) { // not in the reply
		e.t.Fatalf("relayd's statistics have no currentstatistics.transcodedmedia: %v", st)
	}
	return int(n)
}
