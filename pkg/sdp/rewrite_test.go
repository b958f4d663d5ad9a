// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

// roundTripEdgeCases are bodies, besides the example files, that a no-op
// rewrite must reproduce byte for byte.
var roundTripEdgeCases = map[string]string{
	"LF only": "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 1000 RTP/AVP 0\na=sendrecv\n",
	"no trailing newline": "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
		"m=audio 1000 RTP/AVP 0\r\na=rtcp:1001",
	"trailing CR only":      "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r",
	"trailing empty lines":  "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n\r\n\n\r",
	"mixed line endings":    "v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\n",
	"session-level-only c=": "v=0\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0\r\nm=video 1002 RTP/AVP 96\r\n",
	"media-level-only c=": "v=0\r\ns=-\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\n" +
		"m=video 1002 RTP/AVP 96\r\nc=IN IP6 2001:db8::1\r\n",
	"no c= at all": "v=0\r\ns=-\r\nm=audio 1000 RTP/AVP 0\r\n",
	"multiple m= lines": "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:1001\r\n" +
		"m=video 0 RTP/AVP 96\r\nm=image 1004 udptl t38\r\nc=IN IP4 0.0.0.0\r\nm=application 1006 UDP/DTLS/SCTP webrtc-datachannel\r\n",
	"IPv6":        "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\nc=IN IP6 2001:db8::1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:1001 IN IP6 2001:db8::2\r\n",
	"odd spacing": "v=0\r\no=-  1 1\tIN IP4 192.0.2.1 \r\nc=IN  IP4 192.0.2.1\r\nm=audio  01000 RTP/AVP\t0 \r\na=rtcp:01001  IN IP4 192.0.2.1\r\n",
	"multicast":   "v=0\r\nc=IN IP4 224.2.36.42/127\r\nm=audio 1000/2 RTP/AVP 0\r\n",
	"i= b= k= and rtcp-mux": "v=0\r\ns=-\r\ni=session info\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\nt=0 0\r\nr=604800 3600 0 90000\r\n" +
		"m=audio 1000 RTP/AVP 0\r\ni=media info\r\nb=TIAS:64000\r\nk=prompt\r\na=rtcp-mux\r\na=rtcp-mux\r\na=sendonly\r\na=recvonly\r\n",
}

func TestRoundTrip(t *testing.T) {
	bodies := map[string][]byte{}
	files, err := filepath.Glob("testdata/*.sdp")
	if err != nil || len(files) < 7 {
		t.Fatalf("example SDPs: %v, %v", files, err)
	}
	for _, f := range files {
		bodies[filepath.Base(f)] = mustRead(t, filepath.Base(f))
	}
	for name, s := range roundTripEdgeCases {
		bodies[name] = []byte(s)
	}
	for name, in := range bodies {
		t.Run(name, func(t *testing.T) {
			d := mustParse(t, in)
			out, err := d.Rewrite(d.KeepPlan())
			if err != nil {
				t.Fatalf("Rewrite(KeepPlan()) = %v", err)
			}
			if string(out) != string(in) {
				t.Errorf("no-op rewrite changed the SDP\n got %q\nwant %q", out, in)
			}
		})
	}
}

// TestRoundTripExplicitPlan builds the no-op plan the way the session layer
// would from the exported view, rather than through KeepPlan.
func TestRoundTripExplicitPlan(t *testing.T) {
	for _, name := range []string{"browser-chromium-offer.sdp", "freeswitch-answer.sdp", "ipv6-audio-video-offer.sdp", "sip-trunk-hold-zero-address.sdp"} {
		t.Run(name, func(t *testing.T) {
			in := mustRead(t, name)
			d := mustParse(t, in)
			var p Plan
			if d.Connection != nil {
				p.SessionConnection = d.Connection.Addr
			}
			for i, m := range d.Media {
				ap, _ := d.Endpoint(i)
				mp := MediaPlan{Port: m.Port, Addr: ap.Addr(), RTCPMux: m.RTCPMux}
				if m.RTCP != nil {
					mp.RTCP.Port = m.RTCP.Port
					if m.RTCP.Connection != nil {
						mp.RTCP.Addr = m.RTCP.Connection.Addr
					}
				}
				p.Media = append(p.Media, mp)
			}
			out, err := d.Rewrite(p)
			if err != nil {
				t.Fatalf("Rewrite = %v", err)
			}
			if string(out) != string(in) {
				t.Errorf("no-op rewrite changed the SDP\n got %q\nwant %q", out, in)
			}
		})
	}
}

