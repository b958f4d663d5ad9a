// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The hand-written Go mirrors of the program's layouts and constants must
// match what bpf2go read from the object's BTF.
func TestLayoutsMatchProgram(t *testing.T) {
	if got := binary.Size(relayStream{}); got != streamSize {
		t.Errorf("sizeof(struct stream) = %d, Go maps %d", got, streamSize)
	}
	if got := binary.Size(relayFwdKey{}); got != 20 {
		t.Errorf("sizeof(struct fwd_key) = %d, want 20", got)
	}
	// Offsets the program's comment promises: the rule and the counters
	// every packet writes share line 0, the RTP state is line 1, the
	// IPv6 address words line 2.
	st := reflect.TypeOf(relayStream{})
	for name, off := range map[string]uintptr{
		"Seq": 0, "Family": 4, "Flags": 5, "Tos": 6, "LocalPort": 8, "PeerPort": 10, "SrcPort": 12, "DstPort": 14,
		"LocalAddr": 16, "PeerAddr": 20, "SrcAddr": 24, "DstAddr": 28, "Ifindex": 32, "ClockRate": 36,
		"Packets": 40, "Bytes": 48, "LastSeenNs": 56,
		"Smac": 64, "Dmac": 70, "Owner": 76, "WrongSource": 80, "RtcpPackets": 88, "Ssrc": 92, "RtpPackets": 96,
		"BaseSeq": 100, "MaxSeq": 104, "Jitter": 108, "Transit": 112, "Resets": 116,
		"LocalAddr6": 128, "PeerAddr6": 140, "SrcAddr6": 152, "DstAddr6": 164,
	} {
		f, ok := st.FieldByName(name)
		if !ok || f.Offset != off {
			t.Errorf("stream.%s at offset %d (found %v), want %d", name, f.Offset, ok, off)
		}
	}
	if got := binary.Size(relayPlanes{}); got != 4+MaxPlanes*20 {
		t.Errorf("sizeof(struct planes) = %d for %d planes", got, MaxPlanes)
	}
	generated := []relayReason{
		relayReasonREASON_TX, relayReasonREASON_REDIRECT, relayReasonREASON_NOT_IP,
		relayReasonREASON_NOT_UDP, relayReasonREASON_NO_RULE, relayReasonREASON_WRONG_SOURCE,
		relayReasonREASON_NOT_RTP, relayReasonREASON_IP_OPTIONS, relayReasonREASON_FRAGMENT,
		relayReasonREASON_IPV6EXT, relayReasonREASON_NO_NEXTHOP, relayReasonREASON_TRUNCATED,
		relayReasonREASON_BAD_RULE, relayReasonREASON_ZERO_CSUM6, relayReasonREASON_RULE_CHANGING,
		relayReasonREASON_RTCP,
	}
	if len(generated) != int(reasonCount) || relayReasonREASON_MAX != relayReason(reasonCount) {
		t.Fatalf("program has %d reasons, Go %d", relayReasonREASON_MAX, reasonCount)
	}
	for i, g := range generated {
		if Reason(g) != Reason(i) {
			t.Errorf("reason %d: program %d", i, g)
		}
	}
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	if got := spec.Maps[relayMapStreams].MaxEntries; got != DefaultMaxShared {
		t.Errorf("streams max entries %d (without planes), DefaultMaxShared %d", got, DefaultMaxShared)
	}
	if got := spec.Maps[relayMapFwd].MaxEntries; got != DefaultMaxShared {
		t.Errorf("fwd max entries %d, DefaultMaxShared %d", got, DefaultMaxShared)
	}
	if got := spec.Maps[relayMapTxPorts].MaxEntries; got != MaxTxPorts {
		t.Errorf("tx_ports max entries %d, MaxTxPorts %d", got, MaxTxPorts)
	}
}

