// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// XDP actions (enum xdp_action).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var actionNames = map[uint32]string{0: "ABORTED", 1: "DROP", 2: "PASS", 3: "TX", 4: "REDIRECT"}

// In BPF_PROG_TEST_RUN the ingress interface is the loopback device
// (ifindex 1 in every namespace). Egress 1 is therefore XDP_TX; testTxPort
// is put in the devmap (pointing at lo, which exists) to get XDP_REDIRECT;
// notAttached is not in it.
const (
	ingressIfindex = 1
	testTxPort     = 7
	notAttached    = 9
)

var (
	macAlice = net.HardwareAddr{0x02, 0, 0, 0, 0xa1, 0x01}
	macRelay = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x01}
	macOut   = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x02}
	macBob   = net.HardwareAddr{0x02, 0, 0, 0, 0xb0, 0x01}
)

// endpoints of one family: alice sends to relayIn, the relay sends from
// relayOut to bob.
type endpoints struct{ alice, relayIn, relayOut, bob netip.AddrPort }

var (
	eps4 = endpoints{
		alice:    netip.MustParseAddrPort("192.0.2.10:30000"),
		relayIn:  netip.MustParseAddrPort("198.51.100.1:40000"),
		relayOut: netip.MustParseAddrPort("203.0.113.1:40002"),
		bob:      netip.MustParseAddrPort("203.0.113.77:50000"),
	}
	eps6 = endpoints{
		alice:    netip.MustParseAddrPort("[2001:db8:a::10]:30000"),
		relayIn:  netip.MustParseAddrPort("[2001:db8:1::1]:40000"),
		relayOut: netip.MustParseAddrPort("[2001:db8:2::1]:40002"),
		bob:      netip.MustParseAddrPort("[2001:db8:b::77]:50000"),
	}
)

const allChecks = FlagCheckSource | FlagRTPCheck

// TestProgram runs every case twice: with the relay's addresses as planes
// (entries by port) and without (the shared table), the two ways a packet
// finds its rule.
func TestProgram(t *testing.T) {
	for _, layout := range []struct {
		name   string
		planes []netip.Addr
	}{
		{"plane", []netip.Addr{eps4.relayIn.Addr(), eps6.relayIn.Addr()}},
		{"shared", nil},
	} {
		t.Run(layout.name, func(t *testing.T) { testProgram(t, openTest(t, Options{LocalAddrs: layout.planes})) })
	}
}

