// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/pkg/ngproto"
)

func TestTranscodeSDP(t *testing.T) {
	ep := netip.MustParseAddrPort("198.51.100.7:10002")
	for _, p := range audio.Pairs() {
		offer, err := ParseAudio(BuildTranscodeOffer(ep, 1, p.Caller))
		if err != nil {
			t.Fatal(err)
		}
		if len(offer.Payloads) != 1 || offer.Payloads[0] != p.Caller.PT || offer.Rtpmap[p.Caller.PT] != p.Caller.Rtpmap() {
			t.Errorf("%s offer: %+v", p.Name, offer)
		}
		if pt, ok := offer.PayloadOf(p.Caller); !ok || pt != p.Caller.PT {
			t.Errorf("%s offer: PayloadOf = %d, %v", p.Name, pt, ok)
		}
		if _, ok := offer.PayloadOf(p.Callee); ok {
			t.Errorf("%s offer carries the callee's codec", p.Name)
		}
		answer, err := ParseAudio(BuildTranscodeAnswer(ep, 1, p.Callee))
		if err != nil || answer.RTCPPort != 10003 {
			t.Fatalf("%s answer: %+v %v", p.Name, answer, err)
		}
	}
	tests := []struct {
		name string
		a    Audio
		c    audio.Codec
		pt   int
		ok   bool
	}{
		{"static without rtpmap", Audio{Payloads: []int{0}}, audio.PCMU, 0, true},
		{"dynamic, other case", Audio{Payloads: []int{8, 96}, Rtpmap: map[int]string{96: "OPUS/48000/2"}}, audio.Opus, 96, true},
		{"opus without channels", Audio{Payloads: []int{111}, Rtpmap: map[int]string{111: "opus/48000"}}, audio.Opus, 111, true},
		{"wrong clock", Audio{Payloads: []int{9}, Rtpmap: map[int]string{9: "G722/16000"}}, audio.G722, 0, false},
		{"static renamed", Audio{Payloads: []int{0}, Rtpmap: map[int]string{0: "PCMA/8000"}}, audio.PCMU, 0, false},
	}
	for _, tc := range tests {
		if pt, ok := tc.a.PayloadOf(tc.c); ok != tc.ok || pt != tc.pt {
			t.Errorf("%s: PayloadOf = %d, %v", tc.name, pt, ok)
		}
	}
}

func TestParseTranscoding(t *testing.T) {
	media := func(concealed, full int64) map[string]any {
		return map[string]any{"transcoding": map[string]any{"concealed": concealed, "errors": map[string]any{"queue full": full}}}
	}
	reply := map[string]any{"tags": map[string]any{
		"a": map[string]any{"medias": []any{media(3, 1)}},
		"b": map[string]any{"medias": []any{media(4, 0), map[string]any{"codec": "PCMU/8000"}}},
	}}
	if got := ParseTranscoding(reply); got != (Transcoding{Reported: true, Concealed: 7, QueueFull: 1}) {
		t.Errorf("relayd-like reply: %+v", got)
	}
	// The incumbent's reply has no transcoding figures.
	plain := map[string]any{"tags": map[string]any{"a": map[string]any{"medias": []any{map[string]any{"flags": []any{"transcoding"}}}}}}
	if got := ParseTranscoding(plain); got != (Transcoding{}) {
		t.Errorf("reply without figures: %+v", got)
	}
}

// fakeRelay answers ng offers and answers with the SDPs a test gives, and
// keeps the requests.
type fakeRelay struct {
	conn          *net.UDPConn
	offer, answer func(req map[string]any) map[string]any
	reqs          chan map[string]any
}