func TestRuleValidation(t *testing.T) {
	good := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: 2, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(eps4.bob.Addr().As16()), eps4.bob.Port())
	tests := []struct {
		name    string
		edit    func(r *Rule)
		wantErr error // nil: accepted
	}{
		{"good", func(*Rule) {}, nil},
		{"v4_mapped_dest_is_v4", func(r *Rule) { r.Dest = mapped }, nil},
		{"no_peer_without_check", func(r *Rule) { r.Peer = netip.AddrPort{}; r.Flags = FlagRTPCheck }, nil},
		{"no_next_hop", func(r *Rule) { r.NextHop = NextHop{} }, nil},
		{"no_local", func(r *Rule) { r.Local = netip.AddrPort{} }, ErrInvalidRule},
		{"local_port_zero", func(r *Rule) { r.Local = netip.AddrPortFrom(r.Local.Addr(), 0) }, ErrInvalidRule},
		{"dest_port_zero", func(r *Rule) { r.Dest = netip.AddrPortFrom(r.Dest.Addr(), 0) }, ErrInvalidRule},
		{"no_source", func(r *Rule) { r.Source = netip.AddrPort{} }, ErrInvalidRule},
		{"family_change_dest", func(r *Rule) { r.Dest = eps6.bob }, ErrInvalidRule},
		{"family_change_source", func(r *Rule) { r.Source = eps6.relayOut }, ErrInvalidRule},
		{"peer_other_family", func(r *Rule) { r.Peer = eps6.alice }, ErrInvalidRule},
		{"check_without_peer", func(r *Rule) { r.Peer = netip.AddrPort{} }, ErrInvalidRule},
		{"unknown_flag", func(r *Rule) { r.Flags |= 0x80 }, ErrInvalidRule},
		{"short_mac", func(r *Rule) { r.NextHop.DstMAC = macBob[:4] }, ErrInvalidRule},
		{"negative_ifindex", func(r *Rule) { r.NextHop.Ifindex = -1 }, ErrInvalidRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			got, fam, err := r.normalize()
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("normalize() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (fam != 4 || !got.Dest.Addr().Is4()) {
				t.Errorf("family %d, dest %v: want 4 and an unmapped IPv4 address", fam, got.Dest)
			}
		})
	}
}