func testProgram(t *testing.T, d *Datapath) {
	if err := d.objs.TxPorts.Put(uint32(testTxPort), uint32(1)); err != nil {
		t.Fatalf("devmap: %v", err)
	}
	rtp := rtpPacket(0, 1000, 160000, 0x11223344, 160)

	type tc struct {
		name    string
		flags   Flags
		tos     uint8
		ifindex int            // rule's egress; 0 means ingressIfindex, -1 means none
		noRule  bool           // install no rule
		in      func(f *frame) // edits the input frame (alice -> relayIn, RTP)
		out     func(f *frame) // edits the expected output (default rewrite); nil: unchanged
		action  uint32
		reason  Reason
		// forwarded payload: stats counted; isRTP/isRTCP select the RTP fields.
		isRTP, isRTCP bool
		// zeroSum tunes the payload so the output's UDP checksum computes
		// to zero, which must be sent as 0xffff.
		zeroSum bool
	}
	same := func(*frame) {}
	tests := []tc{
		{name: "forward_tx", flags: allChecks, in: same, out: same, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "forward_redirect", flags: allChecks, ifindex: testTxPort, in: same, out: same, action: xdpRedirect, reason: ReasonRedirect, isRTP: true},
		{name: "no_rule", flags: allChecks, noRule: true, in: same, action: xdpPass, reason: ReasonNoRule},
		{name: "other_local_port", flags: allChecks, in: func(f *frame) { f.dst = netip.AddrPortFrom(f.dst.Addr(), 40010) }, action: xdpPass, reason: ReasonNoRule},
		{name: "wrong_source_port", flags: allChecks, in: func(f *frame) { f.src = netip.AddrPortFrom(f.src.Addr(), 30001) }, action: xdpPass, reason: ReasonWrongSource},
		{name: "wrong_source_addr", flags: allChecks, in: func(f *frame) { f.src = netip.AddrPortFrom(f.src.Addr().Next(), 30000) }, action: xdpPass, reason: ReasonWrongSource},
		{name: "no_source_check", flags: FlagRTPCheck, in: func(f *frame) { f.src = netip.AddrPortFrom(f.src.Addr().Next(), 30001) }, out: same, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "stun", flags: allChecks, in: func(f *frame) { f.payload = stunBinding() }, action: xdpPass, reason: ReasonNotRTP},
		{name: "dtls", flags: allChecks, in: func(f *frame) { f.payload = dtlsRecord() }, action: xdpPass, reason: ReasonNotRTP},
		{name: "short_payload", flags: allChecks, in: func(f *frame) { f.payload = []byte{0x80, 0, 0, 1} }, action: xdpPass, reason: ReasonNotRTP},
		{name: "empty_payload", flags: allChecks, in: func(f *frame) { f.payload = nil }, action: xdpPass, reason: ReasonNotRTP},
		{name: "stun_without_rtp_check", flags: FlagCheckSource, in: func(f *frame) { f.payload = stunBinding() }, out: same, action: xdpTX, reason: ReasonTX},
		{name: "rtcp", flags: allChecks, in: func(f *frame) { f.payload = rtcpRR(0x11223344) }, out: same, action: xdpTX, reason: ReasonTX, isRTCP: true},
		// relayd's rules send RTCP to the userspace loop, which reads the
		// reports for call quality; RTP still leaves in the kernel.
		{name: "rtcp_pass", flags: allChecks | FlagRTCPPass, in: func(f *frame) { f.payload = rtcpRR(0x11223344) }, action: xdpPass, reason: ReasonRTCP},
		{name: "rtcp_pass_rtp", flags: allChecks | FlagRTCPPass, in: same, out: same, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "set_tos", flags: allChecks | FlagSetTOS, tos: 184, in: same, out: func(f *frame) { f.tos = 184 }, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "keep_tos", flags: allChecks, tos: 184, in: func(f *frame) { f.tos = 0x28 }, out: func(f *frame) { f.tos = 0x28 }, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "ttl_reset", flags: allChecks, in: func(f *frame) { f.ttl = 3 }, out: same, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "ethernet_padding", flags: allChecks, in: func(f *frame) { f.payload = rtcpRR(1); f.pad = 8 }, out: func(f *frame) { f.pad = 8 }, action: xdpTX, reason: ReasonTX, isRTCP: true},
		{name: "udp_length_beyond_frame", flags: allChecks, in: func(f *frame) { f.udpLenAdj = 4; f.truncate = 4 }, action: xdpPass, reason: ReasonTruncated},
		{name: "udp_length_short", flags: allChecks, in: func(f *frame) { f.udpLenAdj = -2 }, action: xdpPass, reason: ReasonTruncated},
		{name: "cut_in_udp_header", flags: allChecks, in: func(f *frame) { f.payload = nil; f.truncate = 4 }, action: xdpPass, reason: ReasonTruncated},
		{name: "cut_in_payload", flags: allChecks, in: func(f *frame) { f.truncate = 100 }, action: xdpPass, reason: ReasonTruncated},
		{name: "no_nexthop", flags: allChecks, ifindex: -1, in: same, action: xdpPass, reason: ReasonNoNextHop},
		{name: "egress_not_attached", flags: allChecks, ifindex: notAttached, in: same, action: xdpPass, reason: ReasonNoNextHop},
		{name: "tcp", flags: allChecks, in: func(f *frame) { f.protocol = protoTCP }, action: xdpPass, reason: ReasonNotUDP},
		{name: "arp", flags: allChecks, in: func(f *frame) { f.etherType = 0x0806 }, action: xdpPass, reason: ReasonNotIP},
		{name: "vlan", flags: allChecks, in: func(f *frame) { f.etherType = 0x8100 }, action: xdpPass, reason: ReasonNotIP},
		{name: "checksum_result_0xffff", flags: allChecks, zeroSum: true, in: same, out: same, action: xdpTX, reason: ReasonTX, isRTP: true},
	}
	v4only := []tc{
		{name: "ip_options", flags: allChecks, in: func(f *frame) { f.ipOptions = true }, action: xdpPass, reason: ReasonIPOptions},
		{name: "fragment_first", flags: allChecks, in: func(f *frame) { f.moreFrags = true }, action: xdpPass, reason: ReasonFragment},
		{name: "fragment_last", flags: allChecks, in: func(f *frame) { f.fragOff = 185 }, action: xdpPass, reason: ReasonFragment},
		{name: "zero_checksum_kept", flags: allChecks, in: func(f *frame) { f.zeroCsum = true }, out: func(f *frame) { f.zeroCsum = true }, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "cut_in_ip_header", flags: allChecks, in: func(f *frame) { f.payload = nil; f.truncate = 8 + 4 }, action: xdpPass, reason: ReasonTruncated},
	}
	v6only := []tc{
		{name: "zero_checksum_dropped", flags: allChecks, in: func(f *frame) { f.zeroCsum = true }, action: xdpDrop, reason: ReasonZeroCsum6},
		{name: "hop_by_hop", flags: allChecks, in: func(f *frame) { f.v6HasExt = true; f.v6Ext = 0 }, action: xdpPass, reason: ReasonIPv6Ext},
		{name: "fragment_header", flags: allChecks, in: func(f *frame) { f.v6HasExt = true; f.v6Ext = 44; f.moreFrags = true }, action: xdpPass, reason: ReasonFragment},
		{name: "flow_label_kept", flags: allChecks | FlagSetTOS, tos: 0xb8, in: func(f *frame) { f.flowLabel = 0xabcde }, out: func(f *frame) { f.flowLabel = 0xabcde; f.tos = 0xb8 }, action: xdpTX, reason: ReasonTX, isRTP: true},
		{name: "cut_in_ip_header", flags: allChecks, in: func(f *frame) { f.payload = nil; f.truncate = 8 + 20 }, action: xdpPass, reason: ReasonTruncated},
	}

	for _, fam := range []struct {
		name string
		eps  endpoints
		only []tc
	}{{"ipv4", eps4, v4only}, {"ipv6", eps6, v6only}} {
		for _, tt := range append(append([]tc(nil), tests...), fam.only...) {
			t.Run(fam.name+"/"+tt.name, func(t *testing.T) {
				eps := fam.eps
				ifindex := tt.ifindex
				switch ifindex {
				case 0:
					ifindex = ingressIfindex
				case -1:
					ifindex = 0
				}
				rule := Rule{
					Local: eps.relayIn, Peer: eps.alice, Source: eps.relayOut, Dest: eps.bob,
					NextHop: NextHop{Ifindex: ifindex, SrcMAC: macOut, DstMAC: macBob},
					TOS:     tt.tos, Flags: tt.flags,
				}
				if ifindex == 0 {
					rule.NextHop = NextHop{}
				}
				if !tt.noRule {
					mustUpsert(t, d, rule)
				}

				inF := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps.alice, dst: eps.relayIn, id: 0x1234, ttl: 61, payload: rtp}
				tt.in(&inF)
				wantF := inF
				wantF.srcMAC, wantF.dstMAC = macOut, macBob
				wantF.src, wantF.dst = eps.relayOut, eps.bob
				wantF.ttl = RelayTTL
				wantF.pad = 0
				if tt.out != nil {
					tt.out(&wantF)
				}
				if tt.zeroSum {
					forceZeroSum(&inF, &wantF)
				}
				in := inF.build()
				want := in
				if tt.out != nil {
					want = wantF.build()
				}

				before := mustCounters(t, d)
				beforeNs := MonotonicCoarseNow()
				action, got := run(t, d.objs.RelayXdp, in)
				afterNs := MonotonicCoarseNow()
				if action != tt.action {
					t.Errorf("action = %s, want %s", actionNames[action], actionNames[tt.action])
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output frame differs\n got: %s\nwant: %s\n  in: %s", hex.EncodeToString(got), hex.EncodeToString(want), hex.EncodeToString(in))
				}
				if tt.zeroSum {
					if c := udpCsumField(got); c != 0xffff {
						t.Errorf("UDP checksum = %#04x, want 0xffff (a computed zero)", c)
					}
				}
				delta := counterDelta(before, mustCounters(t, d))
				if wantDelta := map[Reason]uint64{tt.reason: 1}; fmtDelta(delta) != fmtDelta(wantDelta) {
					t.Errorf("counters changed by %s, want %s", fmtDelta(delta), fmtDelta(wantDelta))
				}

				if tt.noRule {
					if _, err := d.StreamStats(rule.Local); !errors.Is(err, ErrNoStream) {
						t.Errorf("StreamStats without a rule: %v, want ErrNoStream", err)
					}
					return
				}
				st := mustStats(t, d, rule.Local)
				var wantSt StreamStats
				if tt.reason.Forwarded() {
					wantSt.Packets = 1
					wantSt.Bytes = uint64(len(inF.payload))
					wantSt.LastSeen = st.LastSeen
					if st.LastSeen < beforeNs || st.LastSeen > afterNs {
						t.Errorf("LastSeen = %d, want within [%d, %d]", st.LastSeen, beforeNs, afterNs)
					}
					if tt.isRTCP {
						wantSt.RTCPPackets = 1
					}
					if tt.isRTP {
						seq := uint32(binary.BigEndian.Uint16(inF.payload[2:]))
						wantSt.RTP = RTPStats{SSRC: binary.BigEndian.Uint32(inF.payload[8:]), Packets: 1, BaseSeq: seq, HighestSeq: seq}
					}
				}
				if tt.reason == ReasonWrongSource {
					wantSt.WrongSource = 1
				}
				if st != wantSt {
					t.Errorf("stream stats = %+v, want %+v", st, wantSt)
				}
			})
		}
	}
}

