// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, b []byte) *Description {
	t.Helper()
	d, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func conn(s string) *Connection {
	a := netip.MustParseAddr(s)
	t := "IP4"
	if a.Is6() {
		t = "IP6"
	}
	return &Connection{AddrType: t, Addr: a}
}

func TestParseExamples(t *testing.T) {
	tests := []struct {
		file        string
		origin      Origin
		sessionName string
		conn        *Connection
		sessDir     string
		ice         bool
		media       []Media
	}{
		{
			file:        "sip-trunk-offer.sdp",
			origin:      Origin{"-", "3961458923", "3961458923", "IN", "IP4", "203.0.113.50"},
			sessionName: "SIP Call",
			conn:        conn("203.0.113.50"),
			media: []Media{{
				Type: "audio", Port: 30000, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"0", "8", "101"},
				Direction: "sendrecv",
				RTPMaps: map[uint8]RTPMap{
					0: {"PCMU", 8000, 1}, 8: {"PCMA", 8000, 1}, 101: {"telephone-event", 8000, 1},
				},
				Fmtp: map[uint8]string{101: "0-15"}, PTime: 20,
			}},
		},
		{
			file:        "freeswitch-answer.sdp",
			origin:      Origin{"FreeSWITCH", "1732268400", "1732268401", "IN", "IP4", "10.0.1.30"},
			sessionName: "FreeSWITCH",
			conn:        conn("10.0.1.30"),
			media: []Media{{
				Type: "audio", Port: 19200, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"8", "101"},
				Direction: "sendrecv",
				RTCP:      &RTCPAttr{Port: 19201, Connection: conn("10.0.1.30")},
				RTPMaps:   map[uint8]RTPMap{8: {"PCMA", 8000, 1}, 101: {"telephone-event", 8000, 1}},
				Fmtp:      map[uint8]string{101: "0-16"}, PTime: 20,
			}},
		},
		{
			file:        "sip-trunk-hold-zero-address.sdp",
			origin:      Origin{"-", "3961458923", "3961458924", "IN", "IP4", "203.0.113.50"},
			sessionName: "SIP Call",
			conn:        conn("0.0.0.0"),
			media: []Media{{
				Type: "audio", Port: 30000, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"0", "8", "101"},
				RTPMaps: map[uint8]RTPMap{
					0: {"PCMU", 8000, 1}, 8: {"PCMA", 8000, 1}, 101: {"telephone-event", 8000, 1},
				},
				Fmtp: map[uint8]string{101: "0-15"}, PTime: 20,
			}},
		},
		{
			file:        "ipv6-audio-video-offer.sdp",
			origin:      Origin{"-", "1", "1", "IN", "IP6", "2001:db8::50"},
			sessionName: "-",
			conn:        conn("2001:db8::50"),
			media: []Media{
				{
					Type: "audio", Port: 40000, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"0", "101"},
					Direction: "sendrecv",
					RTPMaps:   map[uint8]RTPMap{0: {"PCMU", 8000, 1}, 101: {"telephone-event", 8000, 1}},
				},
				{
					Type: "video", Port: 40002, NumPorts: 1, Proto: "RTP/AVP", Formats: []string{"96"},
					Direction: "sendrecv",
					RTPMaps:   map[uint8]RTPMap{96: {"H264", 90000, 1}},
					Fmtp:      map[uint8]string{96: "profile-level-id=42e01f"},
				},
			},
		},
		{
			file:        "browser-chromium-offer.sdp",
			origin:      Origin{"-", "198324545026927677", "2", "IN", "IP4", "198.51.100.23"},
			sessionName: "-",
			ice:         true,
			media: []Media{{
				Type: "audio", Port: 44140, NumPorts: 1, Proto: "UDP/TLS/RTP/SAVPF",
				Formats:    []string{"111", "63", "9", "0", "8", "13", "110", "126"},
				Connection: conn("198.51.100.23"),
				RTCP:       &RTCPAttr{Port: 9, Connection: conn("0.0.0.0")},
				RTCPMux:    true,
				Direction:  "sendrecv",
				ICE:        true,
				Mid:        "0",
				RTPMaps: map[uint8]RTPMap{
					111: {"opus", 48000, 2}, 63: {"red", 48000, 2}, 9: {"G722", 8000, 1},
					0: {"PCMU", 8000, 1}, 8: {"PCMA", 8000, 1}, 13: {"CN", 8000, 1},
					110: {"telephone-event", 48000, 1}, 126: {"telephone-event", 8000, 1},
				},
				Fmtp: map[uint8]string{63: "111/111", 111: "minptime=10;useinbandfec=1"},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			d := mustParse(t, mustRead(t, tc.file))
			if d.Origin != tc.origin {
				t.Errorf("Origin = %+v, want %+v", d.Origin, tc.origin)
			}
			if d.SessionName != tc.sessionName {
				t.Errorf("SessionName = %q, want %q", d.SessionName, tc.sessionName)
			}
			if !reflect.DeepEqual(d.Connection, tc.conn) {
				t.Errorf("Connection = %+v, want %+v", d.Connection, tc.conn)
			}
			if got := d.SessionDirection(); got != tc.sessDir {
				t.Errorf("SessionDirection() = %q, want %q", got, tc.sessDir)
			}
			if got := d.HasICE(); got != tc.ice {
				t.Errorf("HasICE() = %v, want %v", got, tc.ice)
			}
			if len(d.Media) != len(tc.media) {
				t.Fatalf("got %d media, want %d", len(d.Media), len(tc.media))
			}
			for i, want := range tc.media {
				if got := *d.Media[i]; !reflect.DeepEqual(got, want) {
					t.Errorf("media %d:\n got %+v\nwant %+v", i, got, want)
				}
			}
		})
	}
}