func startFakeRelay(t *testing.T, offer, answer func(map[string]any) map[string]any) *fakeRelay {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{conn: c, offer: offer, answer: answer, reqs: make(chan map[string]any, 16)}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			cookie, body, err := ngproto.SplitMessage(buf[:n])
			if err != nil {
				continue
			}
			req, format, err := ngproto.Decode(body)
			if err != nil {
				continue
			}
			f.reqs <- req
			var reply map[string]any
			switch str(req["command"]) {
			case "offer":
				reply = f.offer(req)
			case "answer":
				reply = f.answer(req)
			default:
				reply = map[string]any{"result": "ok"}
			}
			r, err := ngproto.ReplyOf(reply)
			if err != nil {
				t.Errorf("reply: %v", err)
				continue
			}
			out, _ := ngproto.Encode(cookie, format, r)
			_, _ = c.WriteToUDPAddrPort(out, from)
		}
	}()
	t.Cleanup(func() { c.Close() })
	return f
}

func sdpReply(s string, extra ...string) map[string]any {
	r := map[string]any{"result": "ok", "sdp": s}
	if len(extra) > 0 {
		r["warning"] = extra[0]
	}
	return r
}

// TestTranscodedSetup drives a transcoded call's offer and answer through
// relays that transcode and relays that do not.
func TestTranscodedSetup(t *testing.T) {
	relayCaller := netip.MustParseAddrPort("127.0.0.1:30000")
	relayCallee := netip.MustParseAddrPort("127.0.0.1:30002")
	p, _ := audio.Lookup("opus-pcmu")
	tests := []struct {
		name          string
		offer, answer func(map[string]any) map[string]any
		err           string
	}{
		{"transcodes",
			func(map[string]any) map[string]any { return sdpReply(BuildTranscodeOffer(relayCallee, 9, audio.PCMU)) },
			func(map[string]any) map[string]any { return sdpReply(BuildTranscodeOffer(relayCaller, 9, audio.Opus)) }, ""},
		{"built without Opus",
			func(map[string]any) map[string]any {
				return sdpReply(BuildTranscodeOffer(relayCallee, 9, audio.Opus), "codec transcode PCMU: none of the offerer's codecs can be transcoded from")
			},
			nil, "it offered the callee payload types 111 (opus/48000/2); its warning: codec transcode PCMU"},
		{"answers the caller in PCMU",
			func(map[string]any) map[string]any { return sdpReply(BuildTranscodeOffer(relayCallee, 9, audio.PCMU)) },
			func(map[string]any) map[string]any { return sdpReply(BuildTranscodeOffer(relayCaller, 9, audio.PCMU)) },
			"the opus-only caller was answered payload types 0 (PCMU/8000)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeRelay(t, tc.offer, tc.answer)
			d, err := NewDriver(Options{NG: f.conn.LocalAddr().(*net.UDPAddr).AddrPort(), Conns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			c := &Call{ID: "x", FromTag: "f", ToTag: "t", Transcode: &p,
				Caller: netip.MustParseAddrPort("127.0.0.5:10000"), Callee: netip.MustParseAddrPort("127.0.0.6:10000")}
			_, _, err = d.Setup(context.Background(), c)
			offer := <-f.reqs
			codec, _ := offer["codec"].(map[string]any)
			if a, _ := ParseAudio(str(offer["sdp"])); len(a.Payloads) != 1 || a.Payloads[0] != 111 || codec == nil ||
				!strings.Contains(strings.ToLower(fmtAny(codec["mask"])), "opus") || !strings.Contains(fmtAny(codec["transcode"]), "PCMU") {
				t.Errorf("offer request: sdp %q, codec %v", str(offer["sdp"]), codec)
			}
			if tc.err == "" {
				if err != nil || c.CalleePT != 0 || c.PT != 111 || c.CalleeSendTo != relayCallee || c.CallerSendTo != relayCaller {
					t.Errorf("setup: %v, %+v", err, c)
				}
				return
			}
			if !errors.Is(err, ErrNotTranscoded) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("setup error %v, want ErrNotTranscoded with %q", err, tc.err)
			}
		})
	}
}

func fmtAny(v any) string {
	var b strings.Builder
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			b.WriteString(str(e) + " ")
		}
	default:
		b.WriteString(str(v))
	}
	return b.String()
}
