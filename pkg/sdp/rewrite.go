// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// outLine is one line of the rewritten SDP: an input line kept as it was
// (text), or a line the rewrite wrote into its buffer (gen[from:to]).
type outLine struct {
	text     string
	from, to int
	eol      string
}

// insertion is a generated line added after input line at.
type insertion struct {
	at       int
	from, to int
}

// rewrite is the state of one Rewrite call; the Description is never written to.
type rewrite struct {
	d *Description
	p *Plan

	stripSessICE bool
	sessAddr     netip.Addr   // address printed in the session c=, valid iff there is one
	mediaAddr    []netip.Addr // address printed for each media, invalid = keep
	ins          []insertion  // in the order they were added
	out          []outLine
	gen          []byte // the text of generated lines

	// Room for a typical offer, so that a Rewrite takes two allocations:
	// this struct and the output.
	plan    Plan
	addrBuf [8]netip.Addr
	dirBuf  [8]bool
	insBuf  [16]insertion
	outBuf  [32]outLine
	genBuf  [512]byte
}

// Rewrite applies p and returns the new SDP bytes. Lines the plan does not
// change keep their exact bytes; inserted lines take the line ending of the
// line they follow. d is not modified, so Rewrite can be called again (for
// example to bump the o= version after comparing with EqualIgnoringOrigin).
func (d *Description) Rewrite(p Plan) ([]byte, error) {
	if err := d.checkPlan(&p); err != nil {
		return nil, err
	}
	r := &rewrite{d: d, plan: p}
	r.p, r.ins, r.gen = &r.plan, r.insBuf[:0], r.genBuf[:0]
	var dirSeen []bool
	if len(d.sects) <= len(r.addrBuf) {
		r.mediaAddr, dirSeen = r.addrBuf[:len(d.sects)], r.dirBuf[:len(d.sects)]
	} else {
		r.mediaAddr, dirSeen = make([]netip.Addr, len(d.sects)), make([]bool, len(d.sects))
	}
	r.addresses()
	r.insertions()
	// Insertions after one line keep the order they were added in.
	slices.SortStableFunc(r.ins, func(a, b insertion) int { return a.at - b.at })
	r.out = r.outBuf[:0]
	if n := len(d.lines) + len(r.ins); n > len(r.outBuf) {
		r.out = make([]outLine, 0, n)
	}
	next := 0
	for idx := range d.lines {
		ln := &d.lines[idx]
		if ln.sect < 0 {
			r.sessionLine(ln)
		} else {
			r.mediaLine(ln, &dirSeen[ln.sect])
		}
		for ; next < len(r.ins) && r.ins[next].at == idx; next++ {
			r.out = append(r.out, outLine{from: r.ins[next].from, to: r.ins[next].to, eol: ln.eol})
		}
	}
	return r.bytes(), nil
}

// keep emits input line ln unchanged.
func (r *rewrite) keep(ln *line) { r.out = append(r.out, outLine{text: ln.text, eol: ln.eol}) }

// emit emits the line generated since from in place of input line ln.
func (r *rewrite) emit(ln *line, from int) {
	r.out = append(r.out, outLine{from: from, to: len(r.gen), eol: ln.eol})
}

// insert records the line generated since from as an insertion after line at.
func (r *rewrite) insert(at, from int) {
	r.ins = append(r.ins, insertion{at: at, from: from, to: len(r.gen)})
}

// insertAttr generates and inserts "a=<value>" after line at.
func (r *rewrite) insertAttr(at int, value ...string) {
	from := len(r.gen)
	r.gen = append(r.gen, "a="...)
	for _, v := range value {
		r.gen = append(r.gen, v...)
	}
	r.insert(at, from)
}

// addresses decides the address printed in the session c= and for each media.
func (r *rewrite) addresses() {
	d, p := r.d, r.p
	r.stripSessICE = p.RemoveICE
	zeroUser := false // a zero-address hold relies on the session c=
	for i := range d.sects {
		mp := &p.Media[i]
		if mp.ICE != nil && !mp.Reject {
			r.stripSessICE = true
		}
		if mp.ZeroAddress && d.sects[i].conn < 0 {
			zeroUser = true
		}
		if !mp.ZeroAddress {
			r.mediaAddr[i] = mp.Addr
			continue
		}
		fam := mp.Addr
		if !fam.IsValid() {
			fam = r.origAddr(i)
		}
		r.mediaAddr[i] = zeroOf(fam)
	}
	if d.sess.conn < 0 {
		return
	}
	orig := d.lines[d.sess.conn].conn.Addr
	switch {
	case orig.IsUnspecified() && zeroUser:
		fam := p.SessionConnection
		if !fam.IsValid() {
			fam = orig
		}
		r.sessAddr = zeroOf(fam)
	case p.SessionConnection.IsValid():
		r.sessAddr = p.SessionConnection
	default:
		r.sessAddr = orig
	}
}

