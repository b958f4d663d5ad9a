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
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// The hand-written Go mirrors of the program's layouts and constants must
// match what bpf2go read from the object's BTF.
func TestLayoutsMatchProgram(t *testing.T) {
	if got := binary.Size(relayStreamStats{}); got != statsSize {
		t.Errorf("sizeof(struct stream_stats) = %d, Go decodes %d", got, statsSize)
	}
	if got := binary.Size(relayFwdKey{}); got != 20 {
		t.Errorf("sizeof(struct fwd_key) = %d, want 20", got)
	}
	// Offsets decodeStats relies on.
	st := reflect.TypeOf(relayStreamStats{})
	for name, off := range map[string]uintptr{
		"Packets": 0, "Bytes": 8, "LastSeenNs": 16, "WrongSource": 24, "RtcpPackets": 32,
		"Ssrc": 36, "RtpPackets": 40, "BaseSeq": 44, "MaxSeq": 48, "Jitter": 52, "Transit": 56, "Resets": 60,
	} {
		f, ok := st.FieldByName(name)
		if !ok || f.Offset != off {
			t.Errorf("stream_stats.%s at offset %d (found %v), Go decodes it at %d", name, f.Offset, ok, off)
		}
	}
	generated := []relayReason{
		relayReasonREASON_TX, relayReasonREASON_REDIRECT, relayReasonREASON_NOT_IP,
		relayReasonREASON_NOT_UDP, relayReasonREASON_NO_RULE, relayReasonREASON_WRONG_SOURCE,
		relayReasonREASON_NOT_RTP, relayReasonREASON_IP_OPTIONS, relayReasonREASON_FRAGMENT,
		relayReasonREASON_IPV6EXT, relayReasonREASON_NO_NEXTHOP, relayReasonREASON_TRUNCATED,
		relayReasonREASON_BAD_RULE, relayReasonREASON_ZERO_CSUM6,
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
	if got := spec.Maps[relayMapFwd].MaxEntries; got != DefaultMaxRules {
		t.Errorf("fwd max entries %d, DefaultMaxRules %d", got, DefaultMaxRules)
	}
	if got := spec.Maps[relayMapStreamStats].MaxEntries; got != DefaultMaxSlots {
		t.Errorf("stream_stats max entries %d, DefaultMaxSlots %d", got, DefaultMaxSlots)
	}
	if got := spec.Maps[relayMapTxPorts].MaxEntries; got != MaxTxPorts {
		t.Errorf("tx_ports max entries %d, MaxTxPorts %d", got, MaxTxPorts)
	}
}

func TestRuleValidation(t *testing.T) {
	good := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: 2, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: 3,
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
		{"slot_out_of_range", func(r *Rule) { r.Slot = 16 }, ErrBadSlot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			tt.edit(&r)
			got, fam, err := r.normalize(16)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("normalize() error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (fam != 4 || !got.Dest.Addr().Is4()) {
				t.Errorf("family %d, dest %v: want 4 and an unmapped IPv4 address", fam, got.Dest)
			}
		})
	}
}

