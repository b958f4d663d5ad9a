// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

// The seed corpora live in testdata/fuzz/FuzzParse and testdata/fuzz/FuzzRewrite
// (every example SDP, the latter with a few plan seeds each).

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("Parse error %v does not wrap ErrParse", err)
			}
			return
		}
		out, err := d.Rewrite(d.KeepPlan())
		if err != nil {
			t.Fatalf("Rewrite(KeepPlan()) = %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("no-op rewrite changed the SDP\n got %q\nwant %q", out, in)
		}
		for i := -1; i <= len(d.Media); i++ {
			d.Endpoint(i)
			d.RTCPEndpoint(i)
		}
		d.HasICE()
		if !EqualIgnoringOrigin(in, out) {
			t.Fatalf("EqualIgnoringOrigin(x, x) = false for %q", in)
		}
	})
}

func FuzzRewrite(f *testing.F) {
	f.Fuzz(func(t *testing.T, in, seed []byte) {
		d, err := Parse(in)
		if err != nil {
			return
		}
		p := planFromBytes(d, seed)
		out, err := d.Rewrite(p)
		if err != nil {
			if !errors.Is(err, ErrPlan) {
				t.Fatalf("Rewrite error %v does not wrap ErrPlan", err)
			}
			return
		}
		if again, err := d.Rewrite(p); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second Rewrite = %q, %v; want %q", again, err, out)
		}
		if len(out) > MaxSize {
			return
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("output does not parse: %v\n in %q\nout %q", err, in, out)
		}
		if len(d2.Media) != len(d.Media) {
			t.Fatalf("output has %d media, input %d", len(d2.Media), len(d.Media))
		}
		checkApplied(t, p, d2, out)
		if keep, err := d2.Rewrite(d2.KeepPlan()); err != nil || !bytes.Equal(keep, out) {
			t.Fatalf("no-op rewrite of the output = %q, %v; want %q", keep, err, out)
		}
	})
}

// checkApplied verifies that the parsed output says what the plan asked for.
func checkApplied(t *testing.T, p Plan, d *Description, out []byte) {
	t.Helper()
	wantICE := false
	for i, mp := range p.Media {
		m := d.Media[i]
		wantPort := mp.Port
		if mp.Reject {
			wantPort = 0
		}
		if m.Port != wantPort {
			t.Fatalf("media %d port = %d, want %d\n%q", i, m.Port, wantPort, out)
		}
		if wantMux := mp.RTCPMux && !mp.Reject; !wantMux && m.RTCPMux {
			t.Fatalf("media %d still has a=rtcp-mux\n%q", i, out)
		} else if wantMux && !m.RTCPMux {
			t.Fatalf("media %d has no a=rtcp-mux\n%q", i, out)
		}
		if (mp.Reject || mp.RTCP.Omit) && m.RTCP != nil {
			t.Fatalf("media %d still has a=rtcp\n%q", i, out)
		}
		if !mp.Reject && !mp.RTCP.Omit && mp.RTCP.Port > 0 && (m.RTCP == nil || m.RTCP.Port != mp.RTCP.Port) {
			t.Fatalf("media %d a=rtcp = %+v, want port %d\n%q", i, m.RTCP, mp.RTCP.Port, out)
		}
		if mp.Direction != "" && m.Direction != mp.Direction {
			t.Fatalf("media %d direction = %q, want %q\n%q", i, m.Direction, mp.Direction, out)
		}
		if mp.Proto != "" && m.Proto != mp.Proto {
			t.Fatalf("media %d proto = %q, want %q\n%q", i, m.Proto, mp.Proto, out)
		}
		ap, ok := d.Endpoint(i)
		switch {
		case mp.Reject:
			// A rejected media may keep using the session c=.
		case mp.ZeroAddress:
			if !ok || !ap.Addr().IsUnspecified() {
				t.Fatalf("media %d endpoint = %v, %v; want a zero address\n%q", i, ap, ok, out)
			}
		case mp.Addr.IsValid():
			if !ok || ap.Addr() != mp.Addr {
				t.Fatalf("media %d endpoint = %v, %v; want address %v\n%q", i, ap, ok, mp.Addr, out)
			}
		}
		if mp.ICE != nil && !mp.Reject {
			wantICE = true
			if !m.ICE {
				t.Fatalf("media %d has no ICE\n%q", i, out)
			}
		} else if (mp.Reject || p.RemoveICE) && m.ICE {
			t.Fatalf("media %d still has ICE\n%q", i, out)
		}
	}
	if p.RemoveICE && d.HasICE() != wantICE {
		t.Fatalf("HasICE() = %v, want %v\n%q", d.HasICE(), wantICE, out)
	}
}

