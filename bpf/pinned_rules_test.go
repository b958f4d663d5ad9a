// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// fillerRules are n rules for addresses in 198.18.0.0/15 (RFC 2544's
// benchmark range), which no test frame uses.
func fillerRules(n int, slot uint32) []Rule {
	rules := make([]Rule, n)
	for i := range rules {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)})
		rules[i] = Rule{
			Local: netip.AddrPortFrom(a, uint16(1024+i&0xff)), Peer: netip.AddrPortFrom(a, 9),
			Source: netip.AddrPortFrom(a, 10), Dest: netip.AddrPortFrom(a, 11),
			NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: slot,
		}
	}
	return rules
}

func TestPinnedRules(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	owner, err := Open(Options{PinPath: base, MaxRules: 4096, MaxSlots: 1024})
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	defer owner.Close()
	slot := mustSlot(t, owner)
	rule := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks, Slot: slot,
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
	if p.Capacity() != 4096 {
		t.Errorf("Capacity %d, want 4096", p.Capacity())
	}
	fill := fillerRules(3000, 1023)
	if n, err := p.Upsert(fill); n != len(fill) || err != nil {
		t.Fatalf("Upsert: %d, %v", n, err)
	}
	if n, err := p.Count(); n != 3001 || err != nil {
		t.Fatalf("Count %d (%v), want 3001", n, err)
	}
	if got, err := owner.Rules(); len(got) != 3001 || err != nil {
		t.Fatalf("the owner sees %d rules (%v), want 3001", len(got), err)
	}
	// The owner's stream still forwards with the table full of fillers.
	f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, 1, 1, 1, 40)}
	if a, _ := run(t, owner.objs.RelayXdp, f.build()); a != xdpTX {
		t.Fatalf("action %s with fillers installed", actionNames[a])
	}
	if _, err := p.Upsert(fillerRules(1, 1024)); !errors.Is(err, ErrBadSlot) {
		t.Errorf("slot beyond the table: %v, want ErrBadSlot", err)
	}

	locals := make([]netip.AddrPort, len(fill)+1)
	for i, r := range fill {
		locals[i] = r.Local
	}
	locals[len(fill)] = netip.MustParseAddrPort("198.19.0.1:5") // never installed
	if n, err := p.Remove(locals); n != len(fill) || err != nil {
		t.Fatalf("Remove: %d, %v", n, err)
	}
	if got, err := owner.Rules(); len(got) != 1 || got[0].Local != rule.Local || err != nil {
		t.Fatalf("after removing the fillers the owner has %v (%v), want its own rule only", got, err)
	}
}
