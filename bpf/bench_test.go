// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// BenchmarkProgram measures the program's cost per packet with
// BPF_PROG_TEST_RUN, next to 100,000 other rules. Repeated runs reuse the
// output buffer, so the forwarding cases use a mirror rule (the rewrite
// reproduces the input frame exactly) and every run does the full work;
// the bare cases are the ceiling: the same rewrite with no lookup, no
// checks, no stats. Read the ns/pkt metric.
func BenchmarkProgram(b *testing.B) {
	d := openTest(b, Options{MaxRules: DefaultMaxRules, MaxSlots: DefaultMaxSlots})
	var bare bareObjects
	if err := loadBareObjects(&bare, nil); err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	if _, err := d.UpsertRules(manyRules(100000, mustSlot(b, d))); err != nil {
		b.Fatal(err)
	}

	// mirror makes a rule that forwards f onto itself, and f's bytes.
	mirror := func(eps endpoints, rate uint32) []byte {
		f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps.alice, dst: eps.relayIn, tos: 184, payload: rtpPacket(0, 1, 160, 9, 160)}
		r := Rule{
			Local: eps.relayIn, Peer: eps.alice, Source: eps.alice, Dest: eps.relayIn,
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macAlice, DstMAC: macRelay},
			TOS:     184, Flags: allChecks | FlagSetTOS, Slot: mustSlot(b, d), ClockRate: rate,
		}
		if err := d.UpsertRule(r); err != nil {
			b.Fatal(err)
		}
		return f.build()
	}
	fwd4 := mirror(eps4, 0)
	fwd6 := mirror(eps6, 0)
	jitter := endpoints{alice: eps4.alice, relayIn: netip.AddrPortFrom(eps4.relayIn.Addr(), 41000)}
	fwd4jitter := mirror(jitter, 8000)
	noRule := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.bob, payload: rtpPacket(0, 1, 1, 1, 160)}).build()
	wrongSrc := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.bob, dst: eps4.relayIn, payload: rtpPacket(0, 1, 1, 1, 160)}).build()
	bounce4 := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, 1, 1, 1, 160)}).build()
	bounce6 := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps6.alice, dst: eps6.relayIn, payload: rtpPacket(0, 1, 1, 1, 160)}).build()

	const noReason = reasonCount
	cases := []struct {
		name   string
		prog   *ebpf.Program
		in     []byte
		action uint32
		reason Reason // counted once per run, checked (noReason: not checked)
	}{
		{"relay/ipv4_forward", d.objs.RelayXdp, fwd4, xdpTX, ReasonTX},
		{"relay/ipv6_forward", d.objs.RelayXdp, fwd6, xdpTX, ReasonTX},
		{"relay/ipv4_forward_jitter", d.objs.RelayXdp, fwd4jitter, xdpTX, ReasonTX},
		{"relay/ipv4_no_rule", d.objs.RelayXdp, noRule, xdpPass, ReasonNoRule},
		{"relay/ipv4_wrong_source", d.objs.RelayXdp, wrongSrc, xdpPass, ReasonWrongSource},
		{"bare/ipv4_bounce", bare.BareBounce, bounce4, xdpTX, noReason},
		{"bare/ipv6_bounce", bare.BareBounce, bounce6, xdpTX, noReason},
		{"bare/pass", bare.BarePass, bounce4, xdpPass, noReason},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			before := mustCounters(b, d)
			ret, per, err := c.prog.Benchmark(c.in, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			if ret != c.action {
				b.Fatalf("action %s, want %s", actionNames[ret], actionNames[c.action])
			}
			if c.reason != noReason {
				// Every run took the measured path, not just the first.
				if got := mustCounters(b, d)[c.reason] - before[c.reason]; got < uint64(b.N) {
					b.Fatalf("%s counted %d times in %d runs", c.reason, got, b.N)
				}
			}
			b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
		})
	}
}

// BenchmarkUpsertRules installs 100,000 rules per op with batch updates
// (the target is < 200 ms).
func BenchmarkUpsertRules(b *testing.B) {
	d := openTest(b, Options{MaxRules: DefaultMaxRules, MaxSlots: 1024})
	rules := manyRules(100000, mustSlot(b, d))
	locals := make([]netip.AddrPort, len(rules))
	for i, r := range rules {
		locals[i] = r.Local
	}
	for b.Loop() {
		if n, err := d.UpsertRules(rules); err != nil || n != len(rules) {
			b.Fatalf("UpsertRules = %d, %v", n, err)
		}
		b.StopTimer()
		if n, err := d.RemoveRules(locals); err != nil || n != len(rules) {
			b.Fatalf("RemoveRules = %d, %v", n, err)
		}
		b.StartTimer()
	}
}

// BenchmarkRules lists 100,000 rules (batch lookups).
func BenchmarkRules(b *testing.B) {
	d := openTest(b, Options{MaxRules: DefaultMaxRules, MaxSlots: 1024})
	if _, err := d.UpsertRules(manyRules(100000, mustSlot(b, d))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rs, err := d.Rules(); err != nil || len(rs) != 100000 {
			b.Fatalf("Rules = %d, %v", len(rs), err)
		}
	}
}

// BenchmarkReadAllStreamStats reads all 262,144 slots from shared memory.
func BenchmarkReadAllStreamStats(b *testing.B) {
	d := openTest(b, Options{MaxRules: 1024, MaxSlots: DefaultMaxSlots})
	var dst []StreamStats
	for b.Loop() {
		var err error
		if dst, err = d.ReadAllStreamStats(dst); err != nil {
			b.Fatal(err)
		}
	}
}