var (
	relay4 = netip.MustParseAddr("192.0.2.1")
	relay6 = netip.MustParseAddr("2001:db8:ffff::1")
)

// TestRewriteRules checks single rules on small bodies; the golden files
// cover whole realistic SDPs.
func TestRewriteRules(t *testing.T) {
	tests := []struct {
		name string
		in   string
		plan func(p *Plan)
		want string
	}{
		{
			name: "inserted lines take the ending of the line they follow",
			in:   "v=0\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\na=sendrecv\r\r\n",
			plan: func(p *Plan) {
				p.Media[0].Addr = relay4
				p.Media[0].RTCP.Port = 2001
			},
			want: "v=0\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\nc=IN IP4 192.0.2.1\na=sendrecv\r\r\na=rtcp:2001\r\r\n",
		},
		{
			name: "append after a last line without newline",
			in:   "v=0\nc=IN IP4 198.51.100.1\nm=audio 1000 RTP/AVP 0\na=sendrecv",
			plan: func(p *Plan) {
				p.Media[0].RTCP.Port = 1001
				p.Media[0].RTCPMux = true
			},
			want: "v=0\nc=IN IP4 198.51.100.1\nm=audio 1000 RTP/AVP 0\na=sendrecv\na=rtcp:1001\na=rtcp-mux",
		},
		{
			name: "append after a media without attributes keeps trailing empty lines",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\nb=AS:64\r\n\r\n",
			plan: func(p *Plan) { p.Media[0].Direction = "sendonly" },
			want: "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\nb=AS:64\r\na=sendonly\r\n\r\n",
		},
		{
			name: "c= inserted after i=, media without c= and no session c=",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0\r\ni=voice\r\nb=AS:64\r\n",
			plan: func(p *Plan) { p.Media[0].Addr = relay6 },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\ni=voice\r\nc=IN IP6 2001:db8:ffff::1\r\nb=AS:64\r\n",
		},
		{
			name: "no c= inserted when the session c= matches",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay4
				p.Media[0].Addr = relay4
			},
			want: "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n",
		},
		{
			name: "invalid addresses keep the c= lines",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 198.51.100.2\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = netip.Addr{}
				p.Media[0].Addr = netip.Addr{}
				p.Media[0].Port = 3000
			},
			want: "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 3000 RTP/AVP 0\r\nc=IN IP4 198.51.100.2\r\n",
		},
		{
			name: "port count suffix kept",
			in:   "v=0\r\nm=video 1000/2 RTP/AVP 31\r\n",
			plan: func(p *Plan) { p.Media[0].Port = 4000 },
			want: "v=0\r\nm=video 4000/2 RTP/AVP 31\r\n",
		},
		{
			name: "zero address at media level keeps zero of the new family",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay6
				p.Media[0].Addr = relay6
				p.Media[0].ZeroAddress = true
			},
			want: "v=0\r\nc=IN IP6 2001:db8:ffff::1\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP6 ::\r\n",
		},
		{
			name: "zero session c= stays zero for a held media, other media get their own c=",
			in:   "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 1000 RTP/AVP 0\r\nm=video 1002 RTP/AVP 96\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay4
				p.Media[0] = MediaPlan{Port: 2000, Addr: relay4, ZeroAddress: true, Direction: "sendonly"}
				p.Media[1] = MediaPlan{Port: 2002, Addr: relay4}
			},
			want: "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 2000 RTP/AVP 0\r\na=sendonly\r\nm=video 2002 RTP/AVP 96\r\nc=IN IP4 192.0.2.1\r\n",
		},
		{
			name: "zero address without Addr uses the original family",
			in:   "v=0\r\nc=IN IP6 2001:db8::5\r\nm=audio 1000 RTP/AVP 0\r\n",
			plan: func(p *Plan) {
				p.Media[0].Addr = netip.Addr{}
				p.Media[0].ZeroAddress = true
			},
			want: "v=0\r\nc=IN IP6 2001:db8::5\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP6 ::\r\n",
		},
		{
			name: "zero session c= kept as is without any address in the plan",
			in:   "v=0\r\nc=IN IP6 ::\r\nm=audio 1000 RTP/AVP 0\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = netip.Addr{}
				p.Media[0] = MediaPlan{Port: 2000, ZeroAddress: true}
			},
			want: "v=0\r\nc=IN IP6 ::\r\nm=audio 2000 RTP/AVP 0\r\n",
		},
		{
			name: "zero session c= replaced when no held media uses it",
			in:   "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 1000 RTP/AVP 0\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay4
				p.Media[0] = MediaPlan{Port: 2000, Addr: relay4}
			},
			want: "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 2000 RTP/AVP 0\r\n",
		},
		{
			name: "format list reordered, one dropped, codecs added with their lines, ptime rewritten",
			in: "v=0\r\nm=audio 1000 RTP/AVP 111 9 110\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n" +
				"a=rtpmap:9 G722/8000\r\na=rtpmap:110 telephone-event/48000\r\na=ptime:20\r\na=sendrecv\r\n",
			plan: func(p *Plan) {
				p.Media[0].Formats = []string{"111", "0", "96", "110"}
				p.Media[0].FormatAttributes = []string{"rtpmap:0 PCMU/8000", "rtpmap:96 telephone-event/8000", "fmtp:96 0-15"}
				p.Media[0].PTime = 30
			},
			want: "v=0\r\nm=audio 1000 RTP/AVP 111 0 96 110\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n" +
				"a=rtpmap:110 telephone-event/48000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n" +
				"a=ptime:30\r\na=sendrecv\r\n",
		},
		{
			name: "own format lines replace the input's",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0 111\r\na=rtpmap:111 G7221/16000\r\na=fmtp:111 bitrate=24000\r\na=sendrecv\r\n",
			plan: func(p *Plan) {
				p.Media[0].Formats = []string{"111", "110"}
				p.Media[0].OwnFormatLines = true
				p.Media[0].FormatAttributes = []string{"rtpmap:111 opus/48000/2", "rtpmap:110 telephone-event/48000"}
			},
			// Where the input had its own.
			want: "v=0\r\nm=audio 1000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\na=sendrecv\r\n",
		},
		{
			name: "ptime added when absent",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=sendrecv\r\n",
			plan: func(p *Plan) { p.Media[0].PTime = 20 },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=sendrecv\r\na=ptime:20\r\n",
		},
		{
			name: "direction replaced once, duplicates dropped",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=sendrecv\r\na=ptime:20\r\na=inactive\r\n",
			plan: func(p *Plan) { p.Media[0].Direction = "recvonly" },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=recvonly\r\na=ptime:20\r\n",
		},
		{
			name: "short a=rtcp stays short, full form on request",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:1001\r\nm=audio 1002 RTP/AVP 0\r\na=rtcp:1003\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay4
				p.Media[0] = MediaPlan{Port: 2000, Addr: relay4, RTCP: RTCPPlan{Port: 2001}}
				p.Media[1] = MediaPlan{Port: 2002, Addr: relay4, RTCP: RTCPPlan{Port: 2003, Full: true}}
			},
			want: "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 2000 RTP/AVP 0\r\na=rtcp:2001\r\nm=audio 2002 RTP/AVP 0\r\na=rtcp:2003 IN IP4 192.0.2.1\r\n",
		},
		{
			name: "full a=rtcp without any address falls back to the original one",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:1001 IN IP4 198.51.100.1\r\n",
			plan: func(p *Plan) { p.Media[0].RTCP.Port = 2001 },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:2001 IN IP4 198.51.100.1\r\n",
		},
		{
			name: "full a=rtcp changes family with the media",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:1001 IN IP4 198.51.100.1\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay6
				p.Media[0] = MediaPlan{Port: 2000, Addr: relay6, RTCP: RTCPPlan{Port: 2001}}
			},
			want: "v=0\r\nc=IN IP6 2001:db8:ffff::1\r\nm=audio 2000 RTP/AVP 0\r\na=rtcp:2001 IN IP6 2001:db8:ffff::1\r\n",
		},
		{
			name: "reject drops rtcp, rtcp-mux and ICE but keeps other attributes",
			in: "v=0\r\na=ice-lite\r\nm=video 1000 RTP/AVP 96\r\nc=IN IP4 198.51.100.1\r\na=rtpmap:96 VP8/90000\r\n" +
				"a=rtcp:1001\r\na=rtcp-mux\r\na=ice-ufrag:abcd\r\na=candidate:1 1 UDP 1 198.51.100.1 1000 typ host\r\n",
			plan: func(p *Plan) {
				p.Media[0] = MediaPlan{Reject: true, Port: 5000, Addr: relay4, RTCPMux: true, RTCP: RTCPPlan{Port: 5001},
					ICE: &ICEPlan{Ufrag: "u", Pwd: "p"}}
			},
			want: "v=0\r\na=ice-lite\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 192.0.2.1\r\na=rtpmap:96 VP8/90000\r\n",
		},
		{
			name: "rejected media gets a c= only when there is no session c=",
			in:   "v=0\r\nc=IN IP4 198.51.100.1\r\nm=video 1000 RTP/AVP 96\r\n",
			plan: func(p *Plan) {
				p.SessionConnection = relay4
				p.Media[0] = MediaPlan{Reject: true, Addr: relay6}
			},
			want: "v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 0 RTP/AVP 96\r\n",
		},
		{
			name: "rejected media without any c= gets one",
			in:   "v=0\r\nm=video 1000 RTP/AVP 96\r\n",
			plan: func(p *Plan) { p.Media[0] = MediaPlan{Reject: true, Addr: relay6} },
			want: "v=0\r\nm=video 0 RTP/AVP 96\r\nc=IN IP6 2001:db8:ffff::1\r\n",
		},
		{
			name: "remove formats with their attributes, wildcard rtcp-fb kept",
			in: "v=0\r\nm=video 1000 RTP/SAVPF 96 97 98\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:* ccm fir\r\n" +
				"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 H264/90000\r\na=fmtp:98 profile-level-id=42e01f\r\n",
			plan: func(p *Plan) { p.Media[0].RemoveFormats = []string{"96", "97", "111"} },
			want: "v=0\r\nm=video 1000 RTP/SAVPF 98\r\na=rtcp-fb:* ccm fir\r\na=rtpmap:98 H264/90000\r\na=fmtp:98 profile-level-id=42e01f\r\n",
		},
		{
			name: "remove and add attributes; managed names ignored by RemoveAttributes",
			in:   "v=0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 1000 RTP/AVP 0\r\na=setup:actpass\r\na=fingerprint:sha-256 AA\r\na=sendrecv\r\na=rtcp-mux\r\n",
			plan: func(p *Plan) {
				p.RemoveSessionAttributes = []string{"group"}
				p.Media[0].RemoveAttributes = []string{"setup", "fingerprint", "sendrecv", "rtcp-mux"}
				p.Media[0].AddAttributes = []string{"setup:active", "fingerprint:sha-256 BB"}
				p.Media[0].RTCPMux = true
				p.Media[0].RTCP.Port = 1000
			},
			want: "v=0\r\na=msid-semantic: WMS\r\nm=audio 1000 RTP/AVP 0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp:1000\r\na=setup:active\r\na=fingerprint:sha-256 BB\r\n",
		},
		{
			name: "RemoveICE strips every level",
			in: "v=0\r\na=ice-lite\r\na=ice-options:trickle\r\nm=audio 1000 RTP/AVP 0\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\n" +
				"a=candidate:1 1 UDP 1 198.51.100.1 1000 typ host\r\na=end-of-candidates\r\na=remote-candidates:1 198.51.100.1 1000\r\n" +
				"a=ice-mismatch\r\na=ice-pacing:50\r\na=sendrecv\r\n",
			plan: func(p *Plan) { p.RemoveICE = true },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=sendrecv\r\n",
		},
		{
			name: "ICE plan replaces media and session ICE, appended after all other additions",
			in:   "v=0\r\na=ice-ufrag:s\r\nm=audio 1000 RTP/AVP 0\r\na=ice-ufrag:a\r\na=ice-pwd:b\r\na=mid:0\r\nm=video 1002 RTP/AVP 96\r\na=ice-ufrag:v\r\n",
			plan: func(p *Plan) {
				p.Media[0].Direction = "sendrecv"
				p.Media[0].RTCP.Port = 1001
				p.Media[0].ICE = &ICEPlan{Ufrag: "U", Pwd: "P", Trickle: true, EndOfCandidates: true,
					Candidates: []string{"candidate:1 1 UDP 2130706431 192.0.2.1 1000 typ host"}}
			},
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=mid:0\r\na=sendrecv\r\na=rtcp:1001\r\na=ice-ufrag:U\r\na=ice-pwd:P\r\n" +
				"a=ice-options:trickle\r\na=candidate:1 1 UDP 2130706431 192.0.2.1 1000 typ host\r\na=end-of-candidates\r\n" +
				"m=video 1002 RTP/AVP 96\r\na=ice-ufrag:v\r\n",
		},
		{
			name: "session attributes after the last session a=, s= inserted after o=",
			in:   "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\nt=0 0\r\na=tool:x\r\nb=AS:1\r\nm=audio 1000 RTP/AVP 0\r\n",
			plan: func(p *Plan) {
				p.SessionName = "relayd"
				p.AddSessionAttributes = []string{"rtpengine:abc", "x-y"}
			},
			want: "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\ns=relayd\r\nt=0 0\r\na=tool:x\r\na=rtpengine:abc\r\na=x-y\r\nb=AS:1\r\nm=audio 1000 RTP/AVP 0\r\n",
		},
		{
			name: "session attributes without session a= go after t=, also without media",
			in:   "v=0\r\ns=-\r\nt=0 0\r\n",
			plan: func(p *Plan) { p.AddSessionAttributes = []string{"rtpengine:abc"} },
			want: "v=0\r\ns=-\r\nt=0 0\r\na=rtpengine:abc\r\n",
		},
		{
			name: "origin fields and family",
			in:   "v=0\r\no=user  1 1 IN IP4 host.example.com\r\ns=-\r\n",
			plan: func(p *Plan) { p.Origin = OriginPlan{Version: "2", Addr: relay6} },
			want: "v=0\r\no=user 1 2 IN IP6 2001:db8:ffff::1\r\ns=-\r\n",
		},
		{
			name: "origin plan without o= line does nothing",
			in:   "v=0\r\ns=-\r\n",
			plan: func(p *Plan) { p.Origin = OriginPlan{Username: "relayd"} },
			want: "v=0\r\ns=-\r\n",
		},
		{
			name: "removing the last line without newline",
			in:   "v=0\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp-mux",
			plan: func(p *Plan) { p.Media[0].RTCPMux = false },
			want: "v=0\r\nm=audio 1000 RTP/AVP 0\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, []byte(tc.in))
			p := d.KeepPlan()
			tc.plan(&p)
			got, err := d.Rewrite(p)
			if err != nil {
				t.Fatalf("Rewrite = %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Rewrite:\n got %q\nwant %q", got, tc.want)
			}
			if _, err := Parse(got); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
			again, err := d.Rewrite(p)
			if err != nil || string(again) != string(got) {
				t.Errorf("second Rewrite = %q, %v; want the same output", again, err)
			}
		})
	}
}