// origAddr is the address media i used in the input, invalid if none.
func (r *rewrite) origAddr(i int) netip.Addr {
	if c := r.d.sects[i].conn; c >= 0 {
		return r.d.lines[c].conn.Addr
	}
	if c := r.d.sess.conn; c >= 0 {
		return r.d.lines[c].conn.Addr
	}
	return netip.Addr{}
}

// zeroOf returns the unspecified address of a's family (IPv4 for an invalid a).
func zeroOf(a netip.Addr) netip.Addr {
	if a.Is6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// appendConn appends the value of a c= line for a.
func appendConn(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		b = append(b, "IN IP4 "...)
	} else {
		b = append(b, "IN IP6 "...)
	}
	return appendAddr(b, a)
}

// appendAddr appends a as netip.Addr.String prints it.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, "invalid IP"...)
	}
	return a.AppendTo(b)
}

// insertions generates the lines to add, each after the input line it
// follows. After one line they are added in the order a valid SDP needs (s=
// before session a=, c= before media a=).
func (r *rewrite) insertions() {
	d, p := r.d, r.p
	if p.SessionName != "" && d.sname < 0 {
		at := 0
		if d.origin >= 0 {
			at = d.origin
		}
		from := len(r.gen)
		r.gen = append(r.gen, "s="...)
		r.gen = append(r.gen, p.SessionName...)
		r.insert(at, from)
	}
	if len(p.AddSessionAttributes) > 0 {
		at := d.sess.last
		if d.sess.lastAttr >= 0 {
			at = d.sess.lastAttr
		}
		for _, a := range p.AddSessionAttributes {
			r.insertAttr(at, a)
		}
	}
	for i := range d.sects {
		sec, mp, addr := &d.sects[i], &p.Media[i], r.mediaAddr[i]
		// A rejected media only gets a c= when the SDP would be invalid without one.
		if sec.conn < 0 && addr.IsValid() && (d.sess.conn < 0 || r.sessAddr != addr && !mp.Reject) {
			at := sec.first
			if sec.info >= 0 {
				at = sec.info
			}
			from := len(r.gen)
			r.gen = appendConn(append(r.gen, "c="...), addr)
			r.insert(at, from)
		}
		at := sec.last
		if sec.lastAttr >= 0 {
			at = sec.lastAttr
		}
		if len(mp.FormatAttributes) > 0 && !mp.Reject {
			fat := at
			for j := sec.first; j <= sec.last; j++ {
				if ln := &d.lines[j]; ln.typ == 'a' && (ln.attr == "rtpmap" || ln.attr == "fmtp" || ln.attr == "rtcp-fb") {
					fat = j
				}
			}
			for _, a := range mp.FormatAttributes {
				r.insertAttr(fat, a)
			}
		}
		if mp.PTime > 0 && !mp.Reject && !r.hasAttr(sec, func(a string) bool { return a == "ptime" }) {
			from := len(r.gen)
			r.gen = strconv.AppendInt(append(r.gen, "a=ptime:"...), int64(mp.PTime), 10)
			r.insert(at, from)
		}
		if mp.Direction != "" && !r.hasAttr(sec, isDirection) {
			r.insertAttr(at, mp.Direction)
		}
		if !mp.Reject && !mp.RTCP.Omit && mp.RTCP.Port > 0 && sec.rtcp < 0 {
			from := len(r.gen)
			r.rtcpLine(i, mp.RTCP.Full, netip.Addr{})
			r.insert(at, from)
		}
		if !mp.Reject && mp.RTCPMux && !r.hasAttr(sec, func(a string) bool { return a == "rtcp-mux" }) {
			r.insertAttr(at, "rtcp-mux")
		}
		for _, a := range mp.AddAttributes {
			r.insertAttr(at, a)
		}
		if ice := mp.ICE; ice != nil && !mp.Reject {
			r.insertAttr(at, "ice-ufrag:", ice.Ufrag)
			r.insertAttr(at, "ice-pwd:", ice.Pwd)
			if ice.Trickle {
				r.insertAttr(at, "ice-options:trickle")
			}
			for _, c := range ice.Candidates {
				r.insertAttr(at, c)
			}
			if ice.EndOfCandidates {
				r.insertAttr(at, "end-of-candidates")
			}
		}
	}
}

