// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"fmt"
	"strings"
)

// kv and dict build bencode dictionaries in a chosen key order, so tests can
// reproduce captured requests byte for byte (Kamailio does not sort keys).
type kv struct {
	k string
	v any
}

type dict []kv

// benc renders v as bencode: string, int, []string, []any and dict.
func benc(v any) string {
	var b strings.Builder
	bencTo(&b, v)
	return b.String()
}

func bencTo(b *strings.Builder, v any) {
	switch x := v.(type) {
	case string:
		fmt.Fprintf(b, "%d:%s", len(x), x)
	case int:
		fmt.Fprintf(b, "i%de", x)
	case []string:
		b.WriteByte('l')
		for _, s := range x {
			bencTo(b, s)
		}
		b.WriteByte('e')
	case []any:
		b.WriteByte('l')
		for _, e := range x {
			bencTo(b, e)
		}
		b.WriteByte('e')
	case dict:
		b.WriteByte('d')
		for _, e := range x {
			bencTo(b, e.k)
			bencTo(b, e.v)
		}
		b.WriteByte('e')
	default:
		panic(fmt.Sprintf("benc: unsupported %T", v))
	}
}

const testSDP = "v=0\r\no=- 1000 1 IN IP4 127.0.0.30\r\ns=-\r\nc=IN IP4 127.0.0.30\r\nt=0 0\r\n" +
	"m=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"

// kamailioOffer1 is the first offer captured from Kamailio 5.6.3 (reference
// §1.7), in the order it was sent: flag string "replace-origin
// replace-session-connection ICE=remove RTP/AVP direction=external
// direction=internal trust-address symmetric rtcp-mux-demux SDES-off".
func kamailioOffer1() dict {
	return dict{
		{"supports", []string{"load limit"}},
		{"sdp", testSDP},
		{"ICE", "remove"},
		{"direction", []string{"external", "internal"}},
		{"flags", []string{"trust-address", "symmetric"}},
		{"replace", []string{"origin", "session-connection"}},
		{"transport-protocol", "RTP/AVP"},
		{"rtcp-mux", []string{"demux"}},
		{"SDES", []string{"off"}},
		{"call-id", "c81028bc8a@test"},
		{"received-from", []string{"IP4", "127.0.0.30"}},
		{"from-tag", "ff2e887"},
		{"command", "offer"},
	}
}

// kamailioOffer2 is the second captured offer: "... ICE=force DTLS=passive
// SDES-off UDP/TLS/RTP/SAVPF rtcp-mux-offer direction=external
// direction=internal trust-address symmetric codec-strip-PCMU
// codec-transcode-G722 codec-mask-opus label=caller record-call=yes
// via-branch=1".
func kamailioOffer2() dict {
	return dict{
		{"supports", []string{"load limit"}},
		{"sdp", testSDP},
		{"ICE", "force"},
		{"DTLS", "passive"},
		{"label", "caller"},
		{"record-call", "yes"},
		{"direction", []string{"external", "internal"}},
		{"flags", []string{"trust-address", "symmetric"}},
		{"replace", []string{"origin", "session-connection"}},
		{"codec", dict{
			{"strip", []string{"PCMU"}},
			{"transcode", []string{"G722"}},
			{"mask", []string{"opus"}},
		}},
		{"transport-protocol", "UDP/TLS/RTP/SAVPF"},
		{"rtcp-mux", []string{"offer"}},
		{"SDES", []string{"off"}},
		{"call-id", "526a03b39@test"},
		{"via-branch", "z9hG4bK2bc59b42"},
		{"received-from", []string{"IP4", "127.0.0.30"}},
		{"from-tag", "f5c0bd3"},
		{"command", "offer"},
	}
}

// kamailioAnswer and kamailioDelete follow the shapes captured in §1.7.
func kamailioAnswer() dict {
	return dict{
		{"supports", []string{"load limit"}},
		{"sdp", testSDP},
		{"ICE", "remove"},
		{"flags", []string{"trust-address", "symmetric"}},
		{"replace", []string{"origin", "session-connection"}},
		{"transport-protocol", "RTP/AVP"},
		{"call-id", "c81028bc8a@test"},
		{"received-from", []string{"IP4", "127.0.0.1"}},
		{"from-tag", "ff2e887"},
		{"to-tag", "8a7e2b1"},
		{"command", "answer"},
	}
}

func kamailioDelete() dict {
	return dict{
		{"supports", []string{"load limit"}},
		{"call-id", "c81028bc8a@test"},
		{"received-from", []string{"IP4", "127.0.0.30"}},
		{"from-tag", "ff2e887"},
		{"command", "delete"},
	}
}
