// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/relayd/relayd/pkg/codecs"
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
//
// The server decodes straight into a Value and parses that; ParseRequest is
// the same parser for a generic dictionary (see ValueOf for its types).
func ParseRequest(dict map[string]any) (*Request, error) {
	fields := make([]Field, 0, len(dict))
	for k, x := range dict {
		v, err := ValueOf(x)
		if err != nil {
			return &Request{}, &InvalidValueError{Key: k, Err: err}
		}
		fields = append(fields, F(k, v))
	}
	return parseRequest(Dict(fields...))
}

// keyEntry is one dictionary key with its normalised spelling.
type keyEntry struct {
	norm string
	f    *Field
}

// maxKeysOnStack covers every request a SIP proxy sends without a heap
// allocation for the key table.
const maxKeysOnStack = 32

// parseRequest is ParseRequest for a decoded dictionary Value (fields
// sorted by key, keys unique).
func parseRequest(dict Value) (*Request, error) {
	p := &reqParser{req: &Request{}}
	var buf [maxKeysOnStack]keyEntry
	keys := buf[:0]
	for i := range dict.items {
		f := &dict.items[i]
		keys = append(keys, keyEntry{norm: normName(f.Key), f: f})
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
	slices.SortFunc(keys, func(a, b keyEntry) int {
		if ra, rb := rank(a.norm), rank(b.norm); ra != rb {
			return ra - rb
		}
		if c := strings.Compare(a.norm, b.norm); c != 0 {
			return c
		}
		return strings.Compare(a.f.Key, b.f.Key)
	})
	hasCommand := false
	for _, k := range keys {
		switch k.norm {
		case "command":
			hasCommand = hasCommand || !k.f.Value.IsNull()
		case "call-id":
			// Only for the log line of a request that fails.
			if v := k.f.Value; v.kind == KindString {
				p.req.CallID = strings.Clone(v.str)
			}
		}
	}
	// The reference looks the command up before anything else.
	if !hasCommand {
		return p.req, ErrNoCommand
	}
	for _, k := range keys {
		if err := p.key(k.norm, k.f.Key, k.f.Value); err != nil {
			return p.req, err
		}
	}
	return p.req, nil
}

// Legitimate lists hold a handful of entries; the caps keep a hostile
// 64 KiB request from costing quadratic time or a huge log line.
const (
	maxListLen    = 256
	maxIgnored    = 32
	maxIgnoredLen = 64 // bytes of one ignored entry kept
)

// The decoded dictionary shares one string with the datagram (see
// decodeBencode); every free-form string the parser keeps in the Request is
// cloned, so that a call-id the session layer holds for hours does not
// hold the whole request in memory. Enumerated values are stored as
// constants.

type reqParser struct {
	req     *Request
	ignored int
}

func (p *reqParser) ignore(s string) {
	p.ignored++
	switch {
	case p.ignored <= maxIgnored:
		if len(s) > maxIgnoredLen {
			// The list goes into the reply's warning: a long name must
			// not crowd the reply out of its datagram.
			s = strings.ToValidUTF8(s[:maxIgnoredLen], "") + "..."
		}
		p.req.Ignored = append(p.req.Ignored, strings.Clone(s))
	case p.ignored == maxIgnored+1:
		p.req.Ignored = append(p.req.Ignored, "...")
	}
}

func (p *reqParser) ignoreValue(key, value string) { p.ignore(key + "=" + value) }

// key applies one dictionary entry; nk is the normalised key, raw as sent.
func (p *reqParser) key(nk, raw string, v Value) error {
	if v.IsNull() {
		// JSON null: treat as absent.
		return nil
	}
	r := p.req
	var err error
	switch nk {
	case "command":
		var s string
		if s, err = str(raw, v); err == nil {
			r.Command = canonicalCommand(s)
		}
	case "call-id":
		var s string
		// The key scan in parseRequest has kept a copy already.
		if s, err = str(raw, v); err == nil && s != r.CallID {
			r.CallID = strings.Clone(s)
		}
	case "from-tag":
		r.FromTag, err = ownStr(raw, v)
	case "to-tag":
		r.ToTag, err = ownStr(raw, v)
	case "via-branch":
		r.ViaBranch, err = ownStr(raw, v)
	case "sdp":
		var s string
		if s, err = str(raw, v); err == nil {
			r.SDP, r.HasSDP = []byte(s), true
		}
	case "label", "from-label":
		r.Label, err = ownStr(raw, v)
	case "to-label":
		r.ToLabel, err = ownStr(raw, v)
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
		err = eachStr(raw, v, func(s string) {
			if s = strings.TrimSpace(s); s != "" {
				r.Direction = append(r.Direction, strings.Clone(s))
			}
		})
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
		err = eachStr(raw, v, p.sdes)
	case "rtcp-mux":
		err = eachStr(raw, v, func(s string) {
			if !p.rtcpMux(s) {
				p.ignoreValue(raw, s)
			}
		})
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
		err = eachStr(raw, v, func(s string) {
			if !p.replace(s) {
				p.ignoreValue(raw, s)
			}
		})
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
	case "ptime":
		var n int
		if n, err = integer(raw, v); err == nil {
			if n > 0 && n <= 1000 {
				r.Codec.PTime = n
			} else {
				p.ignoreValue(raw, strconv.Itoa(n))
			}
		}
	case "codec":
		err = p.codecDict(raw, v)
	case "endpoint-learning":
		var s string
		if s, err = str(raw, v); err == nil && !p.endpointLearning(s) {
			p.ignoreValue(raw, s)
		}
	case "supports":
		err = eachStr(raw, v, func(s string) {
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(r.Supports, s) {
				r.Supports = append(r.Supports, strings.Clone(s))
			}
		})
	case "record-call":
		var s string
		if s, err = str(raw, v); err == nil {
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "yes":
				r.RecordCall = "yes"
			case "no":
				r.RecordCall = "no"
			case "on":
				r.RecordCall = "on"
			case "off":
				r.RecordCall = "off"
			default:
				p.ignoreValue(raw, s)
			}
		}
	case "metadata":
		r.Metadata, err = ownStr(raw, v)
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
		err = eachStr(raw, v, p.flag)
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

func (p *reqParser) receivedFrom(raw string, v Value) error {
	var family, addr string
	if v.kind == KindList {
		if len(v.items) != 2 {
			return &InvalidValueError{Key: raw, Err: fmt.Errorf("want [family, address], got %d elements", len(v.items))}
		}
		var err error
		if family, err = str(raw, v.items[0].Value); err != nil {
			return err
		}
		if addr, err = str(raw, v.items[1].Value); err != nil {
			return err
		}
	} else {
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

func (p *reqParser) ice(raw string, v Value) error {
	return eachStr(raw, v, func(s string) {
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
	})
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
	if !slices.Contains(p.req.SDES, s) {
		p.req.SDES = append(p.req.SDES, strings.Clone(s))
	}
}

func (p *reqParser) rtcpMux(s string) bool {
	var c string
	switch normName(s) {
	case "offer":
		c = "offer"
	case "require":
		c = "require"
	case "demux":
		c = "demux"
	case "accept":
		c = "accept"
	case "reject":
		c = "reject"
	default:
		return false
	}
	appendUnique(&p.req.RTCPMux, c)
	return true
}

func (p *reqParser) replace(s string) bool {
	c, ok := canonReplace(s)
	if ok {
		appendUnique(&p.req.Replace, c)
	}
	return ok
}

func (p *reqParser) endpointLearning(s string) bool {
	switch normName(s) {
	case "off":
		p.req.EndpointLearning = "off"
	case "immediate":
		p.req.EndpointLearning = "immediate"
	case "delayed":
		p.req.EndpointLearning = "delayed"
	case "heuristic":
		p.req.EndpointLearning = "heuristic"
	default:
		return false
	}
	return true
}

// codecVerb returns the canonical codec manipulation verb.
func codecVerb(s string) (string, bool) {
	switch normName(s) {
	case "strip":
		return "strip", true
	case "offer":
		return "offer", true
	case "transcode":
		return "transcode", true
	case "mask":
		return "mask", true
	case "set":
		return "set", true
	case "except":
		return "except", true
	case "accept":
		return "accept", true
	case "consume":
		return "consume", true
	case "ignore":
		return "ignore", true
	}
	return "", false
}

func (p *reqParser) codecDict(raw string, v Value) error {
	if v.kind != KindDict {
		return &InvalidValueError{Key: raw, Err: fmt.Errorf("want dictionary, got %s", typeName(v))}
	}
	// The fields are sorted by key, so verbs apply in the same order on
	// every run.
	for _, f := range v.items {
		if f.Value.IsNull() {
			continue
		}
		if err := checkStrList(f.Value); err != nil {
			return &InvalidValueError{Key: raw + "." + f.Key, Err: err}
		}
		verb, ok := codecVerb(f.Key)
		if !ok {
			p.ignore(raw + "." + f.Key)
			continue
		}
		_ = eachStr("", f.Value, func(c string) { p.codec(verb, c) })
	}
	return nil
}

func (p *reqParser) codec(verb, c string) {
	if c = strings.TrimSpace(c); c == "" {
		return
	}
	// Cloned: the datagram's buffer is reused once the request is parsed.
	sp, err := codecs.ParseSpec(strings.Clone(c))
	if err != nil {
		p.ignoreValue("codec-"+verb, c)
		return
	}
	o := &p.req.Codec
	var list *[]codecs.Spec
	switch verb {
	case "strip":
		list = &o.Strip
	case "offer":
		list = &o.Offer
	case "transcode":
		list = &o.Transcode
	case "mask":
		list = &o.Mask
	case "set":
		list = &o.Set
	case "except":
		list = &o.Except
	case "accept":
		list = &o.Accept
	case "consume":
		list = &o.Consume
	case "ignore":
		list = &o.Ignore
	default:
		return
	}
	if !slices.Contains(*list, sp) {
		*list = append(*list, sp)
	}
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
	case "detect-dtmf":
		fl.DetectDTMF = true
	case "always-transcode":
		p.req.Codec.AlwaysTranscode = true
	case "single-codec":
		p.req.Codec.SingleCodec = true
	case "allow-no-codec-media":
		p.req.Codec.AllowNoCodec = true
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
		{"codec-ignore-", "ignore"},
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
				r.Direction = append(r.Direction, strings.Clone(k))
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
			r.FromTag = strings.Clone(v)
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
			if err := p.key(nk, k, Str(v)); err != nil {
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

// canonicalCommand is CanonicalCommand returning the constant for the
// commands the protocol defines.
func canonicalCommand(s string) string {
	if c, ok := commandNames[normName(s)]; ok {
		return c
	}
	return strings.Clone(CanonicalCommand(s))
}

// knownCommands are the command names the reference defines.
var knownCommands = []string{"ping", "offer", "answer", "delete", "query", "list", "statistics",
	"start recording", "stop recording", "pause recording",
	"block dtmf", "unblock dtmf", "block media", "unblock media",
	"silence media", "unsilence media", "start forwarding", "stop forwarding",
	"play media", "stop media", "play dtmf", "publish",
	"subscribe request", "subscribe answer", "unsubscribe",
	"inject start", "inject stop", "connect", "create", "create answer",
	"mesh", "transform", "cli"}

// commandNames maps the normalised spelling of each known command to its
// canonical name, and knownCommandSet holds the canonical names.
// (Package variables initialise in dependency order: knownNames below
// uses commandNames.)
var commandNames, knownCommandSet = func() (map[string]string, map[string]struct{}) {
	names := make(map[string]string, len(knownCommands))
	set := make(map[string]struct{}, len(knownCommands))
	for _, c := range knownCommands {
		names[strings.ReplaceAll(c, " ", "-")] = c
		set[c] = struct{}{}
	}
	return names, set
}()

// KnownCommand tells whether a canonical command name is one the reference
// defines (whether or not relayd implements it). Statistics use it so that
// arbitrary names from the network cannot grow the per-command tables.
func KnownCommand(c string) bool {
	_, ok := knownCommandSet[c]
	return ok
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
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "RTP/AVP":
		return "RTP/AVP", true
	case "RTP/AVPF":
		return "RTP/AVPF", true
	case "RTP/SAVP":
		return "RTP/SAVP", true
	case "RTP/SAVPF":
		return "RTP/SAVPF", true
	case "UDP/TLS/RTP/SAVP":
		return "UDP/TLS/RTP/SAVP", true
	case "UDP/TLS/RTP/SAVPF":
		return "UDP/TLS/RTP/SAVPF", true
	case "ACCEPT":
		return "accept", true
	}
	return "", false
}

// normName canonicalises a key, flag or keyword: ASCII lower case, space,
// hyphen and underscore all become one hyphen, and leading and trailing
// separators go. A name that is canonical already, or whose canonical form
// is a name the parser knows, costs no allocation.
func normName(s string) string {
	if isNormName(s) {
		return s
	}
	var buf [64]byte
	b := buf[:0]
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
	if n, ok := knownNames[string(b)]; ok {
		return n
	}
	return string(b)
}

func isNormName(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z', c == ' ', c == '_', c == '\t':
			return false
		case c == '-' && (i == 0 || i == len(s)-1 || s[i-1] == '-'):
			return false
		}
	}
	return true
}

// knownNames interns the canonical names that SIP proxies commonly spell
// otherwise ("ICE", "call id", "SDES", "TOS", "delete delay"...).
var knownNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"command", "call-id", "from-tag", "to-tag", "via-branch", "sdp",
		"label", "from-label", "to-label", "received-from", "media-address", "address-family",
		"direction", "ice", "dtls", "sdes", "rtcp-mux", "transport-protocol", "replace", "tos",
		"delete-delay", "limit", "codec", "endpoint-learning", "supports", "record-call", "all",
		"metadata", "flags", "rtpp-flags", "sip-message-type", "sip-code",
		"trust-address", "sip-source-address", "asymmetric", "symmetric", "strict-source",
		"media-handover", "port-latching", "no-port-latching", "no-rtcp-attribute",
		"full-rtcp-attribute", "original-sendrecv", "loop-protect", "record-call", "generate-mid",
		"reset", "fatal", "fast", "discard-recording", "unidirectional", "directional",
		"trickle-ice", "webrtc", "remove", "force", "default", "force-relay", "optional", "trickle",
		"off", "passive", "active", "origin", "session-connection", "sdp-version"} {
		m[n] = n
	}
	for c := range commandNames {
		m[c] = c
	}
	return m
}()

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

// appendUnique appends s, which must not share the request's memory (a
// constant), unless l holds it already.
func appendUnique(l *[]string, s string) {
	if !slices.Contains(*l, s) {
		*l = append(*l, s)
	}
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

func typeName(v Value) string {
	switch v.kind {
	case KindString:
		return "string"
	case KindInt, KindUint:
		return "integer"
	case KindFloat:
		return "number"
	case KindBool:
		return "boolean"
	case KindList:
		return "list"
	case KindDict:
		return "dictionary"
	}
	return "<nil>"
}

// str accepts a string, or an integer where a client sent a number for a
// textual key (a numeric tag, for instance). The string may share the
// request's memory: keep only what ownStr returns.
func str(key string, v Value) (string, error) {
	switch v.kind {
	case KindString:
		return v.str, nil
	case KindInt:
		return strconv.FormatInt(int64(v.num), 10), nil
	case KindUint:
		return strconv.FormatUint(v.num, 10), nil
	case KindFloat:
		if x := math.Float64frombits(v.num); x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), nil
		}
	}
	return "", &InvalidValueError{Key: key, Err: fmt.Errorf("want string, got %s", typeName(v))}
}

