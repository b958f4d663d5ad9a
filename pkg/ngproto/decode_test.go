// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	"github.com/relayd/relayd/pkg/session"
)

func intPtr(n int) *int { return &n }

// parseBencode decodes bencode text and parses it into a Request.
func parseBencode(t *testing.T, s string) (*Request, error) {
	t.Helper()
	m, f, err := Decode([]byte(s))
	if err != nil {
		t.Fatalf("Decode(%d bytes starting %.60q): %v", len(s), s, err)
	}
	if f != FormatBencode {
		t.Fatalf("format = %v, want bencode", f)
	}
	return ParseRequest(m)
}

func TestParseRequestKamailio(t *testing.T) {
	tests := []struct {
		name string
		in   dict
		want Request
	}{
		{
			name: "offer 1 (ICE=remove RTP/AVP rtcp-mux-demux)",
			in:   kamailioOffer1(),
			want: Request{
				Command: "offer",
				CallID:  "c81028bc8a@test",
				FromTag: "ff2e887",
				SDP:     []byte(testSDP),
				HasSDP:  true,
				Options: session.Options{
					Direction:         []string{"external", "internal"},
					ReceivedFrom:      netip.MustParseAddr("127.0.0.30"),
					ICE:               "remove",
					SDES:              []string{"off"},
					RTCPMux:           []string{"demux"},
					TransportProtocol: "RTP/AVP",
					Replace:           []string{"origin", "session-connection"},
					Supports:          []string{"load limit"},
					Flags:             session.Flags{TrustAddress: true, Symmetric: true},
				},
			},
		},
		{
			name: "offer 2 (WebRTC leg with codecs, label, record-call, via-branch)",
			in:   kamailioOffer2(),
			want: Request{
				Command:   "offer",
				CallID:    "526a03b39@test",
				FromTag:   "f5c0bd3",
				ViaBranch: "z9hG4bK2bc59b42",
				SDP:       []byte(testSDP),
				HasSDP:    true,
				Options: session.Options{
					Direction:         []string{"external", "internal"},
					ReceivedFrom:      netip.MustParseAddr("127.0.0.30"),
					ICE:               "force",
					DTLS:              "passive",
					SDES:              []string{"off"},
					RTCPMux:           []string{"offer"},
					TransportProtocol: "UDP/TLS/RTP/SAVPF",
					Replace:           []string{"origin", "session-connection"},
					Label:             "caller",
					Codec:             codecs.Options{Strip: specs("PCMU"), Transcode: specs("G722"), Mask: specs("opus")},
					Supports:          []string{"load limit"},
					RecordCall:        "yes",
					Flags:             session.Flags{TrustAddress: true, Symmetric: true},
				},
			},
		},
		{
			name: "answer",
			in:   kamailioAnswer(),
			want: Request{
				Command: "answer",
				CallID:  "c81028bc8a@test",
				FromTag: "ff2e887",
				ToTag:   "8a7e2b1",
				SDP:     []byte(testSDP),
				HasSDP:  true,
				Options: session.Options{
					ReceivedFrom:      netip.MustParseAddr("127.0.0.1"),
					ICE:               "remove",
					TransportProtocol: "RTP/AVP",
					Replace:           []string{"origin", "session-connection"},
					Supports:          []string{"load limit"},
					Flags:             session.Flags{TrustAddress: true, Symmetric: true},
				},
			},
		},
		{
			name: "delete",
			in:   kamailioDelete(),
			want: Request{
				Command: "delete",
				CallID:  "c81028bc8a@test",
				FromTag: "ff2e887",
				Options: session.Options{
					ReceivedFrom: netip.MustParseAddr("127.0.0.30"),
					Supports:     []string{"load limit"},
				},
			},
		},
		{
			name: "master adds sip-message-type quietly",
			in:   append(kamailioDelete(), kv{"sip-message-type", "sip_request"}),
			want: Request{
				Command: "delete",
				CallID:  "c81028bc8a@test",
				FromTag: "ff2e887",
				Options: session.Options{
					ReceivedFrom: netip.MustParseAddr("127.0.0.30"),
					Supports:     []string{"load limit"},
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBencode(t, benc(tc.in))
			if err != nil {
				t.Fatalf("ParseRequest error: %v", err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("ParseRequest\n got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

// TestParseRequestAliases checks each key spelling a proxy may use, one
// key at a time, against the field it must land in.
func TestParseRequestAliases(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value any
		check func(r *Request) bool
	}{
		{"call-id", "call-id", "x", func(r *Request) bool { return r.CallID == "x" }},
		{"call id", "call id", "x", func(r *Request) bool { return r.CallID == "x" }},
		{"call-ID", "call-ID", "x", func(r *Request) bool { return r.CallID == "x" }},
		{"call_id", "call_id", "x", func(r *Request) bool { return r.CallID == "x" }},
		{"Call-Id", "Call-Id", "x", func(r *Request) bool { return r.CallID == "x" }},
		{"numeric call-id", "call-id", 12345, func(r *Request) bool { return r.CallID == "12345" }},
		{"from tag", "from tag", "f", func(r *Request) bool { return r.FromTag == "f" }},
		{"to_tag", "to_tag", "t", func(r *Request) bool { return r.ToTag == "t" }},
		{"via branch", "via branch", "z9", func(r *Request) bool { return r.ViaBranch == "z9" }},
		{"empty sdp", "sdp", "", func(r *Request) bool { return r.HasSDP && len(r.SDP) == 0 }},
		{"SDP upper", "SDP", "v=0", func(r *Request) bool { return r.HasSDP && string(r.SDP) == "v=0" }},
		{"delete delay", "delete delay", 5, func(r *Request) bool { return r.DeleteDelay != nil && *r.DeleteDelay == 5 }},
		{"delete-delay", "delete-delay", 0, func(r *Request) bool { return r.DeleteDelay != nil && *r.DeleteDelay == 0 }},
		{"delete_delay string", "delete_delay", "30", func(r *Request) bool { return r.DeleteDelay != nil && *r.DeleteDelay == 30 }},
		{"TOS", "TOS", 184, func(r *Request) bool { return r.TOS != nil && *r.TOS == 184 }},
		{"tos string", "tos", " 46 ", func(r *Request) bool { return r.TOS != nil && *r.TOS == 46 }},
		{"TOS negative", "TOS", -1, func(r *Request) bool { return r.TOS != nil && *r.TOS == -1 }},
		{"received from", "received from", []string{"IP6", "2001:db8::1"},
			func(r *Request) bool { return r.ReceivedFrom == netip.MustParseAddr("2001:db8::1") }},
		{"received_from bracketed", "received_from", []string{"IP6", "[2001:db8::2]"},
			func(r *Request) bool { return r.ReceivedFrom == netip.MustParseAddr("2001:db8::2") }},
		{"received-from mapped IPv4", "received-from", []string{"IP4", "::ffff:192.0.2.7"},
			func(r *Request) bool { return r.ReceivedFrom == netip.MustParseAddr("192.0.2.7") }},
		{"received-from bare", "received-from", "192.0.2.8",
			func(r *Request) bool { return r.ReceivedFrom == netip.MustParseAddr("192.0.2.8") }},
		{"media address", "media address", "203.0.113.9",
			func(r *Request) bool { return r.MediaAddress == netip.MustParseAddr("203.0.113.9") }},
		{"media-address empty", "media-address", "", func(r *Request) bool { return !r.MediaAddress.IsValid() }},
		{"address family", "address family", "IP6", func(r *Request) bool { return r.AddressFamily == "IP6" }},
		{"address-family lower", "address-family", "ip4", func(r *Request) bool { return r.AddressFamily == "IP4" }},
		{"transport protocol", "transport protocol", "rtp/savpf", func(r *Request) bool { return r.TransportProtocol == "RTP/SAVPF" }},
		{"transport accept", "transport-protocol", "accept", func(r *Request) bool { return r.TransportProtocol == "accept" }},
		{"from-label", "from-label", "caller", func(r *Request) bool { return r.Label == "caller" }},
		{"label", "label", "caller", func(r *Request) bool { return r.Label == "caller" }},
		{"to-label", "to-label", "callee", func(r *Request) bool { return r.ToLabel == "callee" }},
		{"to label", "to label", "callee", func(r *Request) bool { return r.ToLabel == "callee" }},
		{"direction single string", "direction", "internal", func(r *Request) bool { return reflect.DeepEqual(r.Direction, []string{"internal"}) }},
		{"replace single string", "replace", "SDP version", func(r *Request) bool { return reflect.DeepEqual(r.Replace, []string{"SDP-version"}) }},
		{"replace spellings", "replace", []string{"Session Connection", "origin_full", "force-increment-SDP-ver", "zero address", "user-name", "session name", "sdp-version"},
			func(r *Request) bool {
				return reflect.DeepEqual(r.Replace, []string{"session-connection", "origin-full", "force-increment-sdp-ver", "zero-address", "username", "session-name", "SDP-version"})
			}},
		{"SDES single string", "SDES", "no-AES_CM_128_HMAC_SHA1_32",
			func(r *Request) bool { return reflect.DeepEqual(r.SDES, []string{"no-AES_CM_128_HMAC_SHA1_32"}) }},
		{"sdes lower key", "sdes", []string{"OFF"}, func(r *Request) bool { return reflect.DeepEqual(r.SDES, []string{"off"}) }},
		{"rtcp mux", "rtcp mux", []string{"Offer", "require"}, func(r *Request) bool { return reflect.DeepEqual(r.RTCPMux, []string{"offer", "require"}) }},
		{"rtcp-mux single", "rtcp-mux", "demux", func(r *Request) bool { return reflect.DeepEqual(r.RTCPMux, []string{"demux"}) }},
		{"supports single", "supports", "load limit", func(r *Request) bool { return reflect.DeepEqual(r.Supports, []string{"load limit"}) }},
		{"ICE list with trickle", "ICE", []string{"force", "trickle"}, func(r *Request) bool { return r.ICE == "force" && r.ICETrickle }},
		{"ice force relay", "ice", "force_relay", func(r *Request) bool { return r.ICE == "force-relay" }},
		{"ICE optional", "ICE", "optional", func(r *Request) bool { return r.ICE == "optional" }},
		{"ICE default", "ICE", "default", func(r *Request) bool { return r.ICE == "default" }},
		{"DTLS off aliases", "DTLS", "no", func(r *Request) bool { return r.DTLS == "off" }},
		{"DTLS disable", "dtls", "disable", func(r *Request) bool { return r.DTLS == "off" }},
		{"DTLS active", "DTLS", "active", func(r *Request) bool { return r.DTLS == "active" }},
		{"codec single strings", "codec", dict{{"strip", "all"}, {"offer", "PCMA"}, {"consume", []string{"CN"}}},
			func(r *Request) bool {
				return reflect.DeepEqual(r.Codec, codecs.Options{Strip: specs("all"), Offer: specs("PCMA"), Consume: specs("CN")})
			}},
		{"codec every verb", "codec", dict{{"set", []string{"opus/48000/2"}}, {"except", []string{"G722"}}, {"accept", []string{"PCMU"}}, {"Transcode", []string{"PCMA"}}},
			func(r *Request) bool {
				return reflect.DeepEqual(r.Codec, codecs.Options{Set: specs("opus/48000/2"), Except: specs("G722"), Accept: specs("PCMU"), Transcode: specs("PCMA")})
			}},
		{"endpoint learning", "endpoint learning", "Immediate", func(r *Request) bool { return r.EndpointLearning == "immediate" }},
		{"record call", "record call", "ON", func(r *Request) bool { return r.RecordCall == "on" }},
		{"limit", "limit", 10, func(r *Request) bool { return r.Limit == 10 }},
		{"limit string", "limit", "7", func(r *Request) bool { return r.Limit == 7 }},
		{"all key", "all", "all", func(r *Request) bool { return r.Flags.All }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBencode(t, benc(dict{{"command", "offer"}, {tc.key, tc.value}}))
			if err != nil {
				t.Fatalf("ParseRequest error: %v", err)
			}
			if !tc.check(got) {
				t.Errorf("key %q = %#v not applied: got %+v", tc.key, tc.value, *got)
			}
			if len(got.Ignored) != 0 {
				t.Errorf("Ignored = %q, want none", got.Ignored)
			}
		})
	}
}

func TestParseRequestFlags(t *testing.T) {
	all := []string{
		"trust-address", "SIP-source-address", "asymmetric", "symmetric", "strict-source",
		"media-handover", "port-latching", "no-port-latching", "no-rtcp-attribute",
		"full-rtcp-attribute", "original-sendrecv", "loop-protect", "record-call",
		"generate-mid", "reset", "fatal", "fast", "to-tag", "discard-recording",
		"unidirectional", "directional", "all",
	}
	got, err := parseBencode(t, benc(dict{{"command", "offer"}, {"flags", all}}))
	if err != nil {
		t.Fatal(err)
	}
	want := session.Flags{
		TrustAddress: true, SIPSourceAddress: true, Asymmetric: true, Symmetric: true,
		StrictSource: true, MediaHandover: true, PortLatching: true, NoPortLatching: true,
		NoRTCPAttribute: true, FullRTCPAttribute: true, OriginalSendrecv: true,
		LoopProtect: true, RecordCall: true, GenerateMid: true, Reset: true, Fatal: true,
		Fast: true, ToTag: true, DiscardRecording: true, Unidirectional: true,
		Directional: true, All: true,
	}
	if got.Flags != want {
		t.Errorf("Flags\n got %+v\nwant %+v", got.Flags, want)
	}
	if len(got.Ignored) != 0 {
		t.Errorf("Ignored = %q", got.Ignored)
	}

	tests := []struct {
		name  string
		flags []string
		check func(r *Request) bool
	}{
		{"space spellings", []string{"trust address", "SIP source address", "strict_source", "Media-Handover"},
			func(r *Request) bool {
				return r.Flags.TrustAddress && r.Flags.SIPSourceAddress && r.Flags.StrictSource && r.Flags.MediaHandover
			}},
		{"replace prefix", []string{"replace-origin", "replace-session-connection", "replace_SDP_version", "replace origin"},
			func(r *Request) bool {
				return reflect.DeepEqual(r.Replace, []string{"origin", "session-connection", "SDP-version"})
			}},
		{"rtcp-mux prefix", []string{"rtcp-mux-demux", "rtcp-mux-accept"},
			func(r *Request) bool { return reflect.DeepEqual(r.RTCPMux, []string{"demux", "accept"}) }},
		{"SDES prefix keeps suite case", []string{"SDES-off", "SDES-no-AES_256_CM_HMAC_SHA1_80", "SDES-only-AES_CM_128_HMAC_SHA1_80"},
			func(r *Request) bool {
				return reflect.DeepEqual(r.SDES, []string{"off", "no-AES_256_CM_HMAC_SHA1_80", "only-AES_CM_128_HMAC_SHA1_80"})
			}},
		{"codec prefixes", []string{"codec-strip-PCMU", "codec-offer-G722", "codec-transcode-opus", "transcode-PCMA",
			"codec-mask-all", "codec-set-opus/48000/2", "codec-except-telephone-event", "codec-accept-G729",
			"codec-consume-CN", "codec-strip-opus--useinbandfec..1"},
			func(r *Request) bool {
				return reflect.DeepEqual(r.Codec, codecs.Options{
					Strip: specs("PCMU", "opus=useinbandfec 1"), Offer: specs("G722"), Transcode: specs("opus", "PCMA"),
					Mask: specs("all"), Set: specs("opus/48000/2"), Except: specs("telephone-event"),
					Accept: specs("G729"), Consume: specs("CN"),
				})
			}},
		{"endpoint-learning prefix", []string{"endpoint-learning-delayed"},
			func(r *Request) bool { return r.EndpointLearning == "delayed" }},
		{"trickle-ICE", []string{"trickle ICE"}, func(r *Request) bool { return r.ICETrickle }},
		{"WebRTC", []string{"WebRTC"}, func(r *Request) bool {
			return r.TransportProtocol == "UDP/TLS/RTP/SAVPF" && r.ICE == "force" && r.ICETrickle &&
				reflect.DeepEqual(r.RTCPMux, []string{"offer", "require"}) && r.Flags.NoRTCPAttribute &&
				reflect.DeepEqual(r.SDES, []string{"off"}) && r.Flags.GenerateMid
		}},
		{"single string flags", []string{}, func(r *Request) bool { return true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBencode(t, benc(dict{{"command", "offer"}, {"flags", tc.flags}}))
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(got) {
				t.Errorf("flags %q not applied: got %+v", tc.flags, *got)
			}
			if len(got.Ignored) != 0 {
				t.Errorf("Ignored = %q", got.Ignored)
			}
		})
	}

	// A single string is a list of one.
	got, err = parseBencode(t, benc(dict{{"command", "delete"}, {"flags", "fatal"}}))
	if err != nil || !got.Flags.Fatal {
		t.Errorf(`flags "fatal" as a string: Fatal = %v, err = %v`, got.Flags.Fatal, err)
	}
}

func TestParseRequestWebRTCKeepsExplicitKeys(t *testing.T) {
	got, err := parseBencode(t, benc(dict{
		{"command", "offer"}, {"ICE", "optional"}, {"transport-protocol", "UDP/TLS/RTP/SAVP"}, {"flags", []string{"WebRTC"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got.ICE != "optional" || got.TransportProtocol != "UDP/TLS/RTP/SAVP" {
		t.Errorf("WebRTC overrode explicit keys: ICE %q, transport %q", got.ICE, got.TransportProtocol)
	}
}

func TestParseRequestCommands(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ping", "ping"},
		{"Offer", "offer"},
		{"start recording", "start recording"},
		{"start-recording", "start recording"},
		{"Start_Recording", "start recording"},
		{"block DTMF", "block dtmf"},
		{"  silence   media ", "silence media"},
		{"frobnicate", "frobnicate"},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := parseBencode(t, benc(dict{{"command", tc.in}}))
		if err != nil {
			t.Errorf("command %q: error %v", tc.in, err)
			continue
		}
		if got.Command != tc.want {
			t.Errorf("command %q = %q, want %q", tc.in, got.Command, tc.want)
		}
	}
	if !KnownCommand("block dtmf") || KnownCommand("frobnicate") {
		t.Error("KnownCommand disagrees with the catalogue")
	}
}

func TestParseRequestIgnored(t *testing.T) {
	got, err := parseBencode(t, benc(dict{
		{"command", "offer"},
		{"frobnicate", "yes"},
		{"ICE", []string{"force", "lite-forward"}},
		{"DTLS", "sideways"},
		{"replace", []string{"origin", "everything"}},
		{"rtcp-mux", []string{"whatever"}},
		{"transport-protocol", "TCP/MSRP"},
		{"address-family", "IPX"},
		{"endpoint-learning", "never"},
		{"record-call", "maybe"},
		{"codec", dict{{"frob", []string{"PCMU"}}, {"strip", []string{"G729"}}}},
		{"flags", []string{"trust-address", "no-such-flag", "codec-strip-opus/fast", "replace-nothing"}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Keys in normalised order, then the flags in the order sent.
	want := []string{
		"address-family=IPX",
		"codec.frob",
		"DTLS=sideways",
		"endpoint-learning=never",
		"frobnicate",
		"ICE=lite-forward",
		"record-call=maybe",
		"replace=everything",
		"rtcp-mux=whatever",
		"transport-protocol=TCP/MSRP",
		"flags=no-such-flag",
		"codec-strip=opus/fast",
		"flags=replace-nothing",
	}
	if !reflect.DeepEqual(got.Ignored, want) {
		t.Errorf("Ignored\n got %q\nwant %q", got.Ignored, want)
	}
	if got.ICE != "force" || !got.Flags.TrustAddress || !reflect.DeepEqual(got.Codec.Strip, specs("G729")) {
		t.Errorf("known values lost next to unknown ones: %+v", *got)
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct {
		name       string
		in         dict
		wantErr    error
		wantReason string
	}{
		{"no command", dict{{"call-id", "x"}}, ErrNoCommand, ReasonNoCommand},
		{"empty dict", dict{}, ErrNoCommand, ReasonNoCommand},
		{"no command beats bad value", dict{{"TOS", "abc"}}, ErrNoCommand, ReasonNoCommand},
		{"command is a list", dict{{"command", []string{"ping"}}}, ErrInvalidValue, `invalid value for key "command"`},
		{"TOS not a number", dict{{"command", "offer"}, {"TOS", "abc"}}, ErrInvalidValue, `invalid value for key "TOS"`},
		{"TOS a list", dict{{"command", "offer"}, {"TOS", []string{"1"}}}, ErrInvalidValue, `invalid value for key "TOS"`},
		{"delete delay a dict", dict{{"command", "delete"}, {"delete delay", dict{}}}, ErrInvalidValue, `invalid value for key "delete delay"`},
		{"call-id a dict", dict{{"command", "offer"}, {"call-id", dict{}}}, ErrInvalidValue, `invalid value for key "call-id"`},
		{"flags a dict", dict{{"command", "offer"}, {"flags", dict{}}}, ErrInvalidValue, `invalid value for key "flags"`},
		{"flags with a list inside", dict{{"command", "offer"}, {"flags", []any{[]any{}}}}, ErrInvalidValue, `invalid value for key "flags"`},
		{"codec a list", dict{{"command", "offer"}, {"codec", []string{"strip"}}}, ErrInvalidValue, `invalid value for key "codec"`},
		{"codec verb a dict", dict{{"command", "offer"}, {"codec", dict{{"strip", dict{}}}}}, ErrInvalidValue, `invalid value for key "codec.strip"`},
		{"received-from one element", dict{{"command", "offer"}, {"received-from", []string{"IP4"}}}, ErrInvalidValue, `invalid value for key "received-from"`},
		{"received-from bad address", dict{{"command", "offer"}, {"received-from", []string{"IP4", "nowhere"}}}, ErrInvalidValue, `invalid value for key "received-from"`},
		{"media-address bad", dict{{"command", "offer"}, {"media-address", "1.2.3"}}, ErrInvalidValue, `invalid value for key "media-address"`},
		{"limit overflow", dict{{"command", "list"}, {"limit", "99999999999999999999"}}, ErrInvalidValue, `invalid value for key "limit"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBencode(t, benc(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if r := Reason(err); r != tc.wantReason {
				t.Errorf("Reason = %q, want %q", r, tc.wantReason)
			}
			if got == nil {
				t.Fatal("ParseRequest returned a nil Request with its error")
			}
			if tc.name == "no command" && got.CallID != "x" {
				t.Errorf("call-id for the log = %q, want %q", got.CallID, "x")
			}
		})
	}
}

func TestParseRequestJSON(t *testing.T) {
	m, f, err := Decode([]byte(`{"command":"offer","call-id":"j1","TOS":184.0,"delete delay":null,` +
		`"flags":["trust-address"],"received-from":["IP4","192.0.2.1"],"replace":["origin"]}`))
	if err != nil || f != FormatJSON {
		t.Fatalf("Decode: %v, %v", f, err)
	}
	got, err := ParseRequest(m)
	if err != nil {
		t.Fatal(err)
	}
	if got.CallID != "j1" || got.TOS == nil || *got.TOS != 184 || got.DeleteDelay != nil ||
		!got.Flags.TrustAddress || got.ReceivedFrom != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("JSON request parsed as %+v", *got)
	}
	// Fractional and boolean values for integer and string keys are errors.
	for _, body := range []string{`{"command":"offer","TOS":1.5}`, `{"command":"offer","call-id":true}`} {
		m, _, err := Decode([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRequest(m); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s: error = %v, want ErrInvalidValue", body, err)
		}
	}
}

func TestParseRequestRTPPFlags(t *testing.T) {
	// The flag strings of the two captured offers, sent raw the way Kamailio
	// master's two-parameter functions do, must give the same options as the
	// pre-parsed dictionaries.
	tests := []struct {
		name  string
		flags string
		want  session.Options
	}{
		{
			name:  "offer 1",
			flags: "replace-origin replace-session-connection ICE=remove RTP/AVP direction=external direction=internal trust-address symmetric rtcp-mux-demux SDES-off",
			want: session.Options{
				Direction: []string{"external", "internal"}, ICE: "remove", SDES: []string{"off"},
				RTCPMux: []string{"demux"}, TransportProtocol: "RTP/AVP",
				Replace: []string{"origin", "session-connection"},
				Flags:   session.Flags{TrustAddress: true, Symmetric: true},
			},
		},
		{
			name: "offer 2",
			flags: "ICE=force DTLS=passive SDES-off UDP/TLS/RTP/SAVPF rtcp-mux-offer direction=external direction=internal " +
				"trust-address symmetric codec-strip-PCMU codec-transcode-G722 codec-mask-opus label=caller record-call=yes via-branch=1",
			want: session.Options{
				Direction: []string{"external", "internal"}, ICE: "force", DTLS: "passive", SDES: []string{"off"},
				RTCPMux: []string{"offer"}, TransportProtocol: "UDP/TLS/RTP/SAVPF", Label: "caller",
				Codec:      codecs.Options{Strip: specs("PCMU"), Transcode: specs("G722"), Mask: specs("opus")},
				RecordCall: "yes",
				Flags:      session.Flags{TrustAddress: true, Symmetric: true},
			},
		},
		{
			name:  "keys with values and transport bits",
			flags: "internal external TOS=184 delete-delay=10 received-from=192.0.2.5 replace=origin SDES=no-AES_CM_128_HMAC_SHA1_32 DTLS AVPF",
			want: session.Options{
				Direction: []string{"internal", "external"}, TOS: intPtr(184), DeleteDelay: intPtr(10),
				ReceivedFrom: netip.MustParseAddr("192.0.2.5"), Replace: []string{"origin"},
				SDES: []string{"no-AES_CM_128_HMAC_SHA1_32"}, TransportProtocol: "UDP/TLS/RTP/SAVPF",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBencode(t, benc(dict{{"command", "offer"}, {"rtpp-flags", tc.flags}}))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Options, tc.want) {
				t.Errorf("Options\n got %+v\nwant %+v", got.Options, tc.want)
			}
		})
	}

	got, err := parseBencode(t, benc(dict{{"command", "offer"}, {"rtpp-flags", "force-answer from-tag=abc to-tag=def call-id=xyz TOS=lots"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Command != "answer" || got.FromTag != "abc" || !got.Flags.Directional || got.ToTag != "def" || got.CallID != "xyz" {
		t.Errorf("rtpp-flags overrides not applied: %+v", *got)
	}
	if !reflect.DeepEqual(got.Ignored, []string{"TOS=lots"}) {
		t.Errorf("Ignored = %q, want the unusable TOS token", got.Ignored)
	}
}

func TestParseRequestHostileSizes(t *testing.T) {
	many := func(prefix string, n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return l
	}
	tests := []struct {
		name    string
		in      dict
		wantErr string
	}{
		{"long SDES list", dict{{"command", "offer"}, {"SDES", many("s", 5000)}}, `invalid value for key "SDES"`},
		{"long flags list", dict{{"command", "offer"}, {"flags", many("codec-strip-", 3000)}}, `invalid value for key "flags"`},
		{"long rtpp-flags", dict{{"command", "offer"}, {"rtpp-flags", strings.Join(many("SDES-x", 5000), " ")}}, `invalid value for key "rtpp-flags"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := parseBencode(t, benc(tc.in))
			if got := Reason(err); got != tc.wantErr {
				t.Errorf("Reason = %q, want %q", got, tc.wantErr)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}

	// Many unknown keys: all accepted, the Ignored list stays short.
	d := dict{{"command", "offer"}}
	for _, k := range many("unknown-", 200) {
		d = append(d, kv{k, "x"})
	}
	got, err := parseBencode(t, benc(d))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Ignored) != maxIgnored+1 || got.Ignored[maxIgnored] != "..." {
		t.Errorf("Ignored has %d entries ending %q, want %d ending \"...\"", len(got.Ignored), got.Ignored[len(got.Ignored)-1], maxIgnored+1)
	}
}

// TestNormName checks the canonical spellings and that the spellings SIP
// proxies send cost no allocation.
func TestNormName(t *testing.T) {
	tests := map[string]string{
		"ICE": "ice", "call id": "call-id", "Call_ID": "call-id", " -delete  delay- ": "delete-delay",
		"trust-address": "trust-address", "Start Recording": "start-recording", "x--y": "x-y", "": "",
	}
	for in, want := range tests {
		if got := normName(in); got != want {
			t.Errorf("normName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{"ICE", "SDES", "TOS", "call id", "delete delay", "trust-address", "Start Recording"} {
		if n := testing.AllocsPerRun(10, func() { normName(in) }); n != 0 {
			t.Errorf("normName(%q) allocates %v times", in, n)
		}
	}
	if !KnownCommand("start recording") || KnownCommand("start-recording") || canonicalCommand("Start_Recording") != "start recording" {
		t.Error("command names are not canonicalised")
	}
}

// specs parses codec option values, as the decoder does.
func specs(list ...string) []codecs.Spec {
	var out []codecs.Spec
	for _, s := range list {
		sp, err := codecs.ParseSpec(s)
		if err != nil {
			panic(err)
		}
		out = append(out, sp)
	}
	return out
}