func TestRuleRoundTrip(t *testing.T) {
	d := openTest(t, Options{})
	var rules []Rule
	for i, eps := range []endpoints{eps4, eps6} {
		slot := mustSlot(t, d)
		rules = append(rules,
			Rule{
				Local: eps.relayIn, Peer: eps.alice, Source: eps.relayOut, Dest: eps.bob,
				NextHop: NextHop{Ifindex: 5 + i, SrcMAC: macOut, DstMAC: macBob},
				TOS:     184, Flags: allChecks | FlagSetTOS, Slot: slot, ClockRate: 8000,
			},
			// No peer, no next hop: the zero values come back as such.
			Rule{Local: netip.AddrPortFrom(eps.relayIn.Addr(), 40001), Source: eps.relayOut, Dest: eps.bob, Slot: slot},
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
	if err := d.RemoveRule(rules[0].Local); err != nil {
		t.Fatalf("RemoveRule: %v", err)
	}
	if _, err := d.LookupRule(rules[0].Local); !errors.Is(err, ErrNoRule) {
		t.Errorf("LookupRule after remove: %v, want ErrNoRule", err)
	}
	if err := d.RemoveRule(rules[0].Local); !errors.Is(err, ErrNoRule) {
		t.Errorf("second RemoveRule: %v, want ErrNoRule", err)
	}
	// Batch removal skips what is already gone.
	locals := []netip.AddrPort{rules[0].Local, rules[1].Local, rules[2].Local, rules[0].Local, rules[3].Local}
	if n, err := d.RemoveRules(locals); err != nil || n != 3 {
		t.Errorf("RemoveRules = %d, %v; want 3, nil", n, err)
	}
	if all, err := d.Rules(); err != nil || len(all) != 0 {
		t.Errorf("Rules() after removal = %v, %v; want none", all, err)
	}
	// A slot that was never allocated is refused.
	bad := rules[0]
	bad.Slot = 1000
	if err := d.UpsertRule(bad); !errors.Is(err, ErrBadSlot) {
		t.Errorf("UpsertRule with a free slot: %v, want ErrBadSlot", err)
	}
}

func TestUpsertRulesBatch(t *testing.T) {
	d := openTest(t, Options{MaxRules: 20000})
	slot := mustSlot(t, d)
	rules := manyRules(10000, slot)
	n, err := d.UpsertRules(rules)
	if err != nil || n != len(rules) {
		t.Fatalf("UpsertRules = %d, %v; want %d", n, err, len(rules))
	}
	got, err := d.Rules()
	if err != nil || len(got) != len(rules) {
		t.Fatalf("Rules() = %d, %v; want %d", len(got), err, len(rules))
	}
	// One bad rule refuses the batch before anything reaches the kernel.
	bad := manyRules(10, slot)
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
}

// manyRules makes n distinct IPv4 rules (local 10.x.y.z:40000+i%2).
func manyRules(n int, slot uint32) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		local := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rules[i] = Rule{
			Local: netip.AddrPortFrom(local, uint16(40000+i%2)), Peer: eps4.alice,
			Source: eps4.relayOut, Dest: eps4.bob, Flags: allChecks, Slot: slot,
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
		}
	}
	return rules
}

func TestSlots(t *testing.T) {
	d := openTest(t, Options{MaxSlots: 130})
	var got []uint32
	for range 130 {
		got = append(got, mustSlot(t, d))
	}
	for i, s := range got {
		if s != uint32(i) {
			t.Fatalf("slot %d allocated as %d: want lowest free first", i, s)
		}
	}
	if _, err := d.AllocSlot(); !errors.Is(err, ErrSlotsExhausted) {
		t.Errorf("AllocSlot when full: %v, want ErrSlotsExhausted", err)
	}
	if err := d.FreeSlot(70); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeSlot(70); !errors.Is(err, ErrBadSlot) {
		t.Errorf("double FreeSlot: %v, want ErrBadSlot", err)
	}
	if err := d.FreeSlot(500); !errors.Is(err, ErrBadSlot) {
		t.Errorf("FreeSlot out of range: %v, want ErrBadSlot", err)
	}
	if s := mustSlot(t, d); s != 70 {
		t.Errorf("after freeing 70, AllocSlot = %d", s)
	}
	if in, capacity := d.SlotsInUse(); in != 130 || capacity != 130 {
		t.Errorf("SlotsInUse = %d/%d, want 130/130", in, capacity)
	}
	if _, err := d.StreamStats(130); !errors.Is(err, ErrBadSlot) {
		t.Errorf("StreamStats out of range: %v, want ErrBadSlot", err)
	}
}

