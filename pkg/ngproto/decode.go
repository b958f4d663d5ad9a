// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// ParseRequest types a decoded dictionary the way Kamailio's and OpenSIPS'
// rtpengine modules send it. Keys, flags and enumerated values are matched
// case-insensitively with space, hyphen and underscore alike. Unknown keys,
// flags and enumerated values are listed in Request.Ignored, never an error.
//
// A missing "command" key yields ErrNoCommand; a known key with a value of the
// wrong type yields an *InvalidValueError. On error the returned Request is
// still non-nil and holds what was decoded so far (useful to log the call-id).
// Unknown command names are not an error here: the dispatcher answers them.
func ParseRequest(dict map[string]any) (*Request, error) {
	p := &reqParser{req: &Request{}}
	type entry struct{ norm, raw string }
	keys := make([]entry, 0, len(dict))
	for k := range dict {
		keys = append(keys, entry{norm: normName(k), raw: k})
	}
	// Sorting makes duplicate spellings of one key resolve the same way on
	// every run, and puts the flag lists, which may refine keys, last.
	rank := func(n string) int {
		switch n {
		case "flags":
			return 1
		case "rtpp-flags":
			return 2
		}
		return 0
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if ra, rb := rank(a.norm), rank(b.norm); ra != rb {
			return ra < rb
		}
		if a.norm != b.norm {
			return a.norm < b.norm
		}
		return a.raw < b.raw
	})
	hasCommand := false
	for _, k := range keys {
		switch k.norm {
		case "command":
			hasCommand = hasCommand || dict[k.raw] != nil
		case "call-id":
			// Only for the log line of a request that fails.
			p.req.CallID, _ = dict[k.raw].(string)
		}
	}
	// The reference looks the command up before anything else.
	if !hasCommand {
		return p.req, ErrNoCommand
	}
	for _, k := range keys {
		if err := p.key(k.norm, k.raw, dict[k.raw]); err != nil {
			return p.req, err
		}
	}
	return p.req, nil
}

// Legitimate lists hold a handful of entries; the caps keep a hostile
// 64 KiB request from costing quadratic time or a huge log line.
const (
	maxListLen = 256
	maxIgnored = 32
)

type reqParser struct {
	req     *Request
	ignored int
}

func (p *reqParser) ignore(s string) {
	p.ignored++
	switch {
	case p.ignored <= maxIgnored:
		p.req.Ignored = append(p.req.Ignored, s)
	case p.ignored == maxIgnored+1:
		p.req.Ignored = append(p.req.Ignored, "...")
	}
}

func (p *reqParser) ignoreValue(key, value string) { p.ignore(key + "=" + value) }

