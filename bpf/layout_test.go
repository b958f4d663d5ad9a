// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSamePortTwoAddresses: the same port in use on several local
// addresses at once — two planes, and addresses in the shared table, IPv4
// and IPv6 — is one stream each: each forwards with its own rule and
// counts into its own counters, and removing or releasing one leaves the
// others alone.
func TestSamePortTwoAddresses(t *testing.T) {
	a4, b4 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	a6 := netip.MustParseAddr("2001:db8:1::1")
	c4, d6 := netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("2001:db8:1::2") // no plane
	d := openTest(t, Options{LocalAddrs: []netip.Addr{a4, b4, a6}})
	const port = 40000
	var rules []Rule
	for i, a := range []netip.Addr{a4, b4, c4, a6, d6} {
		eps := eps4
		if a.Is6() {
			eps = eps6
		}
		r := Rule{
			Local: netip.AddrPortFrom(a, port), Peer: eps.alice,
			Source: netip.AddrPortFrom(eps.relayOut.Addr(), uint16(41000+i)), Dest: netip.AddrPortFrom(eps.bob.Addr(), uint16(50000+i)),
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0xb0, byte(i)}},
			Flags:   allChecks,
		}
		mustUpsert(t, d, r)
		rules = append(rules, r)
	}
	send := func(r Rule, seq uint16) (uint32, []byte, []byte) {
		in := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: r.Peer, dst: r.Local, payload: rtpPacket(0, seq, 1, 1, 40)}).build()
		action, out := run(t, d.objs.RelayXdp, in)
		return action, in, out
	}
	check := func(step string, forwarded map[netip.AddrPort]uint64) {
		t.Helper()
		for i, r := range rules {
			before := mustCounters(t, d)
			action, in, out := send(r, uint16(i))
			delta := counterDelta(before, mustCounters(t, d))
			if _, ok := forwarded[r.Local]; ok {
				want := (&frame{srcMAC: macOut, dstMAC: r.NextHop.DstMAC, src: r.Source, dst: r.Dest, ttl: RelayTTL, payload: rtpPacket(0, uint16(i), 1, 1, 40)}).build()
				if action != xdpTX || !bytes.Equal(out, want) {
					t.Errorf("%s: packet to %v: %s\n got: %x\nwant: %x", step, r.Local, actionNames[action], out, want)
				}
			} else if action != xdpPass || !bytes.Equal(out, in) || delta[ReasonNoRule] != 1 {
				t.Errorf("%s: packet to %v without its rule: %s, counted %s; want an untouched PASS, no_rule", step, r.Local, actionNames[action], fmtDelta(delta))
			}
		}
		for _, r := range rules {
			want, kept := forwarded[r.Local]
			st, err := d.StreamStats(r.Local)
			if !kept {
				if err == nil {
					t.Errorf("%s: %v has counters %+v after its release", step, r.Local, st)
				}
				continue
			}
			if err != nil || st.Packets != want {
				t.Errorf("%s: %v counted %d packets (%v), want %d", step, r.Local, st.Packets, err, want)
			}
		}
	}
	check("all", map[netip.AddrPort]uint64{rules[0].Local: 1, rules[1].Local: 1, rules[2].Local: 1, rules[3].Local: 1, rules[4].Local: 1})

	// b4's rule goes (its counters stay), a4's stream is released.
	if err := d.RemoveRule(rules[1].Local); err != nil {
		t.Fatal(err)
	}
	if err := d.ReleaseStream(rules[0].Local); err != nil {
		t.Fatal(err)
	}
	for i, r := range rules {
		action, in, out := send(r, 100)
		switch i {
		case 0, 1:
			if action != xdpPass || !bytes.Equal(in, out) {
				t.Errorf("after remove/release: packet to %v: %s, want an untouched PASS", r.Local, actionNames[action])
			}
		default:
			if action != xdpTX {
				t.Errorf("after remove/release: packet to %v: %s, want TX", r.Local, actionNames[action])
			}
		}
	}
	if st := mustStats(t, d, rules[1].Local); st.Packets != 1 {
		t.Errorf("removed rule's counters = %+v, want its 1 packet kept", st)
	}
	if _, err := d.StreamStats(rules[0].Local); err == nil {
		t.Errorf("released stream still has counters")
	}
	for _, r := range rules[2:] {
		if st := mustStats(t, d, r.Local); st.Packets != 2 {
			t.Errorf("%v: %d packets, want 2", r.Local, st.Packets)
		}
	}
}

// TestStaleIndexNeverForwards: however a packet reaches an entry — a plane
// entry holding another port's rule, a shared-table value pointing at
// another local's entry (a reassignment seen half way), or past the array
// — the program forwards only with a rule naming the packet's own local
// address and port.
func TestStaleIndexNeverForwards(t *testing.T) {
	a4 := eps4.relayIn.Addr()
	d := openTest(t, Options{LocalAddrs: []netip.Addr{a4}})
	rule := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: FlagRTPCheck,
	}
	mustUpsert(t, d, rule)
	slot, _ := d.slotOf(rule.Local)
	tab := d.tab.Load()

	// The entry of port 40002 holds 40000's rule.
	if !tab.claim(40002, rule.Local, 4) {
		t.Fatal("claim")
	}
	im := read(tab.entry(slot))
	write(tab.entry(40002), &im)
	// A shared-table key points at it too, another past the array.
	for key, v := range map[netip.AddrPort]uint32{
		netip.MustParseAddrPort("192.0.2.200:40000"): slot,
		netip.MustParseAddrPort("192.0.2.200:40004"): 1 << 30,
	} {
		k := encodeKey(key, 4)
		if err := d.objs.Fwd.Put(&k, &v); err != nil {
			t.Fatal(err)
		}
	}
	for dst, reason := range map[netip.AddrPort]Reason{
		netip.AddrPortFrom(a4, 40002):                ReasonNoRule,
		netip.MustParseAddrPort("192.0.2.200:40000"): ReasonNoRule,
		netip.MustParseAddrPort("192.0.2.200:40004"): ReasonBadRule,
	} {
		in := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: dst, payload: rtpPacket(0, 1, 1, 1, 40)}).build()
		before := mustCounters(t, d)
		action, out := run(t, d.objs.RelayXdp, in)
		delta := counterDelta(before, mustCounters(t, d))
		if action != xdpPass || !bytes.Equal(in, out) || delta[reason] != 1 {
			t.Errorf("packet to %v through a stale index: %s, counted %s; want an untouched PASS, %s", dst, actionNames[action], fmtDelta(delta), reason)
		}
	}
	if st := mustStats(t, d, rule.Local); st.Packets != 0 {
		t.Errorf("the entry's owner counted %d packets that were not its own", st.Packets)
	}
}

