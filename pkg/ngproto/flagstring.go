// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"net/netip"
	"strconv"
	"strings"
)

// FlagString turns a Kamailio rtpengine module flag string (the argument of
// rtpengine_offer/answer/manage) into the dictionary keys the module sends,
// following its parse_flags rules: list-valued prefixes (replace-, rtcp-mux-,
// SDES-, codec-*), transport tokens, direction, numeric keys, key=value
// pass-through and bare flags.
func FlagString(s string) map[string]any {
	d := map[string]any{}
	appendTo := func(key, v string) {
		list, _ := d[key].([]any)
		d[key] = append(list, v)
	}
	codec := func(verb, v string) {
		c, _ := d["codec"].(map[string]any)
		if c == nil {
			c = map[string]any{}
			d["codec"] = c
		}
		list, _ := c[verb].([]any)
		c[verb] = append(list, v)
	}
	var transport struct{ rtp, avp, srtp, avpf, dtls bool }
	transportSeen := false
	for _, tok := range strings.Fields(s) {
		key, val, hasVal := strings.Cut(tok, "=")
		switch {
		case key == "replace" && hasVal:
			appendTo("replace", val)
		case strings.HasPrefix(tok, "replace-"):
			appendTo("replace", strings.TrimPrefix(tok, "replace-"))
		case key == "received-from" && hasVal:
			fam := "IP4"
			if a, err := netip.ParseAddr(val); err == nil && a.Is6() {
				fam = "IP6"
			}
			d["received-from"] = []any{fam, val}
		case key == "SDES" && hasVal:
			appendTo("SDES", val)
		case strings.HasPrefix(tok, "SDES-"):
			appendTo("SDES", strings.TrimPrefix(tok, "SDES-"))
		case strings.HasPrefix(tok, "T38-"), strings.HasPrefix(tok, "T.38-"):
			appendTo("T.38", tok[strings.Index(tok, "-")+1:])
		case strings.HasPrefix(tok, "rtcp-mux-"):
			appendTo("rtcp-mux", strings.TrimPrefix(tok, "rtcp-mux-"))
		case strings.HasPrefix(tok, "transcode-"):
			codec("transcode", strings.TrimPrefix(tok, "transcode-"))
		case strings.HasPrefix(tok, "codec-"):
			rest := strings.TrimPrefix(tok, "codec-")
			if verb, v, ok := strings.Cut(rest, "-"); ok {
				codec(verb, v)
			} else {
				appendTo("flags", tok)
			}
		case tok == "RTP/AVP" || tok == "RTP/AVPF" || tok == "RTP/SAVP" || tok == "RTP/SAVPF" ||
			tok == "UDP/TLS/RTP/SAVP" || tok == "UDP/TLS/RTP/SAVPF":
			d["transport-protocol"] = tok
		case tok == "RTP" || tok == "AVP" || tok == "SRTP" || tok == "AVPF" || tok == "DTLS":
			transportSeen = true
			switch tok {
			case "RTP":
				transport.rtp = true
			case "AVP":
				transport.avp = true
			case "SRTP":
				transport.srtp = true
			case "AVPF":
				transport.avpf = true
			case "DTLS":
				transport.dtls = true
			}
		case tok == "internal" || tok == "external":
			appendTo("direction", tok)
		case key == "direction" && hasVal:
			appendTo("direction", val)
		case key == "TOS" && hasVal, key == "delete-delay" && hasVal, key == "repacketize" && hasVal:
			name := key
			if key == "delete-delay" {
				name = "delete delay"
			}
			if n, err := strconv.Atoi(val); err == nil {
				d[name] = n
			}
		case key == "to-tag" || key == "from-tag" || key == "call-id":
			if hasVal {
				d[key] = val
			}
		case key == "from-tags" && hasVal:
			appendTo("from-tags", val)
		case hasVal:
			d[key] = val
		default:
			appendTo("flags", tok)
		}
	}
	if transportSeen {
		name := "RTP/"
		switch {
		case transport.dtls:
			name = "UDP/TLS/RTP/"
		}
		if transport.srtp || transport.dtls {
			name += "S"
		}
		name += "AVP"
		if transport.avpf {
			name += "F"
		}
		d["transport-protocol"] = name
	}
	return d
}