// key applies one dictionary entry; nk is the normalised key, raw as sent.
func (p *reqParser) key(nk, raw string, v any) error {
	if v == nil {
		// JSON null: treat as absent.
		return nil
	}
	r := p.req
	var err error
	switch nk {
	case "command":
		var s string
		if s, err = str(raw, v); err == nil {
			r.Command = CanonicalCommand(s)
		}
	case "call-id":
		r.CallID, err = str(raw, v)
	case "from-tag":
		r.FromTag, err = str(raw, v)
	case "to-tag":
		r.ToTag, err = str(raw, v)
	case "via-branch":
		r.ViaBranch, err = str(raw, v)
	case "sdp":
		var s string
		if s, err = str(raw, v); err == nil {
			r.SDP, r.HasSDP = []byte(s), true
		}
	case "label", "from-label":
		r.Label, err = str(raw, v)
	case "to-label":
		r.ToLabel, err = str(raw, v)
	case "received-from":
		err = p.receivedFrom(raw, v)
	case "media-address":
		var s string
		if s, err = str(raw, v); err == nil && strings.TrimSpace(s) != "" {
			r.MediaAddress, err = parseAddr(raw, s)
		}
	case "address-family":
		var s string
		if s, err = str(raw, v); err == nil {
			switch strings.ToUpper(strings.TrimSpace(s)) {
			case "IP4":
				r.AddressFamily = "IP4"
			case "IP6":
				r.AddressFamily = "IP6"
			default:
				p.ignoreValue(raw, s)
			}
		}
	case "direction":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				if s = strings.TrimSpace(s); s != "" {
					r.Direction = append(r.Direction, s)
				}
			}
		}
	case "ice":
		err = p.ice(raw, v)
	case "dtls":
		var s string
		if s, err = str(raw, v); err == nil {
			switch normName(s) {
			case "off", "no", "disable", "disabled":
				r.DTLS = "off"
			case "passive":
				r.DTLS = "passive"
			case "active":
				r.DTLS = "active"
			default:
				p.ignoreValue(raw, s)
			}
		}
	case "sdes":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				p.sdes(s)
			}
		}
	case "rtcp-mux":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				if !p.rtcpMux(s) {
					p.ignoreValue(raw, s)
				}
			}
		}
	case "transport-protocol":
		var s string
		if s, err = str(raw, v); err == nil {
			if t, ok := canonTransport(s); ok {
				r.TransportProtocol = t
			} else {
				p.ignoreValue(raw, s)
			}
		}
	case "replace":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				if !p.replace(s) {
					p.ignoreValue(raw, s)
				}
			}
		}
	case "tos":
		var n int
		if n, err = integer(raw, v); err == nil {
			r.TOS = &n
		}
	case "delete-delay":
		var n int
		if n, err = integer(raw, v); err == nil {
			r.DeleteDelay = &n
		}
	case "limit":
		r.Limit, err = integer(raw, v)
	case "codec":
		err = p.codecDict(raw, v)
	case "endpoint-learning":
		var s string
		if s, err = str(raw, v); err == nil && !p.endpointLearning(s) {
			p.ignoreValue(raw, s)
		}
	case "supports":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				if s = strings.TrimSpace(s); s != "" {
					appendUnique(&r.Supports, s)
				}
			}
		}
	case "record-call":
		var s string
		if s, err = str(raw, v); err == nil {
			switch ls := strings.ToLower(strings.TrimSpace(s)); ls {
			case "yes", "no", "on", "off":
				r.RecordCall = ls
			default:
				p.ignoreValue(raw, s)
			}
		}
	case "all":
		// Key form used by block/silence media: "all" selects every party.
		var s string
		if s, err = str(raw, v); err == nil {
			switch normName(s) {
			case "all":
				r.Flags.All = true
			case "none":
			default:
				p.ignoreValue(raw, s)
			}
		}
	case "flags":
		var l []string
		if l, err = strList(raw, v); err == nil {
			for _, s := range l {
				p.flag(s)
			}
		}
	case "rtpp-flags":
		var s string
		if s, err = str(raw, v); err == nil {
			err = p.rtppFlags(raw, s)
		}
	case "sip-message-type", "sip-code":
		// Kamailio master sends these with every request; they only matter
		// to features relayd does not have, so they are not worth a log line.
	default:
		p.ignore(raw)
	}
	return err
}

func (p *reqParser) receivedFrom(raw string, v any) error {
	var family, addr string
	switch x := v.(type) {
	case []any:
		if len(x) != 2 {
			return &InvalidValueError{Key: raw, Err: fmt.Errorf("want [family, address], got %d elements", len(x))}
		}
		var err error
		if family, err = str(raw, x[0]); err != nil {
			return err
		}
		if addr, err = str(raw, x[1]); err != nil {
			return err
		}
	case []string:
		if len(x) != 2 {
			return &InvalidValueError{Key: raw, Err: fmt.Errorf("want [family, address], got %d elements", len(x))}
		}
		family, addr = x[0], x[1]
	default:
		// A bare address, as in the rtpp-flags token received-from=IP.
		var err error
		if addr, err = str(raw, v); err != nil {
			return err
		}
	}
	a, err := parseAddr(raw, addr)
	if err != nil {
		return err
	}
	if strings.EqualFold(strings.TrimSpace(family), "IP4") {
		// A dual-stack proxy may report an IPv4 peer in mapped form.
		a = a.Unmap()
	}
	p.req.ReceivedFrom = a
	return nil
}

func (p *reqParser) ice(raw string, v any) error {
	l, err := strList(raw, v)
	if err != nil {
		return err
	}
	for _, s := range l {
		switch normName(s) {
		case "remove":
			p.req.ICE = "remove"
		case "force":
			p.req.ICE = "force"
		case "default":
			p.req.ICE = "default"
		case "force-relay":
			p.req.ICE = "force-relay"
		case "optional":
			p.req.ICE = "optional"
		case "trickle":
			p.req.ICETrickle = true
		default:
			p.ignoreValue(raw, s)
		}
	}
	return nil
}

