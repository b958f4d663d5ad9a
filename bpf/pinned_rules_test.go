// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// fillerRules are n rules for addresses in 198.18.0.0/15 (RFC 2544's
// benchmark range), which no test frame uses.
func fillerRules(n int) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)})
		rules[i] = Rule{
			Local: netip.AddrPortFrom(a, uint16(1024+i&0xff)), Peer: netip.AddrPortFrom(a, 9),
			Source: netip.AddrPortFrom(a, 10), Dest: netip.AddrPortFrom(a, 11),
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
		}
	}
	return rules
}

// TestPinnedRules: another process's fillers (here another handle on the
// pins) sit next to the owner's rules without touching them — entries are
// claimed with a compare-and-swap from both ends, even concurrently — and
// they are real rules: a packet to one is forwarded.
func TestPinnedRules(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	owner, err := Open(Options{PinPath: base, MaxShared: 8192, LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}})
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	defer owner.Close()
	rule := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
	}
	if err := owner.UpsertRule(rule); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenPinnedRules(filepath.Join(t.TempDir(), "nothing")); err == nil {
		t.Fatal("OpenPinnedRules on an empty directory succeeded")
	}
	p, err := OpenPinnedRules(base)
	if err != nil {
		t.Fatalf("OpenPinnedRules: %v", err)
	}
	defer p.Close()
	if p.Capacity() != 8192 {
		t.Errorf("Capacity %d, want 8192", p.Capacity())
	}
	if _, err := p.Upsert([]Rule{rule}); !errors.Is(err, ErrInvalidRule) {
		t.Errorf("a filler on the owner's media address: %v, want ErrInvalidRule", err)
	}

	// Both sides claim shared entries at once: 4,000 rules of the owner's
	// (for addresses without a plane), 4,000 fillers, in a region of 8,192.
	fill := fillerRules(4000)
	own := manyRules(4000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if n, err := owner.UpsertRules(own); n != len(own) || err != nil {
			t.Errorf("owner UpsertRules: %d, %v", n, err)
		}
	}()
	if n, err := p.Upsert(fill); n != len(fill) || err != nil {
		t.Fatalf("Upsert: %d, %v", n, err)
	}
	wg.Wait()
	if n, err := p.Count(); n != 8001 || err != nil {
		t.Fatalf("Count %d (%v), want 8001", n, err)
	}
	if got, err := owner.Rules(); len(got) != 4001 || err != nil {
		t.Fatalf("the owner sees %d rules of its own (%v), want 4001", len(got), err)
	}
	for _, r := range append([]Rule{rule, own[0], own[3999]}, fill[0], fill[3999]) {
		f := frame{srcMAC: macAlice, dstMAC: macRelay, src: r.Peer, dst: r.Local, payload: rtpPacket(0, 1, 1, 1, 40)}
		action, out := run(t, owner.objs.RelayXdp, f.build())
		if po, ok := parseFrame(out); action != xdpTX || !ok || po.dst != r.Dest {
			t.Errorf("packet to %v: %s to %v, want TX to %v", r.Local, actionNames[action], po.dst, r.Dest)
		}
	}

	locals := make([]netip.AddrPort, len(fill)+1)
	for i, r := range fill {
		locals[i] = r.Local
	}
	locals[len(fill)] = netip.MustParseAddrPort("198.19.0.1:5") // never installed
	if n, err := p.Remove(locals); n != len(fill) || err != nil {
		t.Fatalf("Remove: %d, %v", n, err)
	}
	if n, err := p.Count(); n != 4001 || err != nil {
		t.Fatalf("Count after removing the fillers %d (%v), want the owner's 4001", n, err)
	}
	if got, err := owner.Rules(); len(got) != 4001 || err != nil {
		t.Fatalf("after removing the fillers the owner has %d rules (%v), want its 4001", len(got), err)
	}
	// Freed fillers' entries are claimed again.
	if n, err := p.Upsert(fill[:100]); n != 100 || err != nil {
		t.Fatalf("Upsert after Remove: %d, %v", n, err)
	}
}
