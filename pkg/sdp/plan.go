// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Plan says what Rewrite changes. Its zero values mean "keep": a plan from
// KeepPlan, or one that leaves a field empty, reproduces that part of the
// input byte for byte.
type Plan struct {
	Origin OriginPlan // empty fields = keep
	// SessionName, when non-empty, replaces the s= value (s= is inserted after
	// o= when the input has none).
	SessionName string
	// SessionConnection: when the SDP has a session-level c=, it is rewritten
	// to this address (AddrType derived from the address family). An invalid
	// address keeps the line.
	SessionConnection netip.Addr
	// RemoveICE strips the ICE attributes at session level and in every media.
	RemoveICE bool
	// AddSessionAttributes are appended, as "a=<value>", after the last
	// session-level a= line (or after the last session-level line, normally
	// t=), e.g. "rtpengine:abc".
	AddSessionAttributes []string
	// RemoveSessionAttributes names session-level attributes to drop, e.g.
	// "group" for a BUNDLE group the relay does not keep.
	RemoveSessionAttributes []string
	// Media has one entry per m= section of the description, in order.
	Media []MediaPlan
}

// OriginPlan changes the o= line; empty fields (and an invalid Addr) keep
// the original value.
type OriginPlan struct {
	Username, SessionID, Version string
	Addr                         netip.Addr
}

// MediaPlan says what happens to one m= section.
type MediaPlan struct {
	// Reject sets the m= port to 0 and drops a=rtcp, a=rtcp-mux and the ICE
	// attributes of this media; a media c= (if any) is still rewritten, and
	// one is inserted only when the SDP has no session c= either.
	Reject bool
	// Port is the m= port (a "/<num>" suffix is kept if it was there).
	Port int
	// Addr is the advertised address: the media-level c= is rewritten to it,
	// or a c= is inserted right after the m= line (after i= if present) when
	// the media has no c= and the session c= address (after rewrite) differs
	// or is absent. An invalid Addr keeps the media's c= as it is.
	Addr netip.Addr
	// ZeroAddress keeps a hold with 0.0.0.0 or ::: the zero address of Addr's
	// family (of the original address when Addr is invalid) is printed in this
	// media's c=, and in the session c= when that one was zero and this media
	// uses it, instead of Addr.
	ZeroAddress bool
	RTCP        RTCPPlan
	// RTCPMux true ensures a=rtcp-mux is present (appended if absent); false
	// removes it.
	RTCPMux bool
	// Direction, when non-empty, replaces this media's direction attribute
	// (extra ones are dropped), or is appended if the media has none.
	Direction string
	// ICE, when non-nil, strips this media's and the session-level ICE
	// attributes and appends the relay's own (ignored for a rejected media).
	ICE *ICEPlan
	// Proto, when non-empty, replaces the m= proto field.
	Proto string
	// RemoveFormats are payload types (m= formats) to drop from the m= line,
	// with their a=rtpmap, a=fmtp and a=rtcp-fb lines. At least one format
	// must remain.
	RemoveFormats []string
	// Formats, when non-nil, is the m= line's format list in this order:
	// input formats it leaves out go as with RemoveFormats, and formats the
	// input lacks need their a=rtpmap/a=fmtp lines in FormatAttributes.
	Formats []string
	// FormatAttributes are appended as "a=<value>" after the media's last
	// a=rtpmap, a=fmtp or a=rtcp-fb line (after its last attribute when it
	// has none): the codecs the relay adds, e.g. "rtpmap:96
	// telephone-event/8000" and "fmtp:96 0-15".
	FormatAttributes []string
	// OwnFormatLines drops every a=rtpmap, a=fmtp and a=rtcp-fb line of the
	// input: FormatAttributes are the media's only ones (an answer whose
	// codecs are the relay's choice, not the answerer's, whose payload
	// types may mean other codecs).
	OwnFormatLines bool
	// PTime, when non-zero, rewrites a=ptime (appending it if absent).
	PTime int
	// RemoveAttributes names further attributes of this media to drop, e.g.
	// "fingerprint" and "setup" when the relay terminates DTLS. The attributes
	// managed by the other fields (rtcp, rtcp-mux, direction and ICE ones) are
	// ignored here.
	RemoveAttributes []string
	// AddAttributes are appended as "a=<value>" after the direction, a=rtcp
	// and a=rtcp-mux lines and before the ICE lines, e.g. the relay's own
	// "setup:actpass" and "fingerprint:sha-256 ..." lines. They may not be
	// attributes managed by the other fields.
	AddAttributes []string
}