func (p *reqParser) sdes(s string) {
	if s = strings.TrimSpace(s); s == "" {
		return
	}
	// Suite names keep their case and underscores (AES_CM_128_HMAC_SHA1_80);
	// only the bare keywords are canonicalised.
	if n := normName(s); n == "off" || n == "no" || n == "disable" || n == "disabled" {
		s = "off"
	}
	appendUnique(&p.req.SDES, s)
}

func (p *reqParser) rtcpMux(s string) bool {
	switch n := normName(s); n {
	case "offer", "require", "demux", "accept", "reject":
		appendUnique(&p.req.RTCPMux, n)
		return true
	}
	return false
}

func (p *reqParser) replace(s string) bool {
	c, ok := canonReplace(s)
	if ok {
		appendUnique(&p.req.Replace, c)
	}
	return ok
}

func (p *reqParser) endpointLearning(s string) bool {
	switch n := normName(s); n {
	case "off", "immediate", "delayed", "heuristic":
		p.req.EndpointLearning = n
		return true
	}
	return false
}

// codecVerb returns the canonical codec manipulation verb.
func codecVerb(s string) (string, bool) {
	switch n := normName(s); n {
	case "strip", "offer", "transcode", "mask", "set", "except", "accept", "consume":
		return n, true
	}
	return "", false
}

func (p *reqParser) codecDict(raw string, v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return &InvalidValueError{Key: raw, Err: fmt.Errorf("want dictionary, got %s", typeName(v))}
	}
	verbs := make([]string, 0, len(m))
	for k := range m {
		verbs = append(verbs, k)
	}
	sort.Strings(verbs)
	for _, k := range verbs {
		if m[k] == nil {
			continue
		}
		l, err := strList(raw+"."+k, m[k])
		if err != nil {
			return err
		}
		verb, ok := codecVerb(k)
		if !ok {
			p.ignore(raw + "." + k)
			continue
		}
		for _, c := range l {
			p.codec(verb, c)
		}
	}
	return nil
}

func (p *reqParser) codec(verb, c string) {
	if c = strings.TrimSpace(c); c == "" {
		return
	}
	if p.req.Codec == nil {
		p.req.Codec = make(map[string][]string)
	}
	l := p.req.Codec[verb]
	appendUnique(&l, c)
	p.req.Codec[verb] = l
}

// flag applies one entry of the "flags" list.
func (p *reqParser) flag(orig string) {
	f := strings.TrimSpace(orig)
	if f == "" {
		return
	}
	fl := &p.req.Flags
	switch normName(f) {
	case "trust-address":
		fl.TrustAddress = true
	case "sip-source-address":
		fl.SIPSourceAddress = true
	case "asymmetric":
		fl.Asymmetric = true
	case "symmetric":
		fl.Symmetric = true
	case "strict-source":
		fl.StrictSource = true
	case "media-handover":
		fl.MediaHandover = true
	case "port-latching":
		fl.PortLatching = true
	case "no-port-latching":
		fl.NoPortLatching = true
	case "no-rtcp-attribute":
		fl.NoRTCPAttribute = true
	case "full-rtcp-attribute":
		fl.FullRTCPAttribute = true
	case "original-sendrecv":
		fl.OriginalSendrecv = true
	case "loop-protect":
		fl.LoopProtect = true
	case "record-call":
		fl.RecordCall = true
	case "generate-mid":
		fl.GenerateMid = true
	case "reset":
		fl.Reset = true
	case "fatal":
		fl.Fatal = true
	case "fast":
		fl.Fast = true
	case "to-tag":
		fl.ToTag = true
	case "discard-recording":
		fl.DiscardRecording = true
	case "unidirectional":
		fl.Unidirectional = true
	case "directional":
		fl.Directional = true
	case "all":
		fl.All = true
	case "trickle-ice":
		p.req.ICETrickle = true
	case "webrtc":
		p.webRTC()
	default:
		if !p.prefixedFlag(f) {
			p.ignoreValue("flags", f)
		}
	}
}

