// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// xdpProgID is the id of the XDP program on ifindex in ns, 0 if none.
func xdpProgID(t *testing.T, ns netns.NsHandle, ifindex int) uint32 {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		t.Fatal(err)
	}
	if x := l.Attrs().Xdp; x != nil && x.Attached {
		return x.ProgId
	}
	return 0
}

func progID(t *testing.T, d *Datapath) uint32 {
	t.Helper()
	info, err := d.objs.RelayXdp.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return uint32(id)
}

// TestPinning restarts the Datapath on pinned state in a private bpffs:
// rules, counters, stats and slots survive, the pinned link keeps the
// program attached while no process holds it and is adopted by the next
// Attach, and Unpin removes it all.
func TestPinning(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	opts := Options{PinPath: base, PinLinks: true, MaxShared: 1024, LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}}
	ns := newNetNS(t)
	const lo = 1

	d1, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	defer d1.Close()
	if ok, err := isBPFFS(base); !ok || err != nil {
		t.Fatalf("%s is not on bpffs after Open (%v)", base, err)
	}
	rule := Rule{
		Local: eps4.relayIn, Peer: eps4.alice, Source: eps4.relayOut, Dest: eps4.bob,
		NextHop: NextHop{Ifindex: ingressIfindex, SrcMAC: macOut, DstMAC: macBob}, Flags: allChecks,
	}
	shared := rule
	shared.Local = eps6.relayIn // no plane: the shared table
	shared.Peer, shared.Source, shared.Dest = eps6.alice, eps6.relayOut, eps6.bob
	for _, r := range []Rule{rule, shared} {
		if err := d1.UpsertRule(r); err != nil {
			t.Fatal(err)
		}
		f := frame{srcMAC: macAlice, dstMAC: macRelay, src: r.Peer, dst: r.Local, payload: rtpPacket(0, 1, 1, 1, 40)}
		if a, _ := run(t, d1.objs.RelayXdp, f.build()); a != xdpTX {
			t.Fatalf("action %s", actionNames[a])
		}
	}
	inNetNS(t, ns, func() {
		if err := d1.Attach(lo, ModeNative); !errors.Is(err, ErrNativeUnsupported) {
			t.Errorf("native attach to lo: %v, want ErrNativeUnsupported", err)
		}
		var ae *AttachError
		if err := d1.Attach(lo, ModeNative); !errors.As(err, &ae) || ae.Ifindex != lo || ae.Mode != ModeNative {
			t.Errorf("native attach to lo: %#v, want an *AttachError", err)
		}
		if err := d1.Attach(lo, ModeGeneric); err != nil {
			t.Fatalf("generic attach to lo: %v", err)
		}
	})
	id1 := progID(t, d1)
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(base, PinVersion)
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"counters", "fwd", "link_1", "planes", "streams", "tx_ports"}; !slices.Equal(names, want) {
		t.Errorf("pins after Close = %v, want %v", names, want)
	}
	if got := xdpProgID(t, ns, lo); got != id1 {
		t.Errorf("after Close the interface runs program %d, want the pinned %d", got, id1)
	}

	d2, err := Open(opts)
	if err != nil {
		t.Fatalf("second Open: %+v", err)
	}
	defer d2.Close()
	if _, err := Open(opts); !errors.Is(err, ErrPinDirBusy) {
		t.Errorf("Open while another Datapath holds the pins: %v, want ErrPinDirBusy", err)
	}
	for _, r := range []Rule{rule, shared} {
		if got, err := d2.LookupRule(r.Local); err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("adopted rule = %+v, %v; want %+v", got, err, r)
		}
		if st := mustStats(t, d2, r.Local); st.Packets != 1 {
			t.Errorf("adopted stats of %v = %+v, want 1 packet", r.Local, st)
		}
		// The adopted program path still finds them.
		f := frame{srcMAC: macAlice, dstMAC: macRelay, src: r.Peer, dst: r.Local, payload: rtpPacket(0, 2, 1, 1, 40)}
		if a, _ := run(t, d2.objs.RelayXdp, f.build()); a != xdpTX {
			t.Errorf("adopted rule of %v: action %s", r.Local, actionNames[a])
		}
	}
	if c := mustCounters(t, d2); c[ReasonTX] != 4 {
		t.Errorf("adopted counters: tx = %d, want 4", c[ReasonTX])
	}
	// A new stream does not get an adopted one's entry.
	other := rule
	other.Local = netip.AddrPortFrom(rule.Local.Addr(), 40100)
	if err := d2.UpsertRule(other); err != nil {
		t.Fatal(err)
	}
	if st := mustStats(t, d2, other.Local); st.Packets != 0 {
		t.Errorf("new stream's stats = %+v, want zero", st)
	}
	if st := mustStats(t, d2, rule.Local); st.Packets != 2 {
		t.Errorf("adopted stream's stats after a new stream = %+v, want 2 packets", st)
	}
	if got, err := d2.PinnedLinks(); err != nil || !slices.Equal(got, []int{lo}) {
		t.Errorf("PinnedLinks = %v, %v; want [1]", got, err)
	}
	inNetNS(t, ns, func() {
		if err := d2.Attach(lo, ModeGeneric); err != nil {
			t.Fatalf("Attach adopting the pinned link: %v", err)
		}
	})
	if got, want := xdpProgID(t, ns, lo), progID(t, d2); got != want || got == id1 {
		t.Errorf("after adoption the interface runs program %d, want the new %d (old %d)", got, want, id1)
	}

	if err := d2.Unpin(); err != nil {
		t.Fatalf("Unpin: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin directory still there after Unpin: %v", err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, ns, lo); got != 0 {
		t.Errorf("after Unpin and Close the interface still runs program %d", got)
	}
}

