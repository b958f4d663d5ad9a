// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// fuzzSeeds are well-formed frames to the fuzz rules and their near misses;
// testdata/fuzz/FuzzProgram holds the same as a committed corpus.
func fuzzSeeds() [][]byte {
	rtp := rtpPacket(0, 7, 1120, 0xabc, 32)
	var out [][]byte
	for _, eps := range []endpoints{eps4, eps6} {
		base := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps.alice, dst: eps.relayIn, ttl: 50, payload: rtp}
		variants := []func(f *frame){
			func(*frame) {},
			func(f *frame) { f.zeroCsum = true },
			func(f *frame) { f.payload = stunBinding() },
			func(f *frame) { f.payload = rtcpRR(1) },
			func(f *frame) { f.pad = 6 },
			func(f *frame) { f.moreFrags = true; f.v6HasExt = true; f.v6Ext = 44 },
			func(f *frame) { f.ipOptions = true },
			func(f *frame) { f.udpLenAdj = 3 },
			func(f *frame) { f.dst = netip.AddrPortFrom(f.dst.Addr(), 40001) }, // redirect rule
		}
		for _, v := range variants {
			f := base
			v(&f)
			out = append(out, f.build())
		}
	}
	return out
}

// FuzzProgram runs arbitrary frames through the program with rules for the
// test addresses installed and checks its contract: PASS leaves the frame
// untouched; DROP only for an IPv6 UDP zero checksum; a forwarded frame has
// the rule's addresses, ports and MACs, TTL 64, a valid IPv4 header
// checksum, and a valid UDP checksum whenever the input's was valid (a zero
// IPv4 one stays zero); nothing else changes.
func FuzzProgram(f *testing.F) {
	// The IPv4 rules are found through a plane, the IPv6 ones through the
	// shared table.
	d := openTest(f, Options{LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
	if err := d.objs.TxPorts.Put(uint32(testTxPort), uint32(1)); err != nil {
		f.Fatal(err)
	}
	rules := map[netip.AddrPort]Rule{}
	for _, eps := range []endpoints{eps4, eps6} {
		r := Rule{
			Local: eps.relayIn, Peer: eps.alice, Source: eps.relayOut, Dest: eps.bob,
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
			TOS:     184, Flags: allChecks | FlagSetTOS, ClockRate: 8000,
		}
		r2 := r
		r2.Local = netip.AddrPortFrom(r.Local.Addr(), 40001)
		r2.NextHop.Ifindex = testTxPort
		r2.Flags = FlagRTPCheck // any source
		for _, r := range []Rule{r, r2} {
			if err := d.UpsertRule(r); err != nil {
				f.Fatal(err)
			}
			rules[r.Local] = r
		}
	}
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 1514 {
			return // the kernel refuses such test frames
		}
		action, out := run(t, d.objs.RelayXdp, in)
		switch action {
		case xdpPass:
			if !bytes.Equal(out, in) {
				t.Fatalf("PASS changed the frame\n in: %x\nout: %x", in, out)
			}
		case xdpDrop:
			p, ok := parseFrame(in)
			if !ok || p.v4 || p.csum != 0 {
				t.Fatalf("DROP of a frame that is not IPv6 UDP with a zero checksum: %x", in)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("DROP changed the frame")
			}
		case xdpTX, xdpRedirect:
			checkForwarded(t, rules, in, out, action)
		default:
			t.Fatalf("action %d (%s) for %x", action, actionNames[action], in)
		}
	})
}

// parsed is what the fuzz checks need of a plain Ethernet/IP/UDP frame.
type parsed struct {
	v4       bool
	ipOff    int // IP header offset (14)
	udpOff   int
	udpLen   int
	src, dst netip.AddrPort
	csum     uint16
	csumOK   bool // the UDP checksum verifies from scratch
}

