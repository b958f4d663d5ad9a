// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package fastpath

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/relayd/relayd/bpf"
	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/test/testenv"
)

// privileged skips a test that needs root, or fails it when CI is set: a
// skip there would hide that the proof never ran.
func privileged(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(tb, "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) for network namespaces and XDP")
	}
}

// nsHandle is a netlink handle into ns, closed at cleanup.
func nsHandle(t *testing.T, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// newNetNS and inNetNS: see testenv.
var (
	newNetNS = testenv.NewNetNS
	inNetNS  = testenv.InNetNS
)

// relayNet is a relay namespace whose r0 (10.0.1.1/24) is a veth to a peer
// namespace (10.0.1.2/24).
type relayNet struct {
	relay netns.NsHandle
	h     *netlink.Handle // in relay
	r0    netlink.Link
}

func newRelayNet(t *testing.T) *relayNet {
	t.Helper()
	privileged(t)
	relay, peer := newNetNS(t), newNetNS(t)
	h := nsHandle(t, relay)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "r0"}, PeerName: "p0", PeerNamespace: netlink.NsFd(peer)}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	hp := nsHandle(t, peer)
	for _, end := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{h, "r0", "10.0.1.1/24"}, {hp, "p0", "10.0.1.2/24"}} {
		l, err := end.h.LinkByName(end.name)
		if err != nil {
			t.Fatal(err)
		}
		ipn, _ := netlink.ParseIPNet(end.addr)
		if err := end.h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			t.Fatalf("%s: add %s: %v", end.name, end.addr, err)
		}
		if err := end.h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", end.name, err)
		}
	}
	r0, err := h.LinkByName("r0")
	if err != nil {
		t.Fatal(err)
	}
	return &relayNet{relay: relay, h: h, r0: r0}
}

// setNeigh is `ip neigh replace ip lladdr mac dev r0` in the relay.
func (n *relayNet) setNeigh(t *testing.T, ip string, mac net.HardwareAddr) {
	t.Helper()
	err := n.h.NeighSet(&netlink.Neigh{LinkIndex: n.r0.Attrs().Index, Family: netlink.FAMILY_V4,
		State: netlink.NUD_PERMANENT, IP: net.ParseIP(ip), HardwareAddr: mac})
	if err != nil {
		t.Fatalf("neighbour %s: %v", ip, err)
	}
}

func (n *relayNet) delNeigh(t *testing.T, ip string) {
	t.Helper()
	err := n.h.NeighDel(&netlink.Neigh{LinkIndex: n.r0.Attrs().Index, Family: netlink.FAMILY_V4, IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatalf("delete neighbour %s: %v", ip, err)
	}
}

// setRoute is `ip route replace prefix via gw dev r0` in the relay.
func (n *relayNet) setRoute(t *testing.T, prefix, gw string) {
	t.Helper()
	dst, _ := netlink.ParseIPNet(prefix)
	err := n.h.RouteReplace(&netlink.Route{Dst: dst, Gw: net.ParseIP(gw), LinkIndex: n.r0.Attrs().Index})
	if err != nil {
		t.Fatalf("route %s via %s: %v", prefix, gw, err)
	}
}

// open opens a FastPath in the relay namespace, attached to r0.
func (n *relayNet) open(t *testing.T, pinPath string) (*FastPath, error) {
	t.Helper()
	var (
		f   *FastPath
		err error
	)
	inNetNS(t, n.relay, func() {
		f, err = Open(Config{Mode: ModeGeneric, Addrs: []netip.Addr{netip.MustParseAddr("10.0.1.1")},
			PinPath: pinPath, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	})
	if errors.Is(err, bpf.ErrUnavailable) && !errors.Is(err, bpf.ErrPinDirBusy) && os.Getenv("CI") == "" {
		t.Skipf("fast path unavailable: %v", err)
	}
	return f, err
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// offloadRule sends what arrives at 10.0.1.1:local from the peer to dest.
func offloadRule(local uint16, dest string) media.OffloadRule {
	return media.OffloadRule{
		Local:  netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), local),
		Source: netip.MustParseAddrPort("10.0.1.2:5000"),
		Egress: netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), local+2),
		Dest:   netip.MustParseAddrPort(dest),
		TOS:    -1,
	}
}

