// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// outLine is one line of the rewritten SDP.
type outLine struct{ text, eol string }

// rewrite is the state of one Rewrite call; the Description is never written to.
type rewrite struct {
	d *Description
	p *Plan

	stripSessICE bool
	sessAddr     netip.Addr   // address printed in the session c=, valid iff there is one
	mediaAddr    []netip.Addr // address printed for each media, invalid = keep
	after        map[int][]string
	out          []outLine
}

// Rewrite applies p and returns the new SDP bytes. Lines the plan does not
// change keep their exact bytes; inserted lines take the line ending of the
// line they follow. d is not modified, so Rewrite can be called again (for
// example to bump the o= version after comparing with EqualIgnoringOrigin).
func (d *Description) Rewrite(p Plan) ([]byte, error) {
	if err := d.checkPlan(&p); err != nil {
		return nil, err
	}
	r := &rewrite{d: d, p: &p, after: make(map[int][]string)}
	r.addresses()
	r.insertions()
	r.out = make([]outLine, 0, len(d.lines)+8)
	dirSeen := make([]bool, len(d.sects))
	for idx := range d.lines {
		ln := &d.lines[idx]
		var text string
		var keep bool
		if ln.sect < 0 {
			text, keep = r.sessionLine(ln)
		} else {
			text, keep = r.mediaLine(ln, &dirSeen[ln.sect])
		}
		if keep {
			r.out = append(r.out, outLine{text, ln.eol})
		}
		for _, ins := range r.after[idx] {
			r.out = append(r.out, outLine{ins, ln.eol})
		}
	}
	return r.bytes(), nil
}