// TestPinDirLock: one Datapath at a time holds a pin directory. A second
// Open fails with ErrPinDirBusy (also ErrUnavailable, so relayd with
// xdp=auto falls back to userspace) naming the directory and the holder,
// and touches nothing: the first one's rule survives. After Close the
// directory is free again; another version's directory never was taken.
func TestPinDirLock(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	opts := Options{PinPath: base, MaxShared: 1024}
	dir := filepath.Join(base, PinVersion)

	d1, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	defer d1.Close()
	rule := Rule{Local: eps4.relayIn, Source: eps4.relayOut, Dest: eps4.bob}
	if err := d1.UpsertRule(rule); err != nil {
		t.Fatal(err)
	}

	_, err = Open(opts)
	if !errors.Is(err, ErrPinDirBusy) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second Open on the same pins: %v, want ErrPinDirBusy matching ErrUnavailable", err)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if got, err := d1.LookupRule(rule.Local); err != nil || got.Dest != rule.Dest {
		t.Errorf("first Datapath's rule after the refused Open = %+v, %v; want it intact", got, err)
	}

	// The lock is per version: a layout change pins elsewhere.
	if got, err := lockPinDir(base); err != nil {
		t.Errorf("lock of the base directory while %s is held: %v", dir, err)
	} else {
		got.Close()
	}

	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := Open(opts)
	if err != nil {
		t.Fatalf("Open after the holder closed: %+v", err)
	}
	if got, err := d2.LookupRule(rule.Local); err != nil || got.Dest != rule.Dest {
		t.Errorf("adopted rule = %+v, %v; want the first Datapath's", got, err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lockPinDir(filepath.Join(base, "nonexistent")); err == nil || errors.Is(err, ErrPinDirBusy) {
		t.Errorf("lock of a missing directory: %v, want an open error", err)
	}
}

// TestOldLayoutRemoved: pins of another layout version (v1, from before
// the streams array) are never half used: Open removes them — the old
// program's pinned link detaches, the interface takes ours — and says so
// in one line. While another process holds their lock, Open fails with
// ErrPinDirBusy and leaves them alone.
func TestOldLayoutRemoved(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	if err := ensureBPFFS(base, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(base, "v1")
	ns := newNetNS(t)
	const lo = 1
	bare := loadBareTest(t)
	makeOld := func() {
		if err := os.MkdirAll(old, 0o700); err != nil {
			t.Fatal(err)
		}
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "fwd", Type: ebpf.Hash, KeySize: 20, ValueSize: 76, MaxEntries: 16})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := m.Pin(filepath.Join(old, "fwd")); err != nil {
			t.Fatal(err)
		}
		inNetNS(t, ns, func() {
			l, err := link.AttachXDP(link.XDPOptions{Program: bare.BarePass, Interface: lo, Flags: link.XDPGenericMode})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if err := l.Pin(filepath.Join(old, "link_1")); err != nil {
				t.Fatal(err)
			}
		})
		if xdpProgID(t, ns, lo) == 0 {
			t.Fatal("the old layout's pinned link is not attached")
		}
	}

	makeOld()
	held, err := lockPinDir(old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{PinPath: base, PinLinks: true}); !errors.Is(err, ErrPinDirBusy) || !strings.Contains(err.Error(), "v1") {
		t.Errorf("Open while another process holds the v1 pins: %v, want ErrPinDirBusy naming v1", err)
	}
	held.Close()
	if _, err := os.Stat(filepath.Join(old, "link_1")); err != nil {
		t.Errorf("v1 pins touched while locked: %v", err)
	}

	var logs bytes.Buffer
	d, err := Open(Options{PinPath: base, PinLinks: true, MaxShared: 64, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open over v1 pins: %+v", err)
	}
	defer d.Close()
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("v1 pin directory still there: %v", err)
	}
	if got := xdpProgID(t, ns, lo); got != 0 {
		t.Errorf("the old program (%d) is still attached", got)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, "older layout") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], old) || !strings.Contains(lines[0], "link_1") {
		t.Errorf("log lines about the old layout = %q, want one naming %s and its pins", lines, old)
	}
	inNetNS(t, ns, func() {
		if err := d.Attach(lo, ModeGeneric); err != nil {
			t.Errorf("Attach after the old link went: %v", err)
		}
	})
}