// RTCPPlan changes the a=rtcp line of a media.
type RTCPPlan struct {
	// Omit removes any a=rtcp line.
	Omit bool
	// Port, when non-zero, is written as a=rtcp:<Port>: an existing a=rtcp line
	// is rewritten in place, else one is appended after the media's last
	// attribute line. Zero keeps whatever is there.
	Port int
	// Full writes "a=rtcp:<Port> IN IP4 <addr>"; the full form is also kept
	// when the original line had it.
	Full bool
	// Addr is the address of the full form; when invalid, the address printed
	// in the media's c= is used (falling back to the original a=rtcp address).
	Addr netip.Addr
}

// ICEPlan is the relay's own ICE description for one media.
type ICEPlan struct {
	Ufrag, Pwd string
	// Trickle adds a=ice-options:trickle.
	Trickle bool
	// Candidates are the values after "a=", e.g.
	// "candidate:1 1 UDP 2130706431 1.2.3.4 3000 typ host".
	Candidates []string
	// EndOfCandidates appends a=end-of-candidates after the candidates, which
	// a trickle agent that knows all its candidates up front should send.
	EndOfCandidates bool
}

// KeepPlan returns the plan that reproduces d byte for byte: every media keeps
// its port, address, a=rtcp and a=rtcp-mux. It is also a convenient base for
// a plan that changes only a few things.
func (d *Description) KeepPlan() Plan {
	var p Plan
	if d.sess.conn >= 0 {
		p.SessionConnection = d.lines[d.sess.conn].conn.Addr
	}
	p.Media = make([]MediaPlan, len(d.sects))
	for i, sec := range d.sects {
		mp := MediaPlan{Port: sec.m.port}
		switch {
		case sec.conn >= 0:
			mp.Addr = d.lines[sec.conn].conn.Addr
		case d.sess.conn >= 0:
			mp.Addr = p.SessionConnection
		}
		if sec.rtcp >= 0 {
			ln := d.lines[sec.rtcp]
			mp.RTCP = RTCPPlan{Port: ln.port, Full: ln.hasConn}
			if ln.hasConn {
				mp.RTCP.Addr = ln.conn.Addr
			}
		}
		for j := sec.first; j <= sec.last; j++ {
			if d.lines[j].typ == 'a' && d.lines[j].attr == "rtcp-mux" {
				mp.RTCPMux = true
				break
			}
		}
		p.Media[i] = mp
	}
	return p
}

func planErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPlan, fmt.Sprintf(format, args...))
}

// checkValue rejects values that would end or corrupt the line they are
// written to, so that the output always parses again.
func checkValue(what, v string, allowSpace bool) error {
	if v == "" {
		return planErr("%s is empty", what)
	}
	bad := "\r\n\x00"
	if !allowSpace {
		bad += " \t"
	}
	if strings.ContainsAny(v, bad) {
		return planErr("%s %q contains a forbidden character", what, clip(v))
	}
	return nil
}

func checkAddr(what string, a netip.Addr) error {
	if a.Zone() != "" {
		return planErr("%s %s has a zone", what, a)
	}
	return nil
}

func checkPort(what string, port int) error {
	if port < 0 || port > 65535 {
		return planErr("%s %d out of range", what, port)
	}
	return nil
}