// byteSource hands out fuzz bytes, zeros once they run out.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) port() int { return int(s.next())<<8 | int(s.next()) }

func (s *byteSource) pick(list []string) string { return list[int(s.next())%len(list)] }

var fuzzAddrs = []netip.Addr{
	{},
	netip.MustParseAddr("192.0.2.1"),
	netip.MustParseAddr("2001:db8::1"),
	netip.IPv4Unspecified(),
	netip.IPv6Unspecified(),
	netip.MustParseAddr("::ffff:192.0.2.2"),
	netip.MustParseAddr("10.0.1.1"),
	netip.MustParseAddr("fe80::1%eth0"), // rejected: zones cannot be written to SDP
}

func (s *byteSource) addr() netip.Addr { return fuzzAddrs[int(s.next())%len(fuzzAddrs)] }

// planFromBytes derives a plan from fuzz bytes, starting from the no-op plan.
// Some choices are invalid on purpose, to exercise the ErrPlan paths.
func planFromBytes(d *Description, seed []byte) Plan {
	s := &byteSource{b: seed}
	p := d.KeepPlan()
	flags := s.next()
	p.RemoveICE = flags&1 != 0
	if flags&2 != 0 {
		p.SessionName = s.pick([]string{"relayd", "-", "a b", "bad\r\nname"})
	}
	if flags&4 != 0 {
		p.Origin = OriginPlan{
			Username:  s.pick([]string{"", "relayd", "a b"}),
			SessionID: s.pick([]string{"", "1234"}),
			Version:   s.pick([]string{"", "2", "3\n"}),
			Addr:      s.addr(),
		}
	}
	if flags&8 != 0 {
		p.SessionConnection = s.addr()
	}
	if flags&16 != 0 {
		p.AddSessionAttributes = []string{s.pick([]string{"rtpengine:abc", "tool:relayd", "", "x\ny"})}
	}
	if flags&32 != 0 {
		p.RemoveSessionAttributes = []string{"group", "ice-lite", "msid-semantic", "sendrecv"}
	}
	for i := range p.Media {
		mp := &p.Media[i]
		f, g := s.next(), s.next()
		mp.Reject = f&1 != 0
		mp.ZeroAddress = f&2 != 0
		mp.RTCPMux = f&4 != 0
		if f&8 != 0 {
			mp.Port = s.port()
		}
		if f&16 != 0 {
			mp.Addr = s.addr()
		}
		if f&32 != 0 {
			mp.RTCP = RTCPPlan{Omit: g&1 != 0, Port: s.port(), Full: g&2 != 0, Addr: s.addr()}
		}
		if f&64 != 0 {
			mp.Direction = s.pick([]string{"sendrecv", "sendonly", "recvonly", "inactive", "bogus"})
		}
		if f&128 != 0 {
			mp.ICE = &ICEPlan{
				Ufrag: s.pick([]string{"Fz8kQ2xa", "", "a b"}), Pwd: "3Jd0Xk2mQa9Lr7Tz5Wb1Yc4Ve6",
				Trickle: g&4 != 0, EndOfCandidates: g&8 != 0,
				Candidates: []string{s.pick([]string{
					"candidate:1 1 UDP 2130706431 192.0.2.1 3000 typ host", "1 1 UDP 1 192.0.2.1 1 typ host",
				})},
			}
		}
		if g&16 != 0 {
			mp.Proto = s.pick([]string{"RTP/AVP", "UDP/TLS/RTP/SAVPF", "RTP/AVP 0", ""})
		}
		if formats := d.sects[i].m.formats; g&32 != 0 {
			mp.RemoveFormats = formats[:int(s.next())%(len(formats)+1)]
		}
		if g&64 != 0 {
			mp.RemoveAttributes = []string{"fingerprint", "setup", "rtcp", "mid", "rtpmap"}
		}
		if g&128 != 0 {
			mp.AddAttributes = []string{s.pick([]string{"setup:active", "ptime:20", "rtcp:9", "sendonly", "x\ny"})}
		}
	}
	return p
}