// TestRuleUpdateConsistency: a packet never leaves with a rule half old,
// half new. A rule caught mid-write (odd seqcount) passes the packet
// untouched; under a writer flipping a rule between two versions that
// differ in every field, every forwarded frame is exactly one version's.
// Both program variants run: plain loads (x86) and atomics (other CPUs).
func TestRuleUpdateConsistency(t *testing.T) {
	for _, ordered := range []uint8{1, 0} {
		t.Run(fmt.Sprintf("loads_ordered=%d", ordered), func(t *testing.T) {
			saved := loadsOrdered
			loadsOrdered = ordered
			d := openTest(t, Options{LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
			loadsOrdered = saved
			for _, eps := range []endpoints{eps4, eps6} {
				t.Run(map[bool]string{true: "ipv4_plane", false: "ipv6_shared"}[eps.alice.Addr().Is4()], func(t *testing.T) {
					testRuleUpdateConsistency(t, d, eps)
				})
			}
		})
	}
}

func testRuleUpdateConsistency(t *testing.T, d *Datapath, eps endpoints) {
	next := func(ap netip.AddrPort, n int) netip.AddrPort {
		a := ap.Addr()
		for range n {
			a = a.Next()
		}
		return netip.AddrPortFrom(a, ap.Port()+uint16(n))
	}
	versions := []Rule{{
		Local: eps.relayIn, Peer: eps.alice, Source: eps.relayOut, Dest: eps.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob},
		TOS:     0x28, Flags: allChecks | FlagSetTOS,
	}, {
		Local: eps.relayIn, Peer: eps.alice, Source: next(eps.relayOut, 3), Dest: next(eps.bob, 5),
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: net.HardwareAddr{2, 9, 9, 9, 9, 1}, DstMAC: net.HardwareAddr{2, 8, 8, 8, 8, 2}},
		TOS:     0xb8, Flags: allChecks | FlagSetTOS,
	}}
	mustUpsert(t, d, versions[0])
	payload := rtpPacket(0, 1, 1, 1, 40)
	in := (&frame{srcMAC: macAlice, dstMAC: macRelay, src: eps.alice, dst: eps.relayIn, payload: payload}).build()
	var want [2][]byte
	for i, v := range versions {
		want[i] = (&frame{srcMAC: v.NextHop.SrcMAC, dstMAC: v.NextHop.DstMAC, src: v.Source, dst: v.Dest, tos: v.TOS, ttl: RelayTTL, payload: payload}).build()
	}

	// Caught mid-write: an odd seqcount, as a writer leaves it between its
	// two stores.
	slot, _ := d.slotOf(eps.relayIn)
	e := d.tab.Load().entry(slot)
	seq := atomic.LoadUint32(&e.Seq)
	atomic.StoreUint32(&e.Seq, seq|1)
	before := mustCounters(t, d)
	action, out := run(t, d.objs.RelayXdp, in)
	delta := counterDelta(before, mustCounters(t, d))
	if action != xdpPass || !bytes.Equal(out, in) || delta[ReasonRuleChanging] != 1 {
		t.Errorf("rule mid-write: %s, counted %s; want an untouched PASS, rule_changing", actionNames[action], fmtDelta(delta))
	}
	// The next write recovers from a writer that died half way.
	mustUpsert(t, d, versions[0])
	if action, out := run(t, d.objs.RelayXdp, in); action != xdpTX || !bytes.Equal(out, want[0]) {
		t.Fatalf("after the rewrite: %s %s", actionNames[action], hex.EncodeToString(out))
	}

	// A writer flips the rule while packets run on the other CPU.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := d.UpsertRule(versions[i%2]); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	var got [2]int
	var changing int
	deadline := time.Now().Add(2 * time.Second)
	runs := 0
	for ; runs < 200000 && time.Now().Before(deadline); runs++ {
		action, out := run(t, d.objs.RelayXdp, in)
		switch {
		case action == xdpTX && bytes.Equal(out, want[0]):
			got[0]++
		case action == xdpTX && bytes.Equal(out, want[1]):
			got[1]++
		case action == xdpPass && bytes.Equal(out, in):
			changing++
		default:
			close(stop)
			wg.Wait()
			t.Fatalf("run %d: %s with a frame of neither version (torn rule)\n got: %x\n  v0: %x\n  v1: %x", runs, actionNames[action], out, want[0], want[1])
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d runs during %d rule writes: %d with version 0, %d with version 1, %d passed mid-write", runs, writes.Load(), got[0], got[1], changing)
	if got[0] == 0 || got[1] == 0 {
		t.Errorf("the writer's versions were not both seen (%d, %d): the test did not race", got[0], got[1])
	}
}