// TestRuleRoundTrip: rules come back as installed from either table (the
// IPv4 local is a plane, the IPv6 one is not); removing a rule keeps the
// stream's entry and counters, releasing frees them.
func TestRuleRoundTrip(t *testing.T) {
	d := openTest(t, Options{LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
	var rules []Rule
	for i, eps := range []endpoints{eps4, eps6} {
		rules = append(rules,
			Rule{
				Local: eps.relayIn, Peer: eps.alice, Source: eps.relayOut, Dest: eps.bob,
				NextHop: NextHop{Ifindex: 5 + i, SrcMAC: macOut, DstMAC: macBob},
				TOS:     184, Flags: allChecks | FlagSetTOS, ClockRate: 8000,
			},
			// No peer, no next hop: the zero values come back as such.
			Rule{Local: netip.AddrPortFrom(eps.relayIn.Addr(), 40001), Source: eps.relayOut, Dest: eps.bob},
		)
	}
	for _, r := range rules {
		if err := d.UpsertRule(r); err != nil {
			t.Fatalf("UpsertRule(%v): %v", r.Local, err)
		}
		got, err := d.LookupRule(r.Local)
		if err != nil {
			t.Fatalf("LookupRule(%v): %v", r.Local, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("LookupRule(%v) =\n %+v, want\n %+v", r.Local, got, r)
		}
	}
	all, err := d.Rules()
	if err != nil || len(all) != len(rules) {
		t.Fatalf("Rules() = %d rules, %v; want %d", len(all), err, len(rules))
	}
	// A v4-mapped local is the same stream.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(rules[0].Local.Addr().As16()), rules[0].Local.Port())
	if got, err := d.LookupRule(mapped); err != nil || got.Local != rules[0].Local {
		t.Errorf("LookupRule(%v) = %v, %v; want the rule of %v", mapped, got.Local, err, rules[0].Local)
	}
	if err := d.RemoveRule(rules[0].Local); err != nil {
		t.Fatalf("RemoveRule: %v", err)
	}
	if _, err := d.LookupRule(rules[0].Local); !errors.Is(err, ErrNoRule) {
		t.Errorf("LookupRule after remove: %v, want ErrNoRule", err)
	}
	if err := d.RemoveRule(rules[0].Local); !errors.Is(err, ErrNoRule) {
		t.Errorf("second RemoveRule: %v, want ErrNoRule", err)
	}
	if _, err := d.StreamStats(rules[0].Local); err != nil {
		t.Errorf("StreamStats after RemoveRule: %v, want the entry kept", err)
	}
	// Batch removal skips what is already gone.
	locals := []netip.AddrPort{rules[0].Local, rules[1].Local, rules[2].Local, rules[0].Local, rules[3].Local}
	if n, err := d.RemoveRules(locals); err != nil || n != 3 {
		t.Errorf("RemoveRules = %d, %v; want 3, nil", n, err)
	}
	if all, err := d.Rules(); err != nil || len(all) != 0 {
		t.Errorf("Rules() after removal = %v, %v; want none", all, err)
	}
	if streams, err := d.Streams(); err != nil || len(streams) != 4 {
		t.Errorf("Streams() after removing the rules = %v, %v; want the 4 entries kept", streams, err)
	}
	if n, err := d.ReleaseStreams(locals); err != nil || n != 4 {
		t.Errorf("ReleaseStreams = %d, %v; want 4", n, err)
	}
	if streams, err := d.Streams(); err != nil || len(streams) != 0 {
		t.Errorf("Streams() after release = %v, %v; want none", streams, err)
	}
	if _, err := d.StreamStats(rules[0].Local); !errors.Is(err, ErrNoStream) {
		t.Errorf("StreamStats after release: %v, want ErrNoStream", err)
	}
	if err := d.ReleaseStream(rules[0].Local); !errors.Is(err, ErrNoStream) {
		t.Errorf("second ReleaseStream: %v, want ErrNoStream", err)
	}
}

func TestUpsertRulesBatch(t *testing.T) {
	a4, a6 := eps4.relayIn.Addr(), eps6.relayIn.Addr()
	d := openTest(t, Options{MaxShared: 20000, LocalAddrs: []netip.Addr{a4, a6}})
	rules := append(manyRules(10000), planeRules(10000, a4, a6)...)
	n, err := d.UpsertRules(rules)
	if err != nil || n != len(rules) {
		t.Fatalf("UpsertRules = %d, %v; want %d", n, err, len(rules))
	}
	got, err := d.Rules()
	if err != nil || len(got) != len(rules) {
		t.Fatalf("Rules() = %d, %v; want %d", len(got), err, len(rules))
	}
	// One bad rule refuses the batch before anything is written.
	bad := manyRules(10)
	bad[5].Dest = eps6.bob
	if n, err := d.UpsertRules(bad); !errors.Is(err, ErrInvalidRule) || n != 0 {
		t.Errorf("UpsertRules with a bad rule = %d, %v; want 0, ErrInvalidRule", n, err)
	}
	locals := make([]netip.AddrPort, len(rules))
	for i, r := range rules {
		locals[i] = r.Local
	}
	if n, err := d.RemoveRules(locals); err != nil || n != len(rules) {
		t.Errorf("RemoveRules = %d, %v; want %d", n, err, len(rules))
	}
	if n, err := d.ReleaseStreams(locals); err != nil || n != len(rules) {
		t.Errorf("ReleaseStreams = %d, %v; want %d", n, err, len(rules))
	}
}

// manyRules makes n distinct IPv4 rules for the shared table (local
// 10.x.y.z:40000+i%2, no plane).
func manyRules(n int) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		local := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rules[i] = Rule{
			Local: netip.AddrPortFrom(local, uint16(40000+i%2)), Peer: eps4.alice,
			Source: eps4.relayOut, Dest: eps4.bob, Flags: allChecks,
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
		}
	}
	return rules
}

// planeRules makes n rules on each of addrs (ports from 1024 up, skipping
// 40000-41999, which the tests' own rules use), of each address's family.
func planeRules(n int, addrs ...netip.Addr) []Rule {
	var rules []Rule
	for _, a := range addrs {
		eps := eps4
		if a.Is6() {
			eps = eps6
		}
		for i := range n {
			port := 1024 + i
			if port >= 40000 {
				port += 2000
			}
			rules = append(rules, Rule{
				Local: netip.AddrPortFrom(a, uint16(port)), Peer: eps.alice,
				Source: eps.relayOut, Dest: eps.bob, Flags: allChecks,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
			})
		}
	}
	return rules
}

// TestStreamEntries: a plane's entry is its port's; shared entries are
// handed out lowest free first (packed), and a full shared region refuses
// the rule and keeps nothing of it.
func TestStreamEntries(t *testing.T) {
	a4 := eps4.relayIn.Addr()
	d := openTest(t, Options{MaxShared: 130, LocalAddrs: []netip.Addr{a4}})
	for _, r := range planeRules(3, a4) {
		mustUpsert(t, d, r)
		if slot, _ := d.slotOf(r.Local); slot != uint32(r.Local.Port()) {
			t.Errorf("%v got entry %d, want its port's", r.Local, slot)
		}
	}
	rules := manyRules(130)
	if n, err := d.UpsertRules(rules); n != 130 || err != nil {
		t.Fatalf("UpsertRules of 130 = %d, %v", n, err)
	}
	for i, r := range rules {
		if slot, _ := d.slotOf(r.Local); slot != d.shared+uint32(i) {
			t.Fatalf("shared rule %d got entry %d: want %d, lowest free first", i, slot, d.shared+uint32(i))
		}
	}
	extra := manyRules(131)[130]
	if err := d.UpsertRule(extra); !errors.Is(err, ErrStreamsExhausted) {
		t.Errorf("UpsertRule when full: %v, want ErrStreamsExhausted", err)
	}
	if _, err := d.LookupRule(extra.Local); !errors.Is(err, ErrNoRule) {
		t.Errorf("LookupRule of the refused rule: %v, want ErrNoRule", err)
	}
	if err := d.ReleaseStream(rules[70].Local); err != nil {
		t.Fatal(err)
	}
	if err := d.UpsertRule(extra); err != nil {
		t.Fatal(err)
	}
	if slot, _ := d.slotOf(extra.Local); slot != d.shared+70 {
		t.Errorf("after releasing shared entry 70 the next rule got %d", slot-d.shared)
	}
	if in, capacity := d.StreamsInUse(); in != 133 || capacity != 65536+130 {
		t.Errorf("StreamsInUse = %d/%d, want 133/%d", in, capacity, 65536+130)
	}
}

// TestStatsSurviveRuleChange: a rule replaced (a re-learned peer), or
// removed and installed again (an offer/answer), keeps counting into the
// same counters; a released stream's next owner starts from zero.
func TestStatsSurviveRuleChange(t *testing.T) {
	for _, planes := range [][]netip.Addr{{eps4.relayIn.Addr()}, nil} {
		t.Run(fmt.Sprintf("planes=%d", len(planes)), func(t *testing.T) {
			d := openTest(t, Options{LocalAddrs: planes})
			rule := Rule{
				Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
			}
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			send := func(src netip.AddrPort, seq uint16) uint32 {
				f := frame{srcMAC: macAlice, dstMAC: macRelay, src: src, dst: eps4.relayIn, payload: rtpPacket(8, seq, uint32(seq)*160, 7, 160)}
				a, _ := run(t, d.objs.RelayXdp, f.build())
				return a
			}
			if a := send(eps4.alice, 1); a != xdpTX {
				t.Fatalf("first packet: %s", actionNames[a])
			}
			moved := netip.MustParseAddrPort("192.0.2.99:31000")
			if a := send(moved, 2); a != xdpPass {
				t.Fatalf("packet from the new source before the rule change: %s", actionNames[a])
			}
			rule.Peer = moved
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			if a := send(moved, 3); a != xdpTX {
				t.Fatalf("packet from the new source after the rule change: %s", actionNames[a])
			}
			st := mustStats(t, d, rule.Local)
			if st.Packets != 2 || st.WrongSource != 1 || st.RTP.Packets != 2 || st.RTP.HighestSeq != 3 || st.RTP.Lost() != 1 {
				t.Errorf("stats after the change = %+v; want 2 packets, 1 wrong source, RTP 2 packets up to seq 3, 1 lost", st)
			}
			// Out and back in, as an offer/answer does.
			if err := d.RemoveRule(rule.Local); err != nil {
				t.Fatal(err)
			}
			if a := send(moved, 4); a != xdpPass {
				t.Fatalf("packet without the rule: %s", actionNames[a])
			}
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			if a := send(moved, 5); a != xdpTX {
				t.Fatalf("packet after the rule came back: %s", actionNames[a])
			}
			if st := mustStats(t, d, rule.Local); st.Packets != 3 || st.RTP.HighestSeq != 5 {
				t.Errorf("stats after remove and upsert = %+v; want 3 packets up to seq 5", st)
			}
			if err := d.ReleaseStream(rule.Local); err != nil {
				t.Fatal(err)
			}
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			if st := mustStats(t, d, rule.Local); st != (StreamStats{}) {
				t.Errorf("stats of the stream after a release = %+v, want zero", st)
			}
		})
	}
}

func TestRTPAccounting(t *testing.T) {
	type pkt struct {
		seq  uint16
		ssrc uint32
	}
	seqs := func(ssrc uint32, s ...uint16) []pkt {
		var out []pkt
		for _, v := range s {
			out = append(out, pkt{v, ssrc})
		}
		return out
	}
	tests := []struct {
		name string
		pkts []pkt
		want RTPStats
	}{
		{"in_order", seqs(1, 10, 11, 12, 13), RTPStats{SSRC: 1, Packets: 4, BaseSeq: 10, HighestSeq: 13}},
		{"gap", seqs(1, 10, 11, 14, 15), RTPStats{SSRC: 1, Packets: 4, BaseSeq: 10, HighestSeq: 15}},
		{"reordered", seqs(1, 10, 12, 11, 13), RTPStats{SSRC: 1, Packets: 4, BaseSeq: 10, HighestSeq: 13}},
		{"duplicate", seqs(1, 10, 11, 11, 12), RTPStats{SSRC: 1, Packets: 4, BaseSeq: 10, HighestSeq: 12}},
		{"wrap", seqs(1, 65534, 65535, 0, 1), RTPStats{SSRC: 1, Packets: 4, BaseSeq: 65534, HighestSeq: 65536 + 1}},
		{"jump_resyncs", seqs(1, 10, 11, 20000, 20001), RTPStats{SSRC: 1, Packets: 2, BaseSeq: 20000, HighestSeq: 20001, Resets: 1}},
		{"ssrc_change", append(seqs(1, 10, 11), seqs(2, 500, 501, 502)...), RTPStats{SSRC: 2, Packets: 3, BaseSeq: 500, HighestSeq: 502, Resets: 1}},
	}
	d := openTest(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rule := Rule{
				Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
			}
			mustUpsert(t, d, rule)
			for _, p := range tt.pkts {
				f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, p.seq, uint32(p.seq)*160, p.ssrc, 20)}
				if a, _ := run(t, d.objs.RelayXdp, f.build()); a != xdpTX {
					t.Fatalf("seq %d: %s", p.seq, actionNames[a])
				}
			}
			if got := mustStats(t, d, rule.Local).RTP; got != tt.want {
				t.Errorf("RTP stats = %+v, want %+v (lost %d)", got, tt.want, tt.want.Lost())
			}
		})
	}
}