// parseFrame parses frames the program may forward: IPv4 without options
// or IPv6 without extension headers, carrying UDP that fits the frame.
func parseFrame(b []byte) (parsed, bool) {
	var p parsed
	if len(b) < 14 {
		return p, false
	}
	p.ipOff = 14
	switch binary.BigEndian.Uint16(b[12:]) {
	case 0x0800:
		if len(b) < 14+20+8 || b[14] != 0x45 || b[14+9] != protoUDP {
			return p, false
		}
		p.v4 = true
		p.udpOff = 14 + 20
		p.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[26:30])), binary.BigEndian.Uint16(b[34:]))
		p.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[30:34])), binary.BigEndian.Uint16(b[36:]))
	case 0x86dd:
		if len(b) < 14+40+8 || b[14]>>4 != 6 || b[14+6] != protoUDP {
			return p, false
		}
		p.udpOff = 14 + 40
		p.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[22:38])), binary.BigEndian.Uint16(b[54:]))
		p.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[38:54])), binary.BigEndian.Uint16(b[56:]))
	default:
		return p, false
	}
	p.udpLen = int(binary.BigEndian.Uint16(b[p.udpOff+4:]))
	if p.udpLen < 8 || p.udpOff+p.udpLen > len(b) {
		return p, false
	}
	p.csum = binary.BigEndian.Uint16(b[p.udpOff+6:])
	seg := b[p.udpOff : p.udpOff+p.udpLen]
	p.csumOK = p.csum != 0 && udpChecksum(p.src.Addr(), p.dst.Addr(), seg) == p.csum
	return p, true
}

func checkForwarded(t *testing.T, rules map[netip.AddrPort]Rule, in, out []byte, action uint32) {
	t.Helper()
	pi, ok := parseFrame(in)
	if !ok {
		t.Fatalf("forwarded a frame the program should not understand: %x", in)
	}
	r, ok := rules[pi.dst]
	if !ok {
		t.Fatalf("forwarded a frame to %v, which has no rule: %x", pi.dst, in)
	}
	if wantTX := r.NextHop.Ifindex == ingressIfindex; wantTX != (action == xdpTX) {
		t.Fatalf("action %s for a rule with egress %d", actionNames[action], r.NextHop.Ifindex)
	}
	if len(out) != len(in) {
		t.Fatalf("forwarded frame of %d bytes, input %d", len(out), len(in))
	}
	po, ok := parseFrame(out)
	if !ok {
		t.Fatalf("forwarded frame does not parse: %x", out)
	}
	if po.src != r.Source || po.dst != r.Dest || !bytes.Equal(out[0:6], r.NextHop.DstMAC) || !bytes.Equal(out[6:12], r.NextHop.SrcMAC) {
		t.Fatalf("forwarded %v -> %v (MACs %x), want %v -> %v\n in: %x\nout: %x", po.src, po.dst, out[:12], r.Source, r.Dest, in, out)
	}
	if pi.v4 {
		if ttl := out[14+8]; ttl != RelayTTL {
			t.Fatalf("TTL %d", ttl)
		}
		if onesSum(0, out[14:34]) != 0xffff {
			t.Fatalf("invalid IPv4 header checksum: %x", out[14:34])
		}
		wantTOS := in[15]
		if r.Flags&FlagSetTOS != 0 {
			wantTOS = r.TOS
		}
		if out[15] != wantTOS {
			t.Fatalf("TOS %d, want %d", out[15], wantTOS)
		}
	} else if hl := out[14+7]; hl != RelayTTL {
		t.Fatalf("hop limit %d", hl)
	}
	switch {
	case pi.v4 && pi.csum == 0:
		if po.csum != 0 {
			t.Fatalf("zero IPv4 UDP checksum became %#04x", po.csum)
		}
	case pi.csumOK && !po.csumOK:
		t.Fatalf("valid UDP checksum %#04x became invalid %#04x\n in: %x\nout: %x", pi.csum, po.csum, in, out)
	}
	// Only the rewritten fields may differ: compare with them copied over.
	want := append([]byte(nil), in...)
	copy(want[0:12], out[0:12])
	if pi.v4 {
		copy(want[15:16], out[15:16]) // TOS
		copy(want[22:24], out[22:24]) // TTL, protocol
		copy(want[24:34], out[24:34]) // checksum, addresses
	} else {
		copy(want[14:16], out[14:16]) // traffic class
		copy(want[21:54], out[21:54]) // hop limit, addresses
	}
	copy(want[pi.udpOff:pi.udpOff+4], out[pi.udpOff:pi.udpOff+4])
	copy(want[pi.udpOff+6:pi.udpOff+8], out[pi.udpOff+6:pi.udpOff+8])
	if !bytes.Equal(want, out) {
		t.Fatalf("forwarding changed more than headers\n in: %x\nout: %x", in, out)
	}
}