// TestPinnedMapsReplaced: pinned maps of another size, or planes of other
// addresses, are replaced (one log line) rather than refused or half
// used; the same layout is adopted.
func TestPinnedMapsReplaced(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	a, b := eps4.relayIn.Addr(), netip.MustParseAddr("198.51.100.2")
	rule := Rule{Local: eps4.relayIn, Source: eps4.relayOut, Dest: eps4.bob}
	steps := []struct {
		name     string
		opts     Options
		replaced bool
	}{
		{"first", Options{MaxShared: 64, LocalAddrs: []netip.Addr{a}}, false},
		{"same", Options{MaxShared: 64, LocalAddrs: []netip.Addr{a}}, false},
		{"other_address", Options{MaxShared: 64, LocalAddrs: []netip.Addr{b}}, true},
		{"more_addresses", Options{MaxShared: 64, LocalAddrs: []netip.Addr{b, a}}, true},
		{"bigger", Options{MaxShared: 128, LocalAddrs: []netip.Addr{b, a}}, true},
		{"no_planes", Options{MaxShared: 128}, true},
	}
	for i, st := range steps {
		var logs bytes.Buffer
		opts := st.opts
		opts.PinPath = base
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		d, err := Open(opts)
		if err != nil {
			t.Fatalf("%s: Open: %+v", st.name, err)
		}
		replaced := strings.Count(logs.String(), "replaced pinned fast path maps")
		if (replaced == 1) != st.replaced || replaced > 1 {
			t.Errorf("%s: %d replacement lines, want replaced=%v; log:\n%s", st.name, replaced, st.replaced, logs.String())
		}
		_, err = d.LookupRule(rule.Local)
		if adopted := err == nil; adopted != (i > 0 && !st.replaced) {
			t.Errorf("%s: rule adopted = %v (%v)", st.name, adopted, err)
		}
		if err := d.UpsertRule(rule); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(Options{PinLinks: true}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("PinLinks without PinPath: %v, want ErrInvalidOptions", err)
	}
	d := openTest(t, Options{})
	if err := d.Attach(1, Mode(7)); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Attach with an unknown mode: %v, want ErrInvalidOptions", err)
	}
	if err := d.Attach(0, ModeGeneric); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Attach to ifindex 0: %v, want ErrInvalidOptions", err)
	}
	if err := d.Detach(12345); !errors.Is(err, ErrNotAttached) {
		t.Errorf("Detach of a foreign interface: %v, want ErrNotAttached", err)
	}
	if d.PinDir() != "" {
		t.Errorf("PinDir = %q without pinning", d.PinDir())
	}
}

// vethIn creates a veth pair with both ends in ns, up, and returns the
// index of the first.
func vethIn(t *testing.T, ns netns.NsHandle, name, peer string) int {
	t.Helper()
	l, _ := vethPair(t, ns, name, nil, ns, peer, nil)
	return l.Attrs().Index
}