// With a clock rate the program measures RFC 3550 jitter. Packets stamped
// 20 ms apart but run back to back arrive "early" by ~20 ms each: the
// jitter climbs towards 160 timestamp units at 8 kHz.
func TestJitter(t *testing.T) {
	d := openTest(t, Options{})
	for _, rate := range []uint32{0, 8000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			rule := Rule{
				Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
				Flags:   allChecks, ClockRate: rate,
			}
			mustUpsert(t, d, rule)
			for i := range 50 {
				f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, uint16(i), uint32(i)*160, 5, 20)}
				run(t, d.objs.RelayXdp, f.build())
			}
			j := mustStats(t, d, rule.Local).RTP.Jitter
			if rate == 0 && j != 0 {
				t.Errorf("jitter without a clock rate = %d, want 0", j)
			}
			// After 49 steps of ~160: 160*(1-(15/16)^49) ≈ 152.
			if rate != 0 && (j < 120 || j > 165) {
				t.Errorf("jitter = %d timestamp units, want ~150", j)
			}
		})
	}
}

// TestStreamStatsDuringClose: StreamStats takes no lock, so readers may
// still be reading the mapped memory while Close runs; they must get a
// value or ErrClosed/ErrNoStream, never a fault, and ErrClosed after.
func TestStreamStatsDuringClose(t *testing.T) {
	d := openTest(t, Options{LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
	rules := planeRules(100, eps4.relayIn.Addr())
	if _, err := d.UpsertRules(rules); err != nil {
		t.Fatal(err)
	}
	f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: rules[7].Local, payload: rtpPacket(0, 1, 1, 1, 100)}
	for range 3 {
		run(t, d.objs.RelayXdp, f.build())
	}
	if st := mustStats(t, d, rules[7].Local); st.Packets != 3 || st.Bytes != 3*112 {
		t.Fatalf("stats = %+v, want 3 packets of 112 bytes", st)
	}
	if ts := mustStats(t, d, rules[7].Local).LastSeenTime(); time.Since(ts) < -10*time.Millisecond || time.Since(ts) > 5*time.Second {
		t.Errorf("LastSeenTime = %v, %v ago; want just now", ts, time.Since(ts))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, err := d.StreamStats(rules[i%len(rules)].Local)
				if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNoStream) {
					t.Errorf("StreamStats during Close: %v", err)
					return
				}
				if err == nil && i%len(rules) == 7 && st.Packets != 3 {
					t.Errorf("StreamStats during Close = %+v, want 3 packets", st)
					return
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
	if _, err := d.StreamStats(rules[7].Local); !errors.Is(err, ErrClosed) {
		t.Errorf("StreamStats after Close: %v, want ErrClosed", err)
	}
}

func TestCountersNamed(t *testing.T) {
	d := openTest(t, Options{})
	c := mustCounters(t, d)
	if len(c) != int(reasonCount) {
		t.Errorf("Counters has %d reasons, want %d", len(c), reasonCount)
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if seen[r.String()] {
			t.Errorf("duplicate name %q", r)
		}
		seen[r.String()] = true
	}
	if got := Reason(99).String(); got != "reason_99" {
		t.Errorf("Reason(99) = %q", got)
	}
}

func TestClosed(t *testing.T) {
	d := openTest(t, Options{})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	checks := map[string]error{
		"UpsertRule":    d.UpsertRule(Rule{Local: eps4.relayIn, Source: eps4.relayOut, Dest: eps4.bob}),
		"RemoveRule":    d.RemoveRule(eps4.relayIn),
		"ReleaseStream": d.ReleaseStream(eps4.relayIn),
		"Attach":        d.Attach(1, ModeGeneric),
	}
	_, checks["StreamStats"] = d.StreamStats(eps4.relayIn)
	_, checks["Streams"] = d.Streams()
	_, checks["Counters"] = d.Counters()
	_, checks["Rules"] = d.Rules()
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestMonotonicToTime(t *testing.T) {
	if !MonotonicToTime(0).IsZero() {
		t.Error("MonotonicToTime(0) is not the zero Time")
	}
	now := MonotonicCoarseNow()
	got := MonotonicToTime(now - uint64(2*time.Second))
	if ago := time.Since(got); ago < 2*time.Second-20*time.Millisecond || ago > 2*time.Second+50*time.Millisecond {
		t.Errorf("2 s ago converts to %v ago", ago)
	}
}

// A program the verifier rejects fails Open with ErrUnavailable, and the
// whole verifier log (not cilium/ebpf's truncated tail) is logged once.
func TestVerifierErrorLogged(t *testing.T) {
	privileged(t)
	spec, err := loadRelay()
	if err != nil {
		t.Fatal(err)
	}
	// Reads a register nobody wrote.
	spec.Programs[relayProgRelayXdp].Instructions = asm.Instructions{
		asm.Mov.Reg(asm.R0, asm.R5),
		asm.Return(),
	}
	var logs bytes.Buffer
	d := &Datapath{log: slog.New(slog.NewTextHandler(&logs, nil)), maxShared: 16, links: map[int]link.Link{}}
	_, err = d.load(spec, "")
	var ve *ebpf.VerifierError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ve) {
		t.Fatalf("load of a broken program: %v, want ErrUnavailable wrapping *ebpf.VerifierError", err)
	}
	if out := logs.String(); !strings.Contains(out, "rejected by the verifier") || !strings.Contains(out, "R5 !read_ok") {
		t.Errorf("log = %q, want the verifier's complaint about R5", out)
	}
}