// ownStr is str for a value the Request keeps.
func ownStr(key string, v Value) (string, error) {
	s, err := str(key, v)
	return strings.Clone(s), err
}

// checkStrList validates a list of strings (Null entries are skipped), or a
// single string as a list of one.
func checkStrList(v Value) error {
	switch v.kind {
	case KindList:
		if len(v.items) > maxListLen {
			return fmt.Errorf("%d entries, more than %d", len(v.items), maxListLen)
		}
		for _, e := range v.items {
			if e.Value.IsNull() {
				continue
			}
			if _, err := str("", e.Value); err != nil {
				return fmt.Errorf("want list of strings, found %s", typeName(e.Value))
			}
		}
		return nil
	case KindString:
		return nil
	}
	return fmt.Errorf("want list, got %s", typeName(v))
}

// eachStr calls fn for every string of a list of strings, or for a single
// string; a value of any other shape is an error before fn is called.
func eachStr(key string, v Value, fn func(string)) error {
	if err := checkStrList(v); err != nil {
		return &InvalidValueError{Key: key, Err: err}
	}
	if v.kind == KindString {
		fn(v.str)
		return nil
	}
	for _, e := range v.items {
		if e.Value.IsNull() {
			continue
		}
		s, _ := str(key, e.Value)
		fn(s)
	}
	return nil
}

// integer accepts an integer or a numeric string: the reference does too.
func integer(key string, v Value) (int, error) {
	var n int64
	switch v.kind {
	case KindInt:
		n = int64(v.num)
	case KindUint:
		if v.num > math.MaxInt64 {
			return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("integer %d out of range", v.num)}
		}
		n = int64(v.num)
	case KindFloat:
		x := math.Float64frombits(v.num)
		if x != math.Trunc(x) || math.Abs(x) >= 1<<53 {
			return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %v", x)}
		}
		n = int64(x)
	case KindString:
		var err error
		n, err = strconv.ParseInt(strings.TrimSpace(v.str), 10, 64)
		if err != nil {
			return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %q", v.str)}
		}
	default:
		return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("want integer, got %s", typeName(v))}
	}
	if n != int64(int(n)) {
		return 0, &InvalidValueError{Key: key, Err: fmt.Errorf("integer %d out of range", n)}
	}
	return int(n), nil
}