func (d *Description) checkPlan(p *Plan) error {
	if len(p.Media) != len(d.sects) {
		return planErr("plan has %d media, SDP has %d", len(p.Media), len(d.sects))
	}
	o := p.Origin
	for _, f := range []struct{ what, v string }{
		{"origin username", o.Username}, {"origin session id", o.SessionID}, {"origin version", o.Version},
	} {
		if f.v == "" {
			continue
		}
		if err := checkValue(f.what, f.v, false); err != nil {
			return err
		}
	}
	if err := checkAddr("origin address", o.Addr); err != nil {
		return err
	}
	if p.SessionName != "" {
		if err := checkValue("session name", p.SessionName, true); err != nil {
			return err
		}
	}
	if err := checkAddr("session connection", p.SessionConnection); err != nil {
		return err
	}
	for _, a := range p.AddSessionAttributes {
		if err := checkValue("session attribute", a, true); err != nil {
			return err
		}
	}
	for i := range p.Media {
		if err := d.checkMediaPlan(i, &p.Media[i]); err != nil {
			return fmt.Errorf("media %d: %w", i, err)
		}
	}
	return nil
}

func (d *Description) checkMediaPlan(i int, mp *MediaPlan) error {
	if err := checkPort("port", mp.Port); err != nil {
		return err
	}
	if err := checkPort("rtcp port", mp.RTCP.Port); err != nil {
		return err
	}
	if err := checkAddr("address", mp.Addr); err != nil {
		return err
	}
	if err := checkAddr("rtcp address", mp.RTCP.Addr); err != nil {
		return err
	}
	if mp.Direction != "" && !isDirection(mp.Direction) {
		return planErr("unknown direction %q", clip(mp.Direction))
	}
	if mp.Proto != "" {
		if err := checkValue("proto", mp.Proto, false); err != nil {
			return err
		}
	}
	if mp.Formats != nil {
		if len(mp.Formats) == 0 {
			return planErr("empty format list")
		}
		for _, f := range mp.Formats {
			if err := checkValue("format", f, false); err != nil {
				return err
			}
		}
	} else if len(mp.RemoveFormats) > 0 {
		left := 0
		for _, f := range d.sects[i].m.formats {
			if !slices.Contains(mp.RemoveFormats, f) {
				left++
			}
		}
		if left == 0 {
			return planErr("removing formats %v leaves none", mp.RemoveFormats)
		}
	}
	for _, a := range mp.FormatAttributes {
		if err := checkValue("format attribute", a, true); err != nil {
			return err
		}
	}
	if mp.PTime < 0 || mp.PTime > 1000 {
		return planErr("ptime %d", mp.PTime)
	}
	for _, a := range mp.AddAttributes {
		if err := checkValue("attribute", a, true); err != nil {
			return err
		}
		name, _, _ := strings.Cut(a, ":")
		if managed(name) {
			return planErr("attribute %q is managed by its own plan field", clip(name))
		}
	}
	if ice := mp.ICE; ice != nil {
		if err := checkValue("ice ufrag", ice.Ufrag, false); err != nil {
			return err
		}
		if err := checkValue("ice pwd", ice.Pwd, false); err != nil {
			return err
		}
		for _, c := range ice.Candidates {
			if err := checkValue("candidate", c, true); err != nil {
				return err
			}
			if !strings.HasPrefix(c, "candidate:") {
				return planErr("candidate %q does not start with \"candidate:\"", clip(c))
			}
		}
	}
	return nil
}

// drops tells whether format f of the input leaves the m= line.
func (mp *MediaPlan) drops(f string) bool {
	if mp.Formats != nil {
		return !slices.Contains(mp.Formats, f)
	}
	return slices.Contains(mp.RemoveFormats, f)
}

// managed reports the media attributes that dedicated plan fields control.
func managed(attr string) bool {
	return attr == "rtcp" || attr == "rtcp-mux" || isDirection(attr) || isICE(attr)
}