// waitHop waits until the kernel rule for local has the next hop
// (ifindex, dmac), and says how long that took.
func waitHop(t *testing.T, f *FastPath, local netip.AddrPort, ifindex int, dmac net.HardwareAddr, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r, err := f.dp.LookupRule(local)
		if err != nil {
			t.Fatalf("rule for %v: %v", local, err)
		}
		if r.NextHop.Ifindex == ifindex && bytes.Equal(r.NextHop.DstMAC, dmac) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("rule for %v has next hop %d %v after %v, want %d %v", local, r.NextHop.Ifindex, r.NextHop.DstMAC, within, ifindex, dmac)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNextHopFollowsChanges: installed rules follow a neighbour's new MAC
// (`ip neigh replace`), a route moved to another gateway, and a neighbour
// that goes and comes back, each within a bound far below the re-check
// period, so notifications and not the re-check drive them. The rules are
// installed from a goroutine outside the relay namespace: lookups go to
// the namespace the FastPath was opened in. Close leaves no goroutine.
func TestNextHopFollowsChanges(t *testing.T) {
	n := newRelayNet(t)
	var (
		macA = net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01}
		macB = net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 0x02}
		macC = net.HardwareAddr{0x02, 0xcc, 0, 0, 0, 0x03}
	)
	n.setNeigh(t, "10.0.1.2", macA)
	n.setNeigh(t, "10.0.1.3", macC)
	n.setRoute(t, "198.51.100.0/24", "10.0.1.3")
	goroutines := runtime.NumGoroutine()

	f, err := n.open(t, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()
	direct, routed := offloadRule(4000, "10.0.1.2:5002"), offloadRule(4010, "198.51.100.7:6000")
	for _, r := range []media.OffloadRule{direct, routed} {
		if err := f.Offload(r); err != nil {
			t.Fatalf("Offload %v -> %v: %v", r.Local, r.Dest, err)
		}
	}
	r0 := n.r0.Attrs().Index
	const bound = 2 * time.Second // recheckEvery is 30 s
	waitHop(t, f, direct.Local, r0, macA, 0)
	waitHop(t, f, routed.Local, r0, macC, 0)

	n.setNeigh(t, "10.0.1.2", macB)
	took := waitHop(t, f, direct.Local, r0, macB, bound)
	t.Logf("neighbour MAC change reached the rule in %v", took)
	waitHop(t, f, routed.Local, r0, macC, 0)

	n.setRoute(t, "198.51.100.0/24", "10.0.1.2")
	took = waitHop(t, f, routed.Local, r0, macB, bound)
	t.Logf("route change reached the rule in %v", took)

	// Without a neighbour the program passes the packets to the socket;
	// the userspace send resolves it again.
	n.delNeigh(t, "10.0.1.2")
	waitHop(t, f, direct.Local, 0, nil, bound)
	waitHop(t, f, routed.Local, 0, nil, bound)
	if err := f.Offload(offloadRule(4020, "10.0.1.2:5004")); !errors.Is(err, bpf.ErrNeighborUnknown) {
		t.Errorf("Offload towards a neighbour that is gone: %v, want ErrNeighborUnknown", err)
	}
	n.setNeigh(t, "10.0.1.2", macA)
	waitHop(t, f, direct.Local, r0, macA, bound)
	waitHop(t, f, routed.Local, r0, macA, bound)

	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	closed = true
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > goroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before Open:\n%s", got, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

// TestSecondOpenKeepsRules: a second relayd on the same pin directory is
// refused before it touches anything (it used to clear the first one's
// rules at start), with an error that makes xdp=auto fall back and names
// the directory; once the first closes, it starts.
func TestSecondOpenKeepsRules(t *testing.T) {
	n := newRelayNet(t)
	n.setNeigh(t, "10.0.1.2", net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01})
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = syscall.Unmount(base, syscall.MNT_DETACH) })

	f1, err := n.open(t, base)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer f1.Close()
	r := offloadRule(4000, "10.0.1.2:5002")
	if err := f1.Offload(r); err != nil {
		t.Fatal(err)
	}

	_, err = n.open(t, base)
	if !errors.Is(err, bpf.ErrPinDirBusy) || !errors.Is(err, bpf.ErrUnavailable) {
		t.Fatalf("second Open on the same pins: %v, want ErrPinDirBusy matching ErrUnavailable", err)
	}
	if dir := filepath.Join(base, bpf.PinVersion); !strings.Contains(err.Error(), dir) {
		t.Errorf("error %q does not name %s", err, dir)
	}
	if _, err := f1.dp.LookupRule(r.Local); err != nil {
		t.Errorf("first relay's rule after the refused Open: %v", err)
	}

	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	f2, err := n.open(t, base)
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestHandOverAdopt: a FastPath that hands over leaves its rules in the
// pinned maps; the next one opened with Adopt reports them as adopted
// (media.Adopter) until it rewrites, withdraws or prunes them, and Prune
// drops those of calls that did not come back.
func TestHandOverAdopt(t *testing.T) {
	n := newRelayNet(t)
	n.setNeigh(t, "10.0.1.2", net.HardwareAddr{0x02, 0xaa, 0, 0, 0, 0x01})
	base := filepath.Join(t.TempDir(), "bpffs")
	t.Cleanup(func() { _ = syscall.Unmount(base, syscall.MNT_DETACH) })

	f1, err := n.open(t, base)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	kept, gone, withdrawn := offloadRule(4000, "10.0.1.2:5002"), offloadRule(4010, "10.0.1.2:5012"), offloadRule(4020, "10.0.1.2:5022")
	for _, r := range []media.OffloadRule{kept, gone, withdrawn} {
		if err := f1.Offload(r); err != nil {
			t.Fatal(err)
		}
	}
	if f1.Adopted(kept.Local) {
		t.Error("a rule this FastPath installed reads as adopted")
	}
	if err := f1.HandOver(); err != nil {
		t.Fatal(err)
	}

	var f2 *FastPath
	inNetNS(t, n.relay, func() {
		f2, err = Open(Config{Mode: ModeGeneric, Addrs: []netip.Addr{netip.MustParseAddr("10.0.1.1")},
			PinPath: base, Adopt: true, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	})
	if err != nil {
		t.Fatalf("Open adopting: %v", err)
	}
	defer f2.Close()
	for _, r := range []media.OffloadRule{kept, gone, withdrawn} {
		if !f2.Adopted(r.Local) {
			t.Errorf("%v not adopted", r.Local)
		}
		if _, err := f2.dp.LookupRule(r.Local); err != nil {
			t.Errorf("adopted rule for %v: %v", r.Local, err)
		}
	}
	if f2.Adopted(netip.MustParseAddrPort("10.0.1.1:4030")) {
		t.Error("a local without a rule reads as adopted")
	}
	// The call of 4010 did not come back.
	keep := map[netip.AddrPort]bool{kept.Local: true, withdrawn.Local: true}
	if n, err := f2.Prune(keep); err != nil || n != 1 {
		t.Errorf("Prune = %d, %v; want 1", n, err)
	}
	if f2.Adopted(gone.Local) {
		t.Error("a pruned rule still reads as adopted")
	}
	if _, err := f2.dp.LookupRule(gone.Local); err == nil {
		t.Error("the pruned rule is still installed")
	}
	// Its stream rewrites one and withdraws the other: both are its own.
	if err := f2.Offload(kept); err != nil {
		t.Fatal(err)
	}
	if err := f2.Withdraw(withdrawn.Local); err != nil {
		t.Fatal(err)
	}
	if f2.Adopted(kept.Local) || f2.Adopted(withdrawn.Local) {
		t.Error("rewritten or withdrawn rules still read as adopted")
	}
	if _, err := f2.dp.LookupRule(withdrawn.Local); err == nil {
		t.Error("the withdrawn rule is still installed")
	}
}