func TestRewritePlanErrors(t *testing.T) {
	in := "v=0\r\no=- 1 1 IN IP4 198.51.100.1\r\nc=IN IP4 198.51.100.1\r\nm=audio 1000 RTP/AVP 0 8\r\n"
	zone := netip.MustParseAddr("fe80::1%eth0")
	tests := []struct {
		name string
		plan func(p *Plan)
	}{
		{"too few media", func(p *Plan) { p.Media = nil }},
		{"too many media", func(p *Plan) { p.Media = append(p.Media, MediaPlan{}) }},
		{"port negative", func(p *Plan) { p.Media[0].Port = -1 }},
		{"port too large", func(p *Plan) { p.Media[0].Port = 65536 }},
		{"rtcp port too large", func(p *Plan) { p.Media[0].RTCP.Port = 70000 }},
		{"unknown direction", func(p *Plan) { p.Media[0].Direction = "sendrecv\r\na=x" }},
		{"proto with space", func(p *Plan) { p.Media[0].Proto = "RTP/AVP 0" }},
		{"all formats removed", func(p *Plan) { p.Media[0].RemoveFormats = []string{"0", "8"} }},
		{"empty format list", func(p *Plan) { p.Media[0].Formats = []string{} }},
		{"format with space", func(p *Plan) { p.Media[0].Formats = []string{"0 8"} }},
		{"format attribute with newline", func(p *Plan) { p.Media[0].FormatAttributes = []string{"rtpmap:0 PCMU/8000\r\na=x"} }},
		{"ptime negative", func(p *Plan) { p.Media[0].PTime = -1 }},
		{"origin username with space", func(p *Plan) { p.Origin.Username = "a b" }},
		{"origin version with newline", func(p *Plan) { p.Origin.Version = "1\n" }},
		{"session name with newline", func(p *Plan) { p.SessionName = "x\r\nc=IN IP4 1.2.3.4" }},
		{"session attribute empty", func(p *Plan) { p.AddSessionAttributes = []string{""} }},
		{"session attribute with NUL", func(p *Plan) { p.AddSessionAttributes = []string{"a\x00"} }},
		{"media attribute managed", func(p *Plan) { p.Media[0].AddAttributes = []string{"rtcp:9"} }},
		{"media attribute direction", func(p *Plan) { p.Media[0].AddAttributes = []string{"inactive"} }},
		{"ice ufrag empty", func(p *Plan) { p.Media[0].ICE = &ICEPlan{Pwd: "p"} }},
		{"ice pwd with space", func(p *Plan) { p.Media[0].ICE = &ICEPlan{Ufrag: "u", Pwd: "p q"} }},
		{"candidate without prefix", func(p *Plan) {
			p.Media[0].ICE = &ICEPlan{Ufrag: "u", Pwd: "p", Candidates: []string{"1 1 UDP 1 192.0.2.1 1 typ host"}}
		}},
		{"address with zone", func(p *Plan) { p.Media[0].Addr = zone }},
		{"session address with zone", func(p *Plan) { p.SessionConnection = zone }},
		{"origin address with zone", func(p *Plan) { p.Origin.Addr = zone }},
		{"rtcp address with zone", func(p *Plan) { p.Media[0].RTCP.Addr = zone }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, []byte(in))
			p := d.KeepPlan()
			tc.plan(&p)
			out, err := d.Rewrite(p)
			if !errors.Is(err, ErrPlan) {
				t.Fatalf("Rewrite = %q, %v; want an error wrapping ErrPlan", out, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error message %q spans lines", err)
			}
		})
	}
}

// TestRewriteIgnoresViewChanges: the exported fields are a view; Rewrite
// works from the lines.
func TestRewriteIgnoresViewChanges(t *testing.T) {
	in := mustRead(t, "sip-trunk-offer.sdp")
	d := mustParse(t, in)
	p := d.KeepPlan()
	d.Media[0].Port = 1
	d.Media[0].Formats = nil
	d.Connection.Addr = relay4
	d.Media = nil
	out, err := d.Rewrite(p)
	if err != nil || string(out) != string(in) {
		t.Errorf("Rewrite after changing the view = %q, %v; want the input", out, err)
	}
}
