// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// BenchmarkProgram measures the program's cost per packet with
// BPF_PROG_TEST_RUN, next to 200,000 other rules (100,000 on the two
// planes, 100,000 in the shared region). Repeated runs reuse the output
// buffer, so the forwarding cases use a mirror rule (the rewrite
// reproduces the input frame exactly) and every run does the full work;
// the bare cases are the ceiling: the same rewrite with no lookup, no
// checks, no stats. Read the ns/pkt metric. Every run hits the same rule,
// so caches are hot; BenchmarkProgramStreams rotates over many.
func BenchmarkProgram(b *testing.B) {
	d := openTest(b, Options{MaxShared: DefaultMaxShared, LocalAddrs: []netip.Addr{eps4.relayIn.Addr(), eps6.relayIn.Addr()}})
	var bare bareObjects
	if err := loadBareObjects(&bare, nil); err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	if _, err := d.UpsertRules(planeRules(50000, eps4.relayIn.Addr(), eps6.relayIn.Addr())); err != nil {
		b.Fatal(err)
	}
	if _, err := d.UpsertRules(manyRules(100000)); err != nil {
		b.Fatal(err)
	}

	// mirror makes a rule that forwards f onto itself, and f's bytes.
	mirror := func(eps endpoints, rate uint32) []byte {
		f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps.alice, dst: eps.relayIn, tos: 184, payload: rtpPacket(0, 1, 160, 9, 160)}
		r := Rule{
			Local: eps.relayIn, Peer: eps.alice, Source: eps.alice, Dest: eps.relayIn,
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macAlice, DstMAC: macRelay},
			TOS:     184, Flags: allChecks | FlagSetTOS, ClockRate: rate,
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
	shared := endpoints{alice: eps4.alice, relayIn: netip.MustParseAddrPort("192.0.2.200:40000")}
	fwd4shared := mirror(shared, 0)
	noRule := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.bob, payload: rtpPacket(0, 1, 1, 1, 160)}).build()
	noRulePlane := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: netip.AddrPortFrom(eps4.relayIn.Addr(), 1000), payload: rtpPacket(0, 1, 1, 1, 160)}).build()
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
		{"relay/ipv4_forward_shared", d.objs.RelayXdp, fwd4shared, xdpTX, ReasonTX},
		{"relay/ipv4_no_rule", d.objs.RelayXdp, noRule, xdpPass, ReasonNoRule},
		{"relay/ipv4_no_rule_plane", d.objs.RelayXdp, noRulePlane, xdpPass, ReasonNoRule},
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

// BenchmarkProgramStreams forwards one packet of each of many streams in
// turn, as live traffic does (a stream's next packet comes 20 ms later,
// after everyone else's): the rule lookups and counter updates then miss
// the caches and TLB as they do live, which the hot BenchmarkProgram
// cannot show. One BPF_PROG_TEST_RUN per packet; ns/pkt is the kernel's
// timing of the program alone.
func BenchmarkProgramStreams(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		for _, layout := range []string{"plane", "shared"} {
			b.Run(fmt.Sprintf("%s/%d", layout, n), func(b *testing.B) {
				opts := Options{MaxShared: DefaultMaxShared}
				local := netip.MustParseAddr("192.0.2.200")
				if layout == "plane" {
					local = eps4.relayIn.Addr()
					opts.LocalAddrs = []netip.Addr{local}
				}
				d := openTest(b, opts)
				frames := make([][]byte, n)
				rules := make([]Rule, n)
				for i := range n {
					// Ports spread over a 40,000-port range, as relayd's
					// pools hand them out at random.
					port := uint16(20000 + (i*7919)%40000)
					rules[i] = Rule{
						Local: netip.AddrPortFrom(local, port), Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
						NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
					}
					frames[i] = (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: rules[i].Local, payload: rtpPacket(0, 1, 160, 9, 160)}).build()
				}
				if _, err := d.UpsertRules(rules); err != nil {
					b.Fatal(err)
				}
				var total time.Duration
				i := 0
				for b.Loop() {
					ret, per, err := d.objs.RelayXdp.Benchmark(frames[i], 1, nil)
					if err != nil || ret != xdpTX {
						b.Fatalf("run: %s, %v", actionNames[ret], err)
					}
					total += per
					if i++; i == n {
						i = 0
					}
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt")
			})
		}
	}
}

// BenchmarkUpsertRules installs 100,000 rules per op (shared region: memory
// writes plus batch updates of the hash; the target is < 200 ms).
func BenchmarkUpsertRules(b *testing.B) {
	d := openTest(b, Options{MaxShared: DefaultMaxShared})
	rules := manyRules(100000)
	locals := make([]netip.AddrPort, len(rules))
	for i, r := range rules {
		locals[i] = r.Local
	}
	for b.Loop() {
		if n, err := d.UpsertRules(rules); err != nil || n != len(rules) {
			b.Fatalf("UpsertRules = %d, %v", n, err)
		}
		b.StopTimer()
		if n, err := d.ReleaseStreams(locals); err != nil || n != len(rules) {
			b.Fatalf("ReleaseStreams = %d, %v", n, err)
		}
		b.StartTimer()
	}
}

// BenchmarkUpsertRulesPlane installs 100,000 rules on two planes per op:
// memory writes only.
func BenchmarkUpsertRulesPlane(b *testing.B) {
	a4, a6 := eps4.relayIn.Addr(), eps6.relayIn.Addr()
	d := openTest(b, Options{LocalAddrs: []netip.Addr{a4, a6}})
	rules := planeRules(50000, a4, a6)
	locals := make([]netip.AddrPort, len(rules))
	for i, r := range rules {
		locals[i] = r.Local
	}
	for b.Loop() {
		if n, err := d.UpsertRules(rules); err != nil || n != len(rules) {
			b.Fatalf("UpsertRules = %d, %v", n, err)
		}
		b.StopTimer()
		if n, err := d.ReleaseStreams(locals); err != nil || n != len(rules) {
			b.Fatalf("ReleaseStreams = %d, %v", n, err)
		}
		b.StartTimer()
	}
}

// BenchmarkRules lists 100,000 rules.
func BenchmarkRules(b *testing.B) {
	d := openTest(b, Options{MaxShared: DefaultMaxShared})
	if _, err := d.UpsertRules(manyRules(100000)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rs, err := d.Rules(); err != nil || len(rs) != 100000 {
			b.Fatalf("Rules = %d, %v", len(rs), err)
		}
	}
}

// BenchmarkStreamStats reads one stream's counters from every goroutine
// at once while rules change (what the session layer's queries do): no
// syscall, no lock.
func BenchmarkStreamStats(b *testing.B) {
	d := openTest(b, Options{LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
	rules := planeRules(500, eps4.relayIn.Addr())
	if _, err := d.UpsertRules(rules); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r := rules[i%len(rules)]
			r.Dest = netip.AddrPortFrom(r.Dest.Addr(), uint16(1+i%60000))
			_ = d.UpsertRule(r)
		}
	}()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := d.StreamStats(rules[i%len(rules)].Local); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
