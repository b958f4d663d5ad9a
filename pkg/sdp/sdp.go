// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Limits that bound the work done on untrusted bodies.
const (
	// MaxSize is the largest body Parse accepts, in bytes: an ng request
	// datagram holds no more.
	MaxSize = 64 << 10
	// MaxMedia is the largest number of m= sections Parse accepts. A real
	// section rewritten by the relay ("m=audio 30000 RTP/AVP 0" and
	// "a=rtcp:30001") takes at least 39 bytes, so about 1,600 of them fill
	// the SDP of one ng reply datagram (see session.MaxSDPOut); the cap
	// stays below that, and above the incumbent's tested 200.
	MaxMedia = 1500
)

// Description is a parsed session description. The exported fields are a
// view for the session layer; Rewrite works from the original lines, so
// changing the view does not change what Rewrite produces. Nothing modifies a
// Description after Parse, so its methods may be called concurrently.
type Description struct {
	// Origin is the parsed o= line (zero if absent).
	Origin Origin
	// SessionName is the s= value.
	SessionName string
	// Connection is the session-level c=, nil if absent.
	Connection *Connection
	// Media are the m= sections in order.
	Media []*Media

	lines   []line
	tail    string // trailing empty lines, kept verbatim
	eol     string // line ending for lines that had none (the last one)
	sess    section
	sects   []section
	origin  int // index of the o= line, -1 if absent
	oFields [6]string
	sname   int // index of the s= line, -1 if absent
	sessDir string
	sessICE bool

	sessConn Connection // what Connection points to
}

// Origin is the o= line.
type Origin struct {
	Username, SessionID, Version, NetType, AddrType, Address string
}

// Connection is a c= line (or the address part of a=rtcp).
type Connection struct {
	AddrType string // "IP4" or "IP6"
	Addr     netip.Addr
}

// Media is one m= section.
type Media struct {
	Type       string // audio, video, image, application...
	Port       int    // 0 = rejected
	NumPorts   int    // from "port/num", 1 if absent
	Proto      string // RTP/AVP, UDP/TLS/RTP/SAVPF, ...
	Formats    []string
	Connection *Connection // media-level c=, nil if absent
	RTCP       *RTCPAttr   // a=rtcp, nil if absent
	RTCPMux    bool        // a=rtcp-mux present
	Direction  string      // sendrecv/sendonly/recvonly/inactive, "" if absent at media level
	ICE        bool        // media has a=ice-ufrag, a=ice-pwd or a=candidate
	RTPMaps    map[uint8]RTPMap
	// Fmtp holds the a=fmtp parameters by payload type; nil when the media
	// has none.
	Fmtp map[uint8]string
	// PTime is the a=ptime value in ms, 0 when absent.
	PTime int
	Mid   string
}

// mediaStore holds a Media and what its pointers point to, so that all
// media of a description take one allocation.
type mediaStore struct {
	media          Media
	conn, rtcpConn Connection
	rtcp           RTCPAttr
}

// RTCPAttr is an a=rtcp attribute (RFC 3605).
type RTCPAttr struct {
	Port       int
	Connection *Connection // optional "IN IP4 addr" part, nil if absent
}

// RTPMap is one a=rtpmap attribute.
type RTPMap struct {
	Encoding  string
	ClockRate int
	// Channels is the encoding parameter; 1 when the rtpmap has none, so that
	// "PCMU/8000" and "PCMU/8000/1" compare equal.
	Channels int
}

// line is one SDP line exactly as received.
type line struct {
	text string // without the line ending
	eol  string // "\r\n", "\n", "\r\r\n", ... or "" for a last line without one
	typ  byte
	sect int    // -1 for the session level, else the media index
	attr string // a= attribute name
	aval string // a= attribute value (after ':')

	conn    Connection // c= lines, and the address of a full a=rtcp
	hasConn bool       // a=rtcp has the address part
	port    int        // a=rtcp port
}

// section holds the line indices of the session level or of one media.
type section struct {
	first, last int
	lastAttr    int // last a= line, -1 if none
	conn        int // c= line, -1 if none
	info        int // i= line right after m=, -1 if none
	rtcp        int // a=rtcp line, -1 if none
	m           mline
}