// forceZeroSum rewrites the last two payload bytes of both frames (the
// same bytes in each) so that the expected output's UDP checksum computes
// to zero and must be sent as 0xffff; in stays valid for its own headers.
func forceZeroSum(in, want *frame) {
	p := append([]byte(nil), in.payload...)
	p[len(p)-2], p[len(p)-1] = 0, 0
	want.payload = p
	// The checksum over the output with the adjusting word zero; pick the
	// word that brings the one's complement sum to 0xffff.
	seg := want.build()
	sum := ^udpCsumOf(want, seg)
	adj := ^sum // sum + adj = 0xffff in one's complement
	binary.BigEndian.PutUint16(p[len(p)-2:], adj)
	want.payload = p
	in.payload = p
}

// udpCsumOf recomputes the (unfolded-to-0xffff) checksum value of f's UDP
// segment inside its built frame b.
func udpCsumOf(f *frame, b []byte) uint16 {
	off := 14 + 20
	if f.src.Addr().Is6() {
		off = 14 + 40
	}
	seg := b[off : len(b)-f.pad]
	c := udpChecksum(f.src.Addr(), f.dst.Addr(), seg)
	return c
}

func udpCsumField(b []byte) uint16 {
	off := 14 + 20
	if binary.BigEndian.Uint16(b[12:]) == 0x86dd {
		off = 14 + 40
	}
	return binary.BigEndian.Uint16(b[off+6:])
}