func TestParseTolerated(t *testing.T) {
	tests := []struct {
		name string
		sdp  string
		// check inspects the result; nil means "parses".
		check func(t *testing.T, d *Description)
	}{
		{"LF only", "v=0\nc=IN IP4 192.0.2.1\nm=audio 1 RTP/AVP 0\n", nil},
		{"no trailing newline", "v=0\r\nm=audio 1 RTP/AVP 0", nil},
		{"trailing empty lines", "v=0\r\nm=audio 1 RTP/AVP 0\r\n\r\n\n", nil},
		{"no o= s= t=", "v=0\r\nm=audio 1 RTP/AVP 0\r\n", func(t *testing.T, d *Description) {
			if d.Origin != (Origin{}) || d.SessionName != "" {
				t.Errorf("Origin = %+v, SessionName = %q, want zero", d.Origin, d.SessionName)
			}
		}},
		{"multicast ttl", "v=0\r\nc=IN IP4 224.2.36.42/127/3\r\n", func(t *testing.T, d *Description) {
			if want := conn("224.2.36.42"); !reflect.DeepEqual(d.Connection, want) {
				t.Errorf("Connection = %+v, want %+v", d.Connection, want)
			}
		}},
		{"port count", "v=0\r\nm=video 49170/2 RTP/AVP 31\r\n", func(t *testing.T, d *Description) {
			if m := d.Media[0]; m.Port != 49170 || m.NumPorts != 2 {
				t.Errorf("Port/NumPorts = %d/%d, want 49170/2", m.Port, m.NumPorts)
			}
		}},
		{"session direction and ice", "v=0\r\na=ice-ufrag:abcd\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\n",
			func(t *testing.T, d *Description) {
				if d.SessionDirection() != "inactive" || !d.HasICE() || d.Media[0].ICE {
					t.Errorf("SessionDirection=%q HasICE=%v media ICE=%v, want inactive true false",
						d.SessionDirection(), d.HasICE(), d.Media[0].ICE)
				}
			}},
		{"malformed rtpmap ignored", "v=0\r\nm=audio 1 RTP/AVP 0 96\r\na=rtpmap:0\r\na=rtpmap:300 x/1\r\na=rtpmap:96 opus/x\r\n",
			func(t *testing.T, d *Description) {
				if len(d.Media[0].RTPMaps) != 0 {
					t.Errorf("RTPMaps = %v, want empty", d.Media[0].RTPMaps)
				}
			}},
		{"ipv4-mapped ipv6", "v=0\r\nc=IN IP6 ::ffff:192.0.2.1\r\n", nil},
		{"media count limit", "v=0\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", MaxMedia), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.sdp))
			if err != nil {
				t.Fatalf("Parse(%q) = %v, want success", tc.sdp, err)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		sdp  string
	}{
		{"empty", ""},
		{"only newlines", "\r\n\r\n"},
		{"too large", "v=0\r\ns=" + strings.Repeat("x", MaxSize)},
		{"too many media", "v=0\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", MaxMedia+1)},
		{"first line not v=", "o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n"},
		{"leading empty line", "\r\nv=0\r\n"},
		{"empty line inside", "v=0\r\n\r\ns=-\r\n"},
		{"no equals sign", "v=0\r\nhello\r\n"},
		{"type not a letter", "v=0\r\n1=x\r\n"},
		{"space before equals", "v=0\r\ns =x\r\n"},
		{"bare CR inside", "v=0\rs=-\r\n"},
		{"NUL byte", "v=0\r\ns=a\x00b\r\n"},
		{"second v=", "v=0\r\nv=0\r\n"},
		{"o= too few fields", "v=0\r\no=- 1 1 IN IP4\r\n"},
		{"o= too many fields", "v=0\r\no=- 1 1 IN IP4 192.0.2.1 x\r\n"},
		{"o= twice", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\no=- 1 1 IN IP4 192.0.2.1\r\n"},
		{"o= in media", "v=0\r\nm=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"},
		{"s= twice", "v=0\r\ns=a\r\ns=b\r\n"},
		{"m= port not numeric", "v=0\r\nm=audio x RTP/AVP 0\r\n"},
		{"m= port negative", "v=0\r\nm=audio -1 RTP/AVP 0\r\n"},
		{"m= port too large", "v=0\r\nm=audio 65536 RTP/AVP 0\r\n"},
		{"m= port huge", "v=0\r\nm=audio 99999999999999999999 RTP/AVP 0\r\n"},
		{"m= port count zero", "v=0\r\nm=audio 1/0 RTP/AVP 0\r\n"},
		{"m= port count bad", "v=0\r\nm=audio 1/x RTP/AVP 0\r\n"},
		{"m= no formats", "v=0\r\nm=audio 1 RTP/AVP\r\n"},
		{"m= only media", "v=0\r\nm=audio\r\n"},
		{"c= hostname", "v=0\r\nc=IN IP4 host.example.com\r\n"},
		{"c= IP4 with IPv6 address", "v=0\r\nc=IN IP4 2001:db8::1\r\n"},
		{"c= IP6 with IPv4 address", "v=0\r\nc=IN IP6 192.0.2.1\r\n"},
		{"c= unknown addrtype", "v=0\r\nc=IN IPX 192.0.2.1\r\n"},
		{"c= unknown nettype", "v=0\r\nc=ATM IP4 192.0.2.1\r\n"},
		{"c= missing address", "v=0\r\nc=IN IP4\r\n"},
		{"c= extra field", "v=0\r\nc=IN IP4 192.0.2.1 x\r\n"},
		{"c= zone", "v=0\r\nc=IN IP6 fe80::1%eth0\r\n"},
		{"c= bad ttl", "v=0\r\nc=IN IP4 224.2.36.42/abc\r\n"},
		{"c= twice in session", "v=0\r\nc=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n"},
		{"c= twice in media", "v=0\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 192.0.2.1\r\nc=IN IP4 192.0.2.2\r\n"},
		{"a=rtcp bad port", "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:x\r\n"},
		{"a=rtcp bad address", "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:9 IN IP4 ::\r\n"},
		{"a=rtcp partial address", "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:9 IN IP4\r\n"},
		{"a=rtcp twice", "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:9\r\na=rtcp:9\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.sdp))
			if !errors.Is(err, ErrParse) {
				t.Fatalf("Parse(%q) = %v, %v; want an error wrapping ErrParse", clip(tc.sdp), d, err)
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name      string
		sdp       string
		media     int
		rtp, rtcp string // "" = not ok
	}{
		{"session c=", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n", 0, "192.0.2.1:1000", "192.0.2.1:1001"},
		{"media c= wins", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 192.0.2.2\r\n", 0, "192.0.2.2:1000", "192.0.2.2:1001"},
		{"no c=", "v=0\r\nm=audio 1000 RTP/AVP 0\r\n", 0, "", ""},
		{"out of range", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n", 1, "", ""},
		{"negative index", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\n", -1, "", ""},
		{"hold zero address", "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 1000 RTP/AVP 0\r\n", 0, "0.0.0.0:1000", "0.0.0.0:1001"},
		{"a=rtcp port", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:2001\r\n", 0, "192.0.2.1:1000", "192.0.2.1:2001"},
		{"a=rtcp full", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp:2001 IN IP6 2001:db8::1\r\n", 0, "192.0.2.1:1000", "[2001:db8::1]:2001"},
		{"rtcp-mux", "v=0\r\nc=IN IP6 2001:db8::1\r\nm=audio 1000 RTP/AVP 0\r\na=rtcp-mux\r\n", 0, "[2001:db8::1]:1000", "[2001:db8::1]:1000"},
		{"rejected", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n", 0, "192.0.2.1:0", "192.0.2.1:0"},
		{"port 65535", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 65535 RTP/AVP 0\r\n", 0, "192.0.2.1:65535", ""},
		{"second media", "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 1000 RTP/AVP 0\r\nm=video 2000 RTP/AVP 96\r\nc=IN IP4 192.0.2.9\r\n", 1, "192.0.2.9:2000", "192.0.2.9:2001"},
	}
	str := func(ap netip.AddrPort, ok bool) string {
		if !ok {
			return ""
		}
		return ap.String()
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, []byte(tc.sdp))
			if got := str(d.Endpoint(tc.media)); got != tc.rtp {
				t.Errorf("Endpoint(%d) = %q, want %q", tc.media, got, tc.rtp)
			}
			if got := str(d.RTCPEndpoint(tc.media)); got != tc.rtcp {
				t.Errorf("RTCPEndpoint(%d) = %q, want %q", tc.media, got, tc.rtcp)
			}
		})
	}
}

func TestEqualIgnoringOrigin(t *testing.T) {
	base := "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n"
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"identical", base, base, true},
		{"version differs", base, strings.Replace(base, "o=- 1 1", "o=- 1 2", 1), true},
		{"origin missing on one side", base, strings.Replace(base, "o=- 1 1 IN IP4 192.0.2.1\r\n", "", 1), true},
		{"port differs", base, strings.Replace(base, "audio 1", "audio 2", 1), false},
		{"line ending differs", base, strings.ReplaceAll(base, "\r\n", "\n"), false},
		{"extra line", base, base + "a=sendonly\r\n", false},
		{"prefix", base, base[:len(base)-2], false},
		{"both empty", "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := EqualIgnoringOrigin([]byte(tc.a), []byte(tc.b)); got != tc.want {
				t.Errorf("EqualIgnoringOrigin(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
			if got := EqualIgnoringOrigin([]byte(tc.b), []byte(tc.a)); got != tc.want {
				t.Errorf("EqualIgnoringOrigin(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

// A body beyond a limit says which limit: the proxy's operator gets it in
// the error reply.
func TestParseLimits(t *testing.T) {
	tests := []struct {
		name, sdp string
		want      string
	}{
		{"media", "v=0\r\n" + strings.Repeat("m=audio 1 RTP/AVP 0\r\n", MaxMedia+1), "1501 media sections exceed the limit of 1500"},
		{"media, bare LF", "v=0\n" + strings.Repeat("m=audio 1 RTP/AVP 0\n", 2000), "2000 media sections exceed the limit of 1500"},
		{"size", "v=0\r\ns=" + strings.Repeat("x", MaxSize), "65543 bytes exceed the limit of 65536"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.sdp))
			var le *LimitError
			if !errors.As(err, &le) || !errors.Is(err, ErrParse) || err.Error() != tc.want {
				t.Errorf("Parse: %v, want a LimitError %q", err, tc.want)
			}
		})
	}
	// 200 media, as the incumbent takes, each as a phone writes it.
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n")
	for i := range 200 {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n", 4000+2*i)
	}
	if d, err := Parse([]byte(b.String())); err != nil || len(d.Media) != 200 {
		t.Errorf("200 media: %v", err)
	}
}