// mline is a parsed m= line.
type mline struct {
	typ     string
	port    int
	hasNum  bool
	num     int
	proto   string
	formats []string
}

func newSection(first int) section {
	return section{first: first, last: first, lastAttr: -1, conn: -1, info: -1, rtcp: -1}
}

// Parse parses an SDP body. It keeps every line with its exact bytes and line
// ending. Lines ending in "\r\n", "\n" or any number of "\r" before "\n" are
// accepted, as is a last line without a line ending and trailing empty lines.
func Parse(b []byte) (*Description, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrParse)
	}
	if len(b) > MaxSize {
		return nil, &LimitError{What: "bytes", Max: MaxSize, Got: len(b)}
	}
	s := string(b)
	d := &Description{origin: -1, sname: -1, sess: newSection(0)}
	// Counting first sizes the line and media tables exactly.
	d.lines = make([]line, 0, strings.Count(s, "\n")+1)
	if nm := strings.Count(s, "\nm="); nm > MaxMedia {
		return nil, &LimitError{What: "media sections", Max: MaxMedia, Got: nm}
	} else if nm > 0 {
		d.sects = make([]section, 0, nm)
	}
	blankAt, blankLine := -1, 0
	n := 0
	for pos := 0; pos < len(s); {
		end := len(s)
		if i := strings.IndexByte(s[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		seg := s[pos:end]
		text := strings.TrimRight(seg, "\r\n")
		n++
		if text == "" {
			if blankAt < 0 {
				blankAt, blankLine = pos, n
			}
			pos = end
			continue
		}
		if blankAt >= 0 {
			return nil, parseErr(blankLine, "empty line")
		}
		if err := d.addLine(text, seg[len(text):], n); err != nil {
			return nil, err
		}
		pos = end
	}
	if len(d.lines) == 0 {
		return nil, fmt.Errorf("%w: no SDP lines", ErrParse)
	}
	if blankAt >= 0 {
		d.tail = s[blankAt:]
	}
	d.eol = "\r\n"
	for _, ln := range d.lines {
		if strings.HasSuffix(ln.eol, "\n") {
			d.eol = ln.eol
			break
		}
	}
	d.fillView()
	return d, nil
}

func parseErr(n int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrParse, n, fmt.Sprintf(format, args...))
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "..."
	}
	return s
}

func (d *Description) addLine(text, eol string, n int) error {
	if len(text) < 2 || text[1] != '=' || !isLetter(text[0]) {
		return parseErr(n, "not a <type>=<value> line: %q", clip(text))
	}
	if strings.ContainsAny(text, "\r\x00") {
		return parseErr(n, "control character inside line %q", clip(text))
	}
	idx := len(d.lines)
	if idx == 0 && text[0] != 'v' {
		return parseErr(n, "first line is not v=: %q", clip(text))
	}
	ln := line{text: text, eol: eol, typ: text[0], sect: len(d.sects) - 1}
	val := text[2:]
	if ln.typ == 'm' {
		if len(d.sects) == MaxMedia {
			// Only with "\r" line endings the count above missed.
			return &LimitError{What: "media sections", Max: MaxMedia, Got: MaxMedia + 1}
		}
		m, err := parseMLine(val)
		if err != nil {
			return parseErr(n, "%v", err)
		}
		sec := newSection(idx)
		sec.m = m
		d.sects = append(d.sects, sec)
		ln.sect = len(d.sects) - 1
	}
	sec := &d.sess
	if ln.sect >= 0 {
		sec = &d.sects[ln.sect]
	}
	switch ln.typ {
	case 'v':
		if idx != 0 {
			return parseErr(n, "unexpected second v= line")
		}
	case 'o':
		if ln.sect >= 0 || d.origin >= 0 {
			return parseErr(n, "unexpected o= line")
		}
		if nf := splitFields(val, d.oFields[:]); nf != len(d.oFields) {
			return parseErr(n, "o= has %d fields, want 6: %q", nf, clip(val))
		}
		d.origin = idx
	case 's':
		if ln.sect >= 0 || d.sname >= 0 {
			return parseErr(n, "unexpected s= line")
		}
		d.sname = idx
	case 'c':
		if sec.conn >= 0 {
			return parseErr(n, "more than one c= line")
		}
		c, err := parseConnection(val)
		if err != nil {
			return parseErr(n, "c=: %v", err)
		}
		ln.conn = c
		sec.conn = idx
	case 'i':
		if ln.sect >= 0 && idx == sec.first+1 {
			sec.info = idx
		}
	case 'a':
		ln.attr, ln.aval, _ = strings.Cut(val, ":")
		sec.lastAttr = idx
		if ln.sect >= 0 && ln.attr == "rtcp" {
			if sec.rtcp >= 0 {
				return parseErr(n, "more than one a=rtcp line")
			}
			port, c, hasConn, err := parseRTCP(ln.aval)
			if err != nil {
				return parseErr(n, "a=rtcp: %v", err)
			}
			ln.port, ln.conn, ln.hasConn = port, c, hasConn
			sec.rtcp = idx
		}
	}
	sec.last = idx
	d.lines = append(d.lines, ln)
	return nil
}