// addresses decides the address printed in the session c= and for each media.
func (r *rewrite) addresses() {
	d, p := r.d, r.p
	r.stripSessICE = p.RemoveICE
	r.mediaAddr = make([]netip.Addr, len(d.sects))
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

func connValue(a netip.Addr) string {
	if a.Is4() {
		return "IN IP4 " + a.String()
	}
	return "IN IP6 " + a.String()
}

// insertions collects the lines to add, keyed by the input line they follow.
// Within one key they are added in the order a valid SDP needs (s= before
// session a=, c= before media a=).
func (r *rewrite) insertions() {
	d, p := r.d, r.p
	if p.SessionName != "" && d.sname < 0 {
		at := 0
		if d.origin >= 0 {
			at = d.origin
		}
		r.after[at] = append(r.after[at], "s="+p.SessionName)
	}
	if len(p.AddSessionAttributes) > 0 {
		at := d.sess.last
		if d.sess.lastAttr >= 0 {
			at = d.sess.lastAttr
		}
		for _, a := range p.AddSessionAttributes {
			r.after[at] = append(r.after[at], "a="+a)
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
			r.after[at] = append(r.after[at], "c="+connValue(addr))
		}
		var add []string
		if mp.Direction != "" && !r.hasAttr(sec, isDirection) {
			add = append(add, "a="+mp.Direction)
		}
		if !mp.Reject && !mp.RTCP.Omit && mp.RTCP.Port > 0 && sec.rtcp < 0 {
			add = append(add, r.rtcpLine(i, mp.RTCP.Full, netip.Addr{}))
		}
		if !mp.Reject && mp.RTCPMux && !r.hasAttr(sec, func(a string) bool { return a == "rtcp-mux" }) {
			add = append(add, "a=rtcp-mux")
		}
		for _, a := range mp.AddAttributes {
			add = append(add, "a="+a)
		}
		if ice := mp.ICE; ice != nil && !mp.Reject {
			add = append(add, "a=ice-ufrag:"+ice.Ufrag, "a=ice-pwd:"+ice.Pwd)
			if ice.Trickle {
				add = append(add, "a=ice-options:trickle")
			}
			for _, c := range ice.Candidates {
				add = append(add, "a="+c)
			}
			if ice.EndOfCandidates {
				add = append(add, "a=end-of-candidates")
			}
		}
		if len(add) > 0 {
			at := sec.last
			if sec.lastAttr >= 0 {
				at = sec.lastAttr
			}
			r.after[at] = append(r.after[at], add...)
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

func (r *rewrite) rtcpLine(i int, full bool, orig netip.Addr) string {
	s := "a=rtcp:" + strconv.Itoa(r.p.Media[i].RTCP.Port)
	if full {
		if a, ok := r.rtcpAddr(i, orig); ok {
			s += " " + connValue(a)
		}
	}
	return s
}

func (r *rewrite) sessionLine(ln *line) (string, bool) {
	p := r.p
	switch ln.typ {
	case 'o':
		return r.originLine(ln), true
	case 's':
		if p.SessionName != "" {
			return "s=" + p.SessionName, true
		}
	case 'c':
		if r.sessAddr != ln.conn.Addr {
			return "c=" + connValue(r.sessAddr), true
		}
	case 'a':
		if r.stripSessICE && isICE(ln.attr) || slices.Contains(p.RemoveSessionAttributes, ln.attr) {
			return "", false
		}
	}
	return ln.text, true
}

func (r *rewrite) originLine(ln *line) string {
	o, f := r.p.Origin, r.d.oFields
	for k, v := range []string{o.Username, o.SessionID, o.Version} {
		if v != "" {
			f[k] = v
		}
	}
	if o.Addr.IsValid() {
		f[4], f[5] = "IP4", o.Addr.String()
		if !o.Addr.Is4() {
			f[4] = "IP6"
		}
	}
	if f == r.d.oFields {
		return ln.text
	}
	return "o=" + strings.Join(f[:], " ")
}

func (r *rewrite) mediaLine(ln *line, dirSeen *bool) (string, bool) {
	i := ln.sect
	mp := &r.p.Media[i]
	switch ln.typ {
	case 'm':
		return r.mLine(i, ln), true
	case 'c':
		if a := r.mediaAddr[i]; a.IsValid() && a != ln.conn.Addr {
			return "c=" + connValue(a), true
		}
		return ln.text, true
	case 'a':
	default:
		return ln.text, true
	}
	switch attr := ln.attr; {
	case attr == "rtcp":
		if mp.Reject || mp.RTCP.Omit {
			return "", false
		}
		if mp.RTCP.Port == 0 {
			return ln.text, true
		}
		full := mp.RTCP.Full || ln.hasConn
		var orig netip.Addr
		if ln.hasConn {
			orig = ln.conn.Addr
		}
		a, hasAddr := r.rtcpAddr(i, orig)
		full = full && hasAddr
		if mp.RTCP.Port == ln.port && full == ln.hasConn && (!full || a == ln.conn.Addr) {
			return ln.text, true
		}
		return r.rtcpLine(i, full, orig), true
	case attr == "rtcp-mux":
		return ln.text, !mp.Reject && mp.RTCPMux
	case isICE(attr):
		return ln.text, !mp.Reject && !r.p.RemoveICE && mp.ICE == nil
	case isDirection(attr):
		if mp.Direction == "" {
			return ln.text, true
		}
		if *dirSeen {
			return "", false
		}
		*dirSeen = true
		if attr == mp.Direction {
			return ln.text, true
		}
		return "a=" + mp.Direction, true
	case attr == "rtpmap" || attr == "fmtp" || attr == "rtcp-fb":
		if len(mp.RemoveFormats) > 0 {
			pt, _, _ := strings.Cut(ln.aval, " ")
			if slices.Contains(mp.RemoveFormats, pt) {
				return "", false
			}
		}
	}
	if slices.Contains(mp.RemoveAttributes, ln.attr) && !managed(ln.attr) {
		return "", false
	}
	return ln.text, true
}

func (r *rewrite) mLine(i int, ln *line) string {
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
	if len(mp.RemoveFormats) > 0 {
		formats = slices.DeleteFunc(slices.Clone(formats), func(f string) bool {
			return slices.Contains(mp.RemoveFormats, f)
		})
	}
	if port == m.port && proto == m.proto && len(formats) == len(m.formats) {
		return ln.text
	}
	var b strings.Builder
	b.WriteString("m=" + m.typ + " " + strconv.Itoa(port))
	if m.hasNum {
		b.WriteString("/" + strconv.Itoa(m.num))
	}
	b.WriteString(" " + proto)
	for _, f := range formats {
		b.WriteString(" " + f)
	}
	return b.String()
}

// bytes joins the output lines. A line without a line ending (the input's
// last line) that is no longer last gets the document's usual one.
func (r *rewrite) bytes() []byte {
	var b bytes.Buffer
	n := len(r.d.tail)
	for _, ol := range r.out {
		n += len(ol.text) + len(ol.eol) + len(r.d.eol)
	}
	b.Grow(n)
	for k, ol := range r.out {
		b.WriteString(ol.text)
		if k < len(r.out)-1 && !strings.HasSuffix(ol.eol, "\n") {
			b.WriteString(r.d.eol)
		} else {
			b.WriteString(ol.eol)
		}
	}
	b.WriteString(r.d.tail)
	return b.Bytes()
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