// A rule replaced (a re-learned peer) keeps counting into its slot; a
// reallocated slot starts from zero.
func TestStatsSurviveRuleChange(t *testing.T) {
	d := openTest(t, Options{})
	slot := mustSlot(t, d)
	rule := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: slot,
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
	st := mustStats(t, d, slot)
	if st.Packets != 2 || st.WrongSource != 1 || st.RTP.Packets != 2 || st.RTP.HighestSeq != 3 || st.RTP.Lost() != 1 {
		t.Errorf("stats after the change = %+v; want 2 packets, 1 wrong source, RTP 2 packets up to seq 3, 1 lost", st)
	}
	if err := d.RemoveRule(rule.Local); err != nil {
		t.Fatal(err)
	}
	if err := d.FreeSlot(slot); err != nil {
		t.Fatal(err)
	}
	if again := mustSlot(t, d); again != slot || mustStats(t, d, again) != (StreamStats{}) {
		t.Errorf("reallocated slot %d (want %d) = %+v, want zeroed", again, slot, mustStats(t, d, again))
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
			slot := mustSlot(t, d)
			t.Cleanup(func() { _ = d.FreeSlot(slot) })
			rule := Rule{
				Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: slot,
			}
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.pkts {
				f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, p.seq, uint32(p.seq)*160, p.ssrc, 20)}
				if a, _ := run(t, d.objs.RelayXdp, f.build()); a != xdpTX {
					t.Fatalf("seq %d: %s", p.seq, actionNames[a])
				}
			}
			if got := mustStats(t, d, slot).RTP; got != tt.want {
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
			slot := mustSlot(t, d)
			rule := Rule{
				Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
				NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
				Flags:   allChecks, Slot: slot, ClockRate: rate,
			}
			if err := d.UpsertRule(rule); err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, uint16(i), uint32(i)*160, 5, 20)}
				run(t, d.objs.RelayXdp, f.build())
			}
			j := mustStats(t, d, slot).RTP.Jitter
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

func TestReadAllStreamStats(t *testing.T) {
	d := openTest(t, Options{MaxSlots: 3000})
	var slots []uint32
	for range 2500 {
		slots = append(slots, mustSlot(t, d))
	}
	rule := Rule{
		Local: eps6.relayIn, Peer: eps6.alice, Source: eps6.relayOut, Dest: eps6.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: slots[2100],
	}
	if err := d.UpsertRule(rule); err != nil {
		t.Fatal(err)
	}
	f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps6.alice, dst: eps6.relayIn, payload: rtpPacket(0, 1, 1, 1, 100)}
	for range 3 {
		run(t, d.objs.RelayXdp, f.build())
	}
	all, err := d.ReadAllStreamStats(nil)
	if err != nil || len(all) != 3000 {
		t.Fatalf("ReadAllStreamStats = %d slots, %v", len(all), err)
	}
	for i, s := range all {
		want := uint64(0)
		if i == 2100 {
			want = 3
		}
		if s.Packets != want {
			t.Errorf("slot %d: %d packets, want %d", i, s.Packets, want)
		}
	}
	if one := mustStats(t, d, 2100); one != all[2100] {
		t.Errorf("StreamStats(2100) = %+v, ReadAllStreamStats has %+v", one, all[2100])
	}
	if ts := all[2100].LastSeenTime(); time.Since(ts) < -10*time.Millisecond || time.Since(ts) > 5*time.Second {
		t.Errorf("LastSeenTime = %v, %v ago; want just now", ts, time.Since(ts))
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
		"UpsertRule": d.UpsertRule(Rule{Local: eps4.relayIn, Source: eps4.relayOut, Dest: eps4.bob}),
		"RemoveRule": d.RemoveRule(eps4.relayIn),
		"Attach":     d.Attach(1, ModeGeneric),
		"FreeSlot":   d.FreeSlot(0),
	}
	_, checks["AllocSlot"] = d.AllocSlot()
	_, checks["StreamStats"] = d.StreamStats(0)
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
	d := &Datapath{log: slog.New(slog.NewTextHandler(&logs, nil)), maxRules: 16, maxSlots: 16, links: map[int]link.Link{}}
	_, err = d.load(spec, "")
	var ve *ebpf.VerifierError
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &ve) {
		t.Fatalf("load of a broken program: %v, want ErrUnavailable wrapping *ebpf.VerifierError", err)
	}
	if out := logs.String(); !strings.Contains(out, "rejected by the verifier") || !strings.Contains(out, "R5 !read_ok") {
		t.Errorf("log = %q, want the verifier's complaint about R5", out)
	}
}