// fillView builds the exported fields from the lines.
func (d *Description) fillView() {
	if d.origin >= 0 {
		f := d.oFields
		d.Origin = Origin{Username: f[0], SessionID: f[1], Version: f[2], NetType: f[3], AddrType: f[4], Address: f[5]}
	}
	if d.sname >= 0 {
		d.SessionName = d.lines[d.sname].text[2:]
	}
	if d.sess.conn >= 0 {
		d.sessConn = d.lines[d.sess.conn].conn
		d.Connection = &d.sessConn
	}
	// The view's Formats are copies (the session layer may edit them), all
	// in one block; the media in another.
	nf, nrtpmap := 0, make([]int, len(d.sects))
	for i := range d.sects {
		nf += len(d.sects[i].m.formats)
	}
	for _, ln := range d.lines {
		if ln.sect >= 0 && ln.attr == "rtpmap" {
			nrtpmap[ln.sect]++
		}
	}
	formats := make([]string, nf)
	store := make([]mediaStore, len(d.sects))
	d.Media = make([]*Media, len(d.sects))
	for i := range d.sects {
		sec := &d.sects[i]
		m := &store[i].media
		*m = Media{
			Type:     sec.m.typ,
			Port:     sec.m.port,
			NumPorts: sec.m.num,
			Proto:    sec.m.proto,
			Formats:  formats[:len(sec.m.formats):len(sec.m.formats)],
			RTPMaps:  make(map[uint8]RTPMap, nrtpmap[i]),
		}
		copy(m.Formats, sec.m.formats)
		formats = formats[len(sec.m.formats):]
		if sec.conn >= 0 {
			store[i].conn = d.lines[sec.conn].conn
			m.Connection = &store[i].conn
		}
		d.Media[i] = m
	}
	for _, ln := range d.lines {
		if ln.typ != 'a' {
			continue
		}
		if ln.sect < 0 {
			switch {
			case isDirection(ln.attr) && d.sessDir == "":
				d.sessDir = ln.attr
			case isICEMarker(ln.attr):
				d.sessICE = true
			}
			continue
		}
		m, ms := d.Media[ln.sect], &store[ln.sect]
		switch {
		case ln.attr == "rtcp":
			ms.rtcp = RTCPAttr{Port: ln.port}
			if ln.hasConn {
				ms.rtcpConn = ln.conn
				ms.rtcp.Connection = &ms.rtcpConn
			}
			m.RTCP = &ms.rtcp
		case ln.attr == "rtcp-mux":
			m.RTCPMux = true
		case isDirection(ln.attr):
			if m.Direction == "" {
				m.Direction = ln.attr
			}
		case isICEMarker(ln.attr):
			m.ICE = true
		case ln.attr == "rtpmap":
			if pt, rm, ok := parseRTPMap(ln.aval); ok {
				if _, dup := m.RTPMaps[pt]; !dup {
					m.RTPMaps[pt] = rm
				}
			}
		case ln.attr == "fmtp":
			ptStr, params, _ := strings.Cut(ln.aval, " ")
			if pt, ok := parseUint(ptStr, 127); ok {
				if m.Fmtp == nil {
					m.Fmtp = map[uint8]string{}
				}
				if _, dup := m.Fmtp[uint8(pt)]; !dup {
					m.Fmtp[uint8(pt)] = strings.TrimSpace(params)
				}
			}
		case ln.attr == "ptime":
			if v, ok := parseUint(strings.TrimSpace(ln.aval), 1000); ok && m.PTime == 0 {
				m.PTime = v
			}
		case ln.attr == "mid":
			if m.Mid == "" {
				m.Mid = ln.aval
			}
		}
	}
}