// A pinned link that is not this interface's hook — its interface was
// deleted, or the pin names the same index in another namespace — is not
// adopted: its pin is removed and the interface gets its own link, rather
// than an Attach that fails (the interface left in userspace) or that swaps
// the program of an interface elsewhere and leaves this one without.
func TestStalePinnedLink(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	opts := Options{PinPath: base, PinLinks: true, MaxShared: 1024}
	for _, tc := range []struct {
		name string
		gone bool // the first interface is deleted; else it lives on in its namespace
	}{{"interface deleted", true}, {"same index in another namespace", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ns1, ns2 := newNetNS(t), newNetNS(t)
			idx := vethIn(t, ns1, "old0", "old1")
			d1, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			inNetNS(t, ns1, func() {
				if err := d1.Attach(idx, ModeGeneric); err != nil {
					t.Fatal(err)
				}
			})
			old := progID(t, d1)
			if err := d1.Close(); err != nil { // pinned: stays attached
				t.Fatal(err)
			}
			if tc.gone {
				h, err := netlink.NewHandleAt(ns1)
				if err != nil {
					t.Fatal(err)
				}
				l, _ := h.LinkByName("old0")
				if err := h.LinkDel(l); err != nil {
					t.Fatal(err)
				}
				h.Close()
			}
			// A fresh namespace numbers its interfaces from lo's 1 again:
			// the new pair's first end gets the old one's index.
			if got := vethIn(t, ns2, "new0", "new1"); got != idx {
				t.Fatalf("new interface has index %d, want the old one's %d", got, idx)
			}

			var logs bytes.Buffer
			o := opts
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			d2, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			defer d2.Close()
			inNetNS(t, ns2, func() {
				if err := d2.Attach(idx, ModeGeneric); err != nil {
					t.Fatalf("Attach with a stale pin for index %d: %v", idx, err)
				}
			})
			if got, want := xdpProgID(t, ns2, idx), progID(t, d2); got != want {
				t.Errorf("the new interface runs program %d, want this Datapath's %d", got, want)
			}
			if !strings.Contains(logs.String(), "removed a pinned xdp link") {
				t.Errorf("no log line for the stale pin:\n%s", logs.String())
			}
			if !tc.gone {
				// Its pin gone, the other namespace's link goes with it
				// (the kernel releases a link from a work queue): nothing
				// there runs a program this pin dir's relayd no longer
				// owns.
				deadline := time.Now().Add(2 * time.Second)
				for xdpProgID(t, ns1, idx) != 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if got := xdpProgID(t, ns1, idx); got != 0 {
					t.Errorf("the other namespace's interface still runs program %d (old %d)", got, old)
				}
			}
			if err := d2.Unpin(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// RemovePins takes away what a previous relayd left pinned — its program
// detaches, its maps go — unless a running relayd holds the directory; a
// path without pins (or not on bpffs) is left alone.
func TestRemovePins(t *testing.T) {
	privileged(t)
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	if got, err := RemovePins(base, nil); err != nil || got != nil {
		t.Errorf("RemovePins on a path that does not exist: %v, %v", got, err)
	}
	opts := Options{PinPath: base, PinLinks: true, MaxShared: 1024, LocalAddrs: []netip.Addr{eps4.relayIn.Addr()}}
	ns := newNetNS(t)
	const lo = 1
	d1, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	inNetNS(t, ns, func() {
		if err := d1.Attach(lo, ModeGeneric); err != nil {
			t.Fatal(err)
		}
	})
	if err := d1.Close(); err != nil { // pinned: forwarding on
		t.Fatal(err)
	}
	if xdpProgID(t, ns, lo) == 0 {
		t.Fatal("no program attached after the pinned Close")
	}

	d2, err := Open(opts) // a running relayd holds the pins
	if err != nil {
		t.Fatal(err)
	}
	if got, err := RemovePins(base, nil); !errors.Is(err, ErrPinDirBusy) || len(got) != 0 {
		t.Errorf("RemovePins while a relayd holds the pins: %v, %v; want ErrPinDirBusy and nothing removed", got, err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	got, err := RemovePins(base, slog.New(slog.NewTextHandler(&logs, nil)))
	if dir := filepath.Join(base, PinVersion); err != nil || !slices.Equal(got, []string{dir}) {
		t.Fatalf("RemovePins = %v, %v; want [%s]", got, err, dir)
	}
	if _, err := os.Stat(filepath.Join(base, PinVersion)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin directory still there: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second) // links are released from a work queue
	for xdpProgID(t, ns, lo) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if id := xdpProgID(t, ns, lo); id != 0 {
		t.Errorf("program %d still attached after RemovePins", id)
	}
	if !strings.Contains(logs.String(), "removed the fast path pins a previous relayd left") {
		t.Errorf("no log line:\n%s", logs.String())
	}
}