func (r *rewrite) hasAttr(sec *section, match func(string) bool) bool {
	for j := sec.first; j <= sec.last; j++ {
		if ln := &r.d.lines[j]; ln.typ == 'a' && match(ln.attr) {
			return true
		}
	}
	return false
}

// rtcpAddr picks the address of a full a=rtcp for media i; orig is the
// address of the existing line (invalid if none). ok is false when there is
// no address to print, and the short form is used.
func (r *rewrite) rtcpAddr(i int, orig netip.Addr) (netip.Addr, bool) {
	for _, a := range []netip.Addr{r.p.Media[i].RTCP.Addr, r.mediaAddr[i], orig} {
		if a.IsValid() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// rtcpLine generates the a=rtcp line of media i.
func (r *rewrite) rtcpLine(i int, full bool, orig netip.Addr) {
	r.gen = append(r.gen, "a=rtcp:"...)
	r.gen = strconv.AppendInt(r.gen, int64(r.p.Media[i].RTCP.Port), 10)
	if full {
		if a, ok := r.rtcpAddr(i, orig); ok {
			r.gen = appendConn(append(r.gen, ' '), a)
		}
	}
}

func (r *rewrite) sessionLine(ln *line) {
	p := r.p
	switch ln.typ {
	case 'o':
		r.originLine(ln)
		return
	case 's':
		if p.SessionName != "" {
			from := len(r.gen)
			r.gen = append(r.gen, "s="...)
			r.gen = append(r.gen, p.SessionName...)
			r.emit(ln, from)
			return
		}
	case 'c':
		if r.sessAddr != ln.conn.Addr {
			from := len(r.gen)
			r.gen = appendConn(append(r.gen, "c="...), r.sessAddr)
			r.emit(ln, from)
			return
		}
	case 'a':
		if r.stripSessICE && isICE(ln.attr) || slices.Contains(p.RemoveSessionAttributes, ln.attr) {
			return
		}
	}
	r.keep(ln)
}

func (r *rewrite) originLine(ln *line) {
	o, f := r.p.Origin, r.d.oFields
	for k, v := range []string{o.Username, o.SessionID, o.Version} {
		if v != "" {
			f[k] = v
		}
	}
	// The new address is printed into a stack buffer and only compared
	// with the old one as long as nothing else changed.
	var buf [64]byte
	var addr []byte
	if o.Addr.IsValid() {
		f[4] = "IP4"
		if !o.Addr.Is4() {
			f[4] = "IP6"
		}
		if addr = appendAddr(buf[:0], o.Addr); string(addr) == f[5] {
			addr = nil
		}
	}
	if f == r.d.oFields && addr == nil {
		r.keep(ln)
		return
	}
	from := len(r.gen)
	r.gen = append(r.gen, "o="...)
	for k, v := range f {
		if k > 0 {
			r.gen = append(r.gen, ' ')
		}
		if k == 5 && addr != nil {
			r.gen = append(r.gen, addr...)
		} else {
			r.gen = append(r.gen, v...)
		}
	}
	r.emit(ln, from)
}

func (r *rewrite) mediaLine(ln *line, dirSeen *bool) {
	i := ln.sect
	mp := &r.p.Media[i]
	switch ln.typ {
	case 'm':
		r.mLine(i, ln)
		return
	case 'c':
		if a := r.mediaAddr[i]; a.IsValid() && a != ln.conn.Addr {
			from := len(r.gen)
			r.gen = appendConn(append(r.gen, "c="...), a)
			r.emit(ln, from)
			return
		}
		r.keep(ln)
		return
	case 'a':
	default:
		r.keep(ln)
		return
	}
	switch attr := ln.attr; {
	case attr == "rtcp":
		if mp.Reject || mp.RTCP.Omit {
			return
		}
		if mp.RTCP.Port == 0 {
			r.keep(ln)
			return
		}
		full := mp.RTCP.Full || ln.hasConn
		var orig netip.Addr
		if ln.hasConn {
			orig = ln.conn.Addr
		}
		a, hasAddr := r.rtcpAddr(i, orig)
		full = full && hasAddr
		if mp.RTCP.Port == ln.port && full == ln.hasConn && (!full || a == ln.conn.Addr) {
			r.keep(ln)
			return
		}
		from := len(r.gen)
		r.rtcpLine(i, full, orig)
		r.emit(ln, from)
		return
	case attr == "rtcp-mux":
		if !mp.Reject && mp.RTCPMux {
			r.keep(ln)
		}
		return
	case isICE(attr):
		if !mp.Reject && !r.p.RemoveICE && mp.ICE == nil {
			r.keep(ln)
		}
		return
	case isDirection(attr):
		if mp.Direction == "" {
			r.keep(ln)
			return
		}
		if *dirSeen {
			return
		}
		*dirSeen = true
		if attr == mp.Direction {
			r.keep(ln)
			return
		}
		from := len(r.gen)
		r.gen = append(append(r.gen, "a="...), mp.Direction...)
		r.emit(ln, from)
		return
	case attr == "rtpmap" || attr == "fmtp" || attr == "rtcp-fb":
		if mp.OwnFormatLines {
			return
		}
		if len(mp.RemoveFormats) > 0 || mp.Formats != nil {
			pt, _, _ := strings.Cut(ln.aval, " ")
			if mp.drops(pt) {
				return
			}
		}
	case attr == "ptime" && mp.PTime > 0:
		if v, _ := strconv.Atoi(strings.TrimSpace(ln.aval)); v == mp.PTime {
			r.keep(ln)
			return
		}
		from := len(r.gen)
		r.gen = strconv.AppendInt(append(r.gen, "a=ptime:"...), int64(mp.PTime), 10)
		r.emit(ln, from)
		return
	}
	if slices.Contains(mp.RemoveAttributes, ln.attr) && !managed(ln.attr) {
		return
	}
	r.keep(ln)
}

func (r *rewrite) mLine(i int, ln *line) {
	m, mp := &r.d.sects[i].m, &r.p.Media[i]
	port := mp.Port
	if mp.Reject {
		port = 0
	}
	proto := m.proto
	if mp.Proto != "" {
		proto = mp.Proto
	}
	formats := m.formats
	if mp.Formats != nil {
		formats = mp.Formats
	} else if len(mp.RemoveFormats) > 0 {
		formats = slices.DeleteFunc(slices.Clone(m.formats), mp.drops)
	}
	if port == m.port && proto == m.proto && slices.Equal(formats, m.formats) {
		r.keep(ln)
		return
	}
	from := len(r.gen)
	r.gen = append(r.gen, "m="...)
	r.gen = append(r.gen, m.typ...)
	r.gen = append(r.gen, ' ')
	r.gen = strconv.AppendInt(r.gen, int64(port), 10)
	if m.hasNum {
		r.gen = append(r.gen, '/')
		r.gen = strconv.AppendInt(r.gen, int64(m.num), 10)
	}
	r.gen = append(r.gen, ' ')
	r.gen = append(r.gen, proto...)
	for _, f := range formats {
		r.gen = append(r.gen, ' ')
		r.gen = append(r.gen, f...)
	}
	r.emit(ln, from)
}

// bytes joins the output lines. A line without a line ending (the input's
// last line) that is no longer last gets the document's usual one.
func (r *rewrite) bytes() []byte {
	n := len(r.d.tail)
	for _, ol := range r.out {
		n += len(ol.text) + ol.to - ol.from + len(ol.eol) + len(r.d.eol)
	}
	b := make([]byte, 0, n)
	for k, ol := range r.out {
		if ol.text != "" {
			b = append(b, ol.text...)
		} else {
			b = append(b, r.gen[ol.from:ol.to]...)
		}
		if k < len(r.out)-1 && !strings.HasSuffix(ol.eol, "\n") {
			b = append(b, r.d.eol...)
		} else {
			b = append(b, ol.eol...)
		}
	}
	return append(b, r.d.tail...)
}

// EqualIgnoringOrigin reports whether two SDP bodies are byte-identical except
// for their o= lines, which is how the SDP-version rule decides whether the
// version must be bumped. Neither body needs to parse.
func EqualIgnoringOrigin(a, b []byte) bool {
	for {
		la, ra := nextNonOrigin(a)
		lb, rb := nextNonOrigin(b)
		if !bytes.Equal(la, lb) {
			return false
		}
		if la == nil {
			return true
		}
		a, b = ra, rb
	}
}

// nextNonOrigin returns the first line (with its ending) of s that is not an
// o= line, and the rest; nil when there is none.
func nextNonOrigin(s []byte) (ln, rest []byte) {
	for len(s) > 0 {
		end := len(s)
		if i := bytes.IndexByte(s, '\n'); i >= 0 {
			end = i + 1
		}
		ln, s = s[:end], s[end:]
		if !bytes.HasPrefix(ln, []byte("o=")) {
			return ln, s
		}
	}
	return nil, nil
}