// prefixedFlag handles the "<key>-<value>" aliases the reference accepts in
// the flags list for values of other keys. It reports whether f was used.
func (p *reqParser) prefixedFlag(f string) bool {
	np := normPrefix(f) // same length as f, so f[len(prefix):] is the value as sent
	cut := func(prefix string) (string, bool) {
		if len(np) > len(prefix) && strings.HasPrefix(np, prefix) {
			return f[len(prefix):], true
		}
		return "", false
	}
	if v, ok := cut("replace-"); ok {
		return p.replace(v)
	}
	if v, ok := cut("rtcp-mux-"); ok {
		return p.rtcpMux(v)
	}
	if v, ok := cut("sdes-"); ok {
		p.sdes(v)
		return true
	}
	if v, ok := cut("endpoint-learning-"); ok {
		return p.endpointLearning(v)
	}
	for _, pv := range [...]struct{ prefix, verb string }{
		{"codec-strip-", "strip"},
		{"codec-offer-", "offer"},
		{"codec-transcode-", "transcode"},
		{"transcode-", "transcode"},
		{"codec-mask-", "mask"},
		{"codec-set-", "set"},
		{"codec-except-", "except"},
		{"codec-accept-", "accept"},
		{"codec-consume-", "consume"},
	} {
		if v, ok := cut(pv.prefix); ok {
			p.codec(pv.verb, unescapeFlagValue(v))
			return true
		}
	}
	return false
}

// unescapeFlagValue undoes the reference's escapes for values that cannot
// contain "=" or " " inside a flag string: "--" means "=", ".." means " ".
func unescapeFlagValue(s string) string {
	s = strings.ReplaceAll(s, "--", "=")
	return strings.ReplaceAll(s, "..", " ")
}

// webRTC expands the WebRTC shorthand without overriding explicit choices.
func (p *reqParser) webRTC() {
	r := p.req
	if r.TransportProtocol == "" {
		r.TransportProtocol = "UDP/TLS/RTP/SAVPF"
	}
	if r.ICE == "" {
		r.ICE = "force"
	}
	r.ICETrickle = true
	appendUnique(&r.RTCPMux, "offer")
	appendUnique(&r.RTCPMux, "require")
	r.Flags.NoRTCPAttribute = true
	appendUnique(&r.SDES, "off")
	r.Flags.GenerateMid = true
}

// rtppFlags parses the raw Kamailio flag string that Kamailio master sends as
// "rtpp-flags" (two-parameter rtpengine_offer and friends) with the module's
// own rules, so both parsing modes give the same Request.
func (p *reqParser) rtppFlags(raw, s string) error {
	r := p.req
	var srtp, avpf, dtls, bits bool
	tokens := strings.Fields(s)
	if len(tokens) > maxListLen {
		return &InvalidValueError{Key: raw, Err: fmt.Errorf("%d tokens, more than %d", len(tokens), maxListLen)}
	}
	for _, tok := range tokens {
		k, v, hasValue := strings.Cut(tok, "=")
		nk := normName(k)
		if !hasValue {
			if t, ok := canonTransport(k); ok && t != "accept" {
				r.TransportProtocol = t
				continue
			}
			switch nk {
			case "internal", "external":
				r.Direction = append(r.Direction, k)
			case "rtp", "avp":
				bits = true
			case "srtp":
				bits, srtp = true, true
			case "avpf":
				bits, avpf = true, true
			case "dtls":
				bits, dtls = true, true
			case "force-answer":
				if r.Command == "offer" {
					r.Command = "answer"
				}
			default:
				p.flag(tok)
			}
			continue
		}
		switch nk {
		case "from-tag":
			r.FromTag = v
			r.Flags.Directional = true
		case "via-branch", "rtpp-flags":
			// via-branch=1|2|auto... names a header the proxy must look up;
			// the word itself is meaningless here.
			p.ignore(tok)
		case "flags":
			p.flag(v)
		default:
			// Every other key=value passes through as a dictionary key with
			// a string value; integer keys accept numeric strings.
			if err := p.key(nk, k, v); err != nil {
				p.ignore(tok)
			}
		}
	}
	if bits {
		var t string
		switch {
		case dtls:
			t = "UDP/TLS/RTP/SAVP"
		case srtp:
			t = "RTP/SAVP"
		default:
			t = "RTP/AVP"
		}
		if avpf {
			t += "F"
		}
		r.TransportProtocol = t
	}
	return nil
}