// SessionDirection returns the session-level direction attribute ("" if absent).
func (d *Description) SessionDirection() string { return d.sessDir }

// HasICE reports ICE (ufrag, pwd or candidates) at session or any media level.
func (d *Description) HasICE() bool {
	if d.sessICE {
		return true
	}
	for _, m := range d.Media {
		if m.ICE {
			return true
		}
	}
	return false
}

// Endpoint returns the RTP endpoint of media i: the media-level c= address,
// else the session-level one, with the m= port. A zero address (0.0.0.0 or ::,
// a hold) is returned as is. ok is false when the media has no c= at all or i
// is out of range.
func (d *Description) Endpoint(i int) (ap netip.AddrPort, ok bool) {
	if i < 0 || i >= len(d.Media) {
		return netip.AddrPort{}, false
	}
	m := d.Media[i]
	c := m.Connection
	if c == nil {
		c = d.Connection
	}
	if c == nil || m.Port < 0 || m.Port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(c.Addr, uint16(m.Port)), true
}

// RTCPEndpoint returns where media i expects RTCP: the a=rtcp port (and
// address, if the attribute has one), else the RTP port when a=rtcp-mux is
// present, else the RTP port + 1. A rejected media (port 0) without a=rtcp
// yields port 0. Callers that negotiated rtcp-mux should use Endpoint instead:
// browsers advertise a dummy "a=rtcp:9 IN IP4 0.0.0.0" next to a=rtcp-mux.
func (d *Description) RTCPEndpoint(i int) (netip.AddrPort, bool) {
	rtp, ok := d.Endpoint(i)
	if !ok {
		return netip.AddrPort{}, false
	}
	m := d.Media[i]
	switch {
	case m.RTCP != nil:
		if m.RTCP.Port < 0 || m.RTCP.Port > 65535 {
			return netip.AddrPort{}, false
		}
		addr := rtp.Addr()
		if m.RTCP.Connection != nil {
			addr = m.RTCP.Connection.Addr
		}
		return netip.AddrPortFrom(addr, uint16(m.RTCP.Port)), true
	case m.RTCPMux || rtp.Port() == 0:
		return rtp, true
	case rtp.Port() == 65535:
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1), true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// splitFields splits s on spaces and tabs only (SDP separates fields with a
// single space, and unicode-aware splitting would treat odd bytes as
// separators) into dst, and returns how many fields s has: when that is
// more than len(dst), only the first len(dst) are stored.
func splitFields(s string, dst []string) int {
	n := 0
	for i := 0; i < len(s); {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		if n < len(dst) {
			dst[n] = s[start:i]
		}
		n++
	}
	return n
}

// parseUint parses a decimal number no larger than limit.
func parseUint(s string, limit int) (int, bool) {
	if !isDigits(s) || len(s) > 10 {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v > limit {
		return 0, false
	}
	return v, true
}

func parseMLine(v string) (mline, error) {
	n := splitFields(v, nil)
	if n < 4 {
		return mline{}, fmt.Errorf("m= needs media, port, proto and formats: %q", clip(v))
	}
	f := make([]string, n)
	splitFields(v, f)
	m := mline{typ: f[0], proto: f[2], formats: f[3:], num: 1}
	portStr, numStr, hasNum := strings.Cut(f[1], "/")
	port, ok := parseUint(portStr, 65535)
	if !ok {
		return mline{}, fmt.Errorf("m= port %q is not a number in 0-65535", clip(f[1]))
	}
	m.port = port
	if hasNum {
		num, ok := parseUint(numStr, 65535)
		if !ok || num == 0 {
			return mline{}, fmt.Errorf("m= port count %q is not a number in 1-65535", clip(f[1]))
		}
		m.hasNum, m.num = true, num
	}
	return m, nil
}

func parseConnection(v string) (Connection, error) {
	var f [3]string
	if n := splitFields(v, f[:]); n != 3 || f[0] != "IN" {
		return Connection{}, fmt.Errorf("want \"IN IP4|IP6 <address>\", got %q", clip(v))
	}
	return parseAddr(f[1], f[2])
}

// parseAddr parses the address type and unicast address of c= and a=rtcp,
// tolerating the multicast suffix ("/ttl", "/ttl/count", "/count").
func parseAddr(addrType, s string) (Connection, error) {
	if a, suffix, ok := strings.Cut(s, "/"); ok {
		s = a
		n1, n2, two := strings.Cut(suffix, "/")
		if !isDigits(n1) || len(n1) > 5 || two && (!isDigits(n2) || len(n2) > 5) {
			return Connection{}, fmt.Errorf("bad address suffix %q", clip(suffix))
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return Connection{}, fmt.Errorf("bad address %q", clip(s))
	}
	switch {
	case addrType == "IP4" && a.Is4(), addrType == "IP6" && a.Is6():
		return Connection{AddrType: addrType, Addr: a}, nil
	case addrType == "IP4" || addrType == "IP6":
		return Connection{}, fmt.Errorf("address %q is not %s", clip(s), addrType)
	}
	return Connection{}, fmt.Errorf("unknown address type %q", clip(addrType))
}

func parseRTCP(v string) (port int, c Connection, hasConn bool, err error) {
	var f [4]string
	nf := splitFields(v, f[:])
	if nf != 1 && nf != 4 {
		return 0, Connection{}, false, fmt.Errorf("want \"<port> [IN IP4|IP6 <address>]\", got %q", clip(v))
	}
	port, ok := parseUint(f[0], 65535)
	if !ok {
		return 0, Connection{}, false, fmt.Errorf("port %q is not a number in 0-65535", clip(f[0]))
	}
	if nf == 4 {
		if f[1] != "IN" {
			return 0, Connection{}, false, fmt.Errorf("unknown network type %q", clip(f[1]))
		}
		if c, err = parseAddr(f[2], f[3]); err != nil {
			return 0, Connection{}, false, err
		}
		hasConn = true
	}
	return port, c, hasConn, nil
}

// parseRTPMap parses "<pt> <encoding>/<clock>[/<channels>]"; malformed
// rtpmaps are not an error, they are only left out of the view.
func parseRTPMap(v string) (uint8, RTPMap, bool) {
	ptStr, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, RTPMap{}, false
	}
	pt, ok := parseUint(ptStr, 127)
	if !ok {
		return 0, RTPMap{}, false
	}
	enc, rest, _ := strings.Cut(strings.TrimSpace(rest), "/")
	clockStr, chStr, hasCh := strings.Cut(rest, "/")
	if enc == "" || strings.Contains(chStr, "/") {
		return 0, RTPMap{}, false
	}
	clock, ok := parseUint(clockStr, 1<<31-1)
	if !ok {
		return 0, RTPMap{}, false
	}
	rm := RTPMap{Encoding: enc, ClockRate: clock, Channels: 1}
	if hasCh {
		ch, ok := parseUint(chStr, 255)
		if !ok {
			return 0, RTPMap{}, false
		}
		rm.Channels = ch
	}
	return uint8(pt), rm, true
}

func isDirection(attr string) bool {
	switch attr {
	case "sendrecv", "sendonly", "recvonly", "inactive":
		return true
	}
	return false
}

// isICE reports the attributes that belong to an ICE agent and are stripped
// or replaced as a whole.
func isICE(attr string) bool {
	switch attr {
	case "candidate", "remote-candidates", "ice-ufrag", "ice-pwd", "ice-options",
		"ice-lite", "ice-mismatch", "end-of-candidates", "ice-pacing":
		return true
	}
	return false
}

// isICEMarker reports the attributes whose presence means the endpoint speaks ICE.
func isICEMarker(attr string) bool {
	return attr == "ice-ufrag" || attr == "ice-pwd" || attr == "candidate"
}