// CanonicalCommand returns a command name in lower case with single spaces
// ("Start-Recording" and "start_recording" give "start recording").
func CanonicalCommand(s string) string {
	return strings.ReplaceAll(normName(s), "-", " ")
}

// KnownCommand tells whether a canonical command name is one the reference
// defines (whether or not relayd implements it). Statistics use it so that
// arbitrary names from the network cannot grow the per-command tables.
func KnownCommand(c string) bool {
	switch c {
	case "ping", "offer", "answer", "delete", "query", "list", "statistics",
		"start recording", "stop recording", "pause recording",
		"block dtmf", "unblock dtmf", "block media", "unblock media",
		"silence media", "unsilence media", "start forwarding", "stop forwarding",
		"play media", "stop media", "play dtmf", "publish",
		"subscribe request", "subscribe answer", "unsubscribe",
		"inject start", "inject stop", "connect", "create", "create answer",
		"mesh", "transform", "cli":
		return true
	}
	return false
}

func canonReplace(s string) (string, bool) {
	switch normName(s) {
	case "origin":
		return "origin", true
	case "origin-full", "full-origin":
		return "origin-full", true
	case "session-connection", "session-c-line":
		return "session-connection", true
	case "sdp-version", "sdp-ver":
		return "SDP-version", true
	case "force-increment-sdp-ver", "force-increment-sdp-version":
		return "force-increment-sdp-ver", true
	case "zero-address":
		return "zero-address", true
	case "username", "user-name":
		return "username", true
	case "session-name", "sess-name":
		return "session-name", true
	}
	return "", false
}

func canonTransport(s string) (string, bool) {
	switch u := strings.ToUpper(strings.TrimSpace(s)); u {
	case "RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF":
		return u, true
	case "ACCEPT":
		return "accept", true
	}
	return "", false
}

// normName canonicalises a key, flag or keyword: ASCII lower case, space,
// hyphen and underscore all become one hyphen, and leading and trailing
// separators go.
func normName(s string) string {
	b := make([]byte, 0, len(s))
	sep := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '-' || c == '_' || c == '\t':
			sep = len(b) > 0
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if sep {
			b = append(b, '-')
			sep = false
		}
		b = append(b, c)
	}
	return string(b)
}

// normPrefix is normName without collapsing or trimming, so that offsets in
// the result match offsets in s.
func normPrefix(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == ' ' || c == '_':
			b[i] = '-'
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func appendUnique(l *[]string, s string) {
	for _, x := range *l {
		if x == s {
			return
		}
	}
	*l = append(*l, s)
}

func parseAddr(key, s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &InvalidValueError{Key: key, Err: err}
	}
	return a, nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64, int:
		return "integer"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any, []string:
		return "list"
	case map[string]any:
		return "dictionary"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// str accepts a string, or an integer where a client sent a number for a
// textual key (a numeric tag, for instance).
func str(key string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), nil
		}
	}
	return "", &InvalidValueError{Key: key, Err: fmt.Errorf("want string, got %s", typeName(v))}
}

// strList accepts a list of strings, or a single string as a list of one.
func strList(key string, v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		if len(x) > maxListLen {
			return nil, &InvalidValueError{Key: key, Err: fmt.Errorf("%d entries, more than %d", len(x), maxListLen)}
		}
		out := make([]string, 0, len(x))
		for _, e := range x {
			if e == nil {
				continue
			}
			s, err := str(key, e)
			if err != nil {
				return nil, &InvalidValueError{Key: key, Err: fmt.Errorf("want list of strings, found %s", typeName(e))}
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		if len(x) > maxListLen {
			return nil, &InvalidValueError{Key: key, Err: fmt.Errorf("%d entries, more than %d", len(x), maxListLen)}
		}
		return x, nil
	case string:
		return []string{x}, nil
	}
	return nil, &InvalidValueError{Key: key, Err: fmt.Errorf("want list, got %s", typeName(v))}
}

// integer accepts an integer or a numeric string: the reference does too.
func integer(key string, v any) (int, error) {
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		return x, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<53 {
			return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %v", x)}
		}
		n = int64(x)
	case string:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %q", x)}
		}
	default:
		return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %s", typeName(v))}
	}
	if n != int64(int(n)) {
		return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("integer %d out of range", n)}
	}
	return int(n), nil
}
