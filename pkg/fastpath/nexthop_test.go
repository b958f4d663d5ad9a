// SPDX-License-Identifier: Apache-2.0

package fastpath

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/relayd/relayd/bpf"
)

// fakeKernel answers like the kernel from a routing table and counts the
// requests, which are what a refresh costs.
type fakeKernel struct {
	mu     sync.Mutex
	routes map[netip.Prefix]fakeRoute // longest prefix wins
	ifaces []linkInfo
	neighs map[neighKey]net.HardwareAddr

	routeCalls, dumps int
}

type fakeRoute struct {
	ifindex int
	gw      netip.Addr // invalid: on-link
}

func (k *fakeKernel) routeTo(dst netip.Addr) (route, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.routeCalls++
	best, found := netip.Prefix{}, false
	for p := range k.routes {
		if p.Contains(dst) && (!found || p.Bits() > best.Bits()) {
			best, found = p, true
		}
	}
	if !found {
		return route{}, fmt.Errorf("route to %v: %w", dst, bpf.ErrNoRoute)
	}
	r := k.routes[best]
	via := dst
	if r.gw.IsValid() {
		via = r.gw
	}
	return route{ifindex: r.ifindex, via: via}, nil
}

func (k *fakeKernel) links() ([]linkInfo, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumps++
	return slices.Clone(k.ifaces), nil
}

func (k *fakeKernel) neighbours() (map[neighKey]net.HardwareAddr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dumps++
	return maps.Clone(k.neighs), nil
}

func (k *fakeKernel) calls() (routes, dumps int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.routeCalls, k.dumps
}

var (
	macEth1 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	macEth2 = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	macGw1  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	macGw1b = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x12}
	macGw1c = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x13}
	macGw2  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x21}
	macHost = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x31}

	gw1   = netip.MustParseAddr("10.0.0.1")
	gw1b  = netip.MustParseAddr("10.0.0.9")
	gw2   = netip.MustParseAddr("10.1.0.1")
	host  = netip.MustParseAddr("10.0.0.7")
	inet1 = netip.MustParseAddr("198.51.100.1")
	inet2 = netip.MustParseAddr("198.51.100.2")
	inet3 = netip.MustParseAddr("203.0.113.5")
)

// testKernel: eth1 (ifindex 2) with the default gateway gw1 and an on-link
// host; eth2 (ifindex 3) with gw2 for 203.0.113.0/24.
func testKernel() *fakeKernel {
	return &fakeKernel{
		routes: map[netip.Prefix]fakeRoute{
			netip.MustParsePrefix("0.0.0.0/0"):      {ifindex: 2, gw: gw1},
			netip.MustParsePrefix("10.0.0.0/24"):    {ifindex: 2},
			netip.MustParsePrefix("203.0.113.0/24"): {ifindex: 3, gw: gw2},
		},
		ifaces: []linkInfo{
			{ifindex: 1, name: "lo", encap: "loopback", mac: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
			{ifindex: 2, name: "eth1", encap: "ether", mac: macEth1},
			{ifindex: 3, name: "eth2", encap: "ether", mac: macEth2},
		},
		neighs: map[neighKey]net.HardwareAddr{
			{2, gw1}:  macGw1,
			{2, gw1b}: macGw1b,
			{2, host}: macHost,
			{3, gw2}:  macGw2,
		},
	}
}

// upserts records what the refresh writes.
type upserts struct {
	calls int
	rules []bpf.Rule
	fail  error
}

func (u *upserts) upsert(rules []bpf.Rule) (int, error) {
	u.calls++
	if u.fail != nil {
		return 0, u.fail
	}
	u.rules = append(u.rules, rules...)
	return len(rules), nil
}

// newTableFastPath is a FastPath without a datapath: rules go to u.
func newTableFastPath(t testing.TB, k kernel, u *upserts) *FastPath {
	t.Helper()
	f := &FastPath{log: slog.New(slog.DiscardHandler), upsert: u.upsert, stop: make(chan struct{}),
		rules:  map[netip.AddrPort]bpf.Rule{},
		byDest: map[netip.Addr]map[netip.AddrPort]struct{}{}, retry: map[netip.Addr]struct{}{}, hops: newHopTable(k)}
	if err := f.resync("start"); err != nil {
		t.Fatal(err)
	}
	return f
}

// install records a rule from local to dst as Offload does, minus the
// datapath.
func install(t testing.TB, f *FastPath, local netip.AddrPort, dst netip.Addr) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	nh, err := f.hops.lookup(dst)
	if err != nil {
		t.Fatalf("next hop of %v: %v", dst, err)
	}
	f.track(bpf.Rule{Local: local, Dest: netip.AddrPortFrom(dst, 5000), NextHop: nh})
}

// installMany spreads n rules over dsts, round robin.
func installMany(t testing.TB, f *FastPath, n int, dsts []netip.Addr) {
	t.Helper()
	for i := range n {
		local := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i >> 16)}), uint16(i))
		install(t, f, local, dsts[i%len(dsts)])
	}
}

// hopsOf counts the installed rules per next hop, "ifindex smac>dmac".
func hopsOf(f *FastPath) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, r := range f.rules {
		out[fmt.Sprintf("%d %v>%v", r.NextHop.Ifindex, r.NextHop.SrcMAC, r.NextHop.DstMAC)]++
	}
	return out
}

func hopKey(ifindex int, smac, dmac net.HardwareAddr) string {
	return fmt.Sprintf("%d %v>%v", ifindex, smac, dmac)
}

// TestRefreshCostsPerDestination: 10,000 rules towards 4 destinations cost
// 4 route lookups to install and 4 per re-check, and a change rewrites
// exactly the rules it moves, in one batch.
func TestRefreshCostsPerDestination(t *testing.T) {
	k := testKernel()
	u := &upserts{}
	f := newTableFastPath(t, k, u)
	const rules = 10000
	installMany(t, f, rules, []netip.Addr{inet1, inet2, host, inet3})
	if routes, _ := k.calls(); routes != 4 {
		t.Errorf("installing %d rules towards 4 destinations took %d route lookups, want 4", rules, routes)
	}
	want := map[string]int{
		hopKey(2, macEth1, macGw1):  rules / 2,
		hopKey(2, macEth1, macHost): rules / 4,
		hopKey(3, macEth2, macGw2):  rules / 4,
	}
	if got := hopsOf(f); !maps.Equal(got, want) {
		t.Fatalf("installed next hops %v, want %v", got, want)
	}

	steps := []struct {
		name       string
		change     func()
		wantRoutes int // route lookups the change costs
		wantRules  int // rules it rewrites
		want       map[string]int
	}{
		{
			name:       "re-check without a change",
			change:     func() { mustResync(t, f) },
			wantRoutes: 4,
			want:       want,
		},
		{
			name:   "neighbour state change only",
			change: func() { f.neighChanged(neighKey{2, gw1}, macGw1) },
			want:   want,
		},
		{
			name:      "gateway MAC changes",
			change:    func() { f.neighChanged(neighKey{2, gw1}, macGw1c) },
			wantRules: rules / 2,
			want: map[string]int{
				hopKey(2, macEth1, macGw1c): rules / 2,
				hopKey(2, macEth1, macHost): rules / 4,
				hopKey(3, macEth2, macGw2):  rules / 4,
			},
		},
		{
			name: "route to a /24 moves to another gateway",
			change: func() {
				k.mu.Lock()
				k.routes[netip.MustParsePrefix("198.51.100.0/24")] = fakeRoute{ifindex: 2, gw: gw1b}
				k.mu.Unlock()
				f.reroute([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
			},
			wantRoutes: 2, // inet1 and inet2; not host or inet3
			wantRules:  rules / 2,
			want: map[string]int{
				hopKey(2, macEth1, macGw1b): rules / 2,
				hopKey(2, macEth1, macHost): rules / 4,
				hopKey(3, macEth2, macGw2):  rules / 4,
			},
		},
		{
			name:      "host's neighbour entry goes: its rules fall back to the stack",
			change:    func() { f.neighChanged(neighKey{2, host}, nil) },
			wantRules: rules / 4,
			want: map[string]int{
				hopKey(2, macEth1, macGw1b): rules / 2,
				hopKey(0, nil, nil):         rules / 4,
				hopKey(3, macEth2, macGw2):  rules / 4,
			},
		},
		{
			name:      "and comes back",
			change:    func() { f.neighChanged(neighKey{2, host}, macHost) },
			wantRules: rules / 4,
			want: map[string]int{
				hopKey(2, macEth1, macGw1b): rules / 2,
				hopKey(2, macEth1, macHost): rules / 4,
				hopKey(3, macEth2, macGw2):  rules / 4,
			},
		},
		{
			name:      "eth2 gets a new MAC",
			change:    func() { f.linkChanged(linkInfo{ifindex: 3, name: "eth2", encap: "ether", mac: macHost}, false) },
			wantRules: rules / 4,
			want: map[string]int{
				hopKey(2, macEth1, macGw1b): rules / 2,
				hopKey(2, macEth1, macHost): rules / 4,
				hopKey(3, macHost, macGw2):  rules / 4,
			},
		},
		{
			name: "default route change: every destination once, no rule moves",
			change: func() {
				f.reroute([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
			},
			wantRoutes: 4,
			want: map[string]int{
				hopKey(2, macEth1, macGw1b): rules / 2,
				hopKey(2, macEth1, macHost): rules / 4,
				hopKey(3, macHost, macGw2):  rules / 4,
			},
		},
	}
	for _, st := range steps {
		routes0, _ := k.calls()
		u.rules = nil
		st.change()
		routes, _ := k.calls()
		if routes-routes0 != st.wantRoutes {
			t.Errorf("%s: %d route lookups, want %d", st.name, routes-routes0, st.wantRoutes)
		}
		if len(u.rules) != st.wantRules {
			t.Errorf("%s: %d rules rewritten, want %d", st.name, len(u.rules), st.wantRules)
		}
		if got := hopsOf(f); !maps.Equal(got, st.want) {
			t.Errorf("%s: next hops %v, want %v", st.name, got, st.want)
		}
	}
}

// TestUnresolvedDestination: Offload learns why a destination has no
// next hop, and nothing is cached for a destination no rule uses.
func TestUnresolvedDestination(t *testing.T) {
	k := testKernel()
	delete(k.routes, netip.MustParsePrefix("0.0.0.0/0"))
	f := newTableFastPath(t, k, &upserts{})
	tests := []struct {
		dst  netip.Addr
		want error
	}{
		{inet1, bpf.ErrNoRoute},
		{netip.MustParseAddr("10.0.0.99"), bpf.ErrNeighborUnknown},
		{host, nil},
	}
	for _, tc := range tests {
		f.mu.Lock()
		_, err := f.hops.lookup(tc.dst)
		f.forgetUnused(tc.dst)
		cached := len(f.hops.dests)
		f.mu.Unlock()
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("lookup(%v) = %v, want %v", tc.dst, err, tc.want)
		}
		if cached != 0 {
			t.Errorf("after lookup(%v) without a rule, %d destinations cached, want 0", tc.dst, cached)
		}
	}
}

// TestWithdrawForgetsDestination: the re-check looks up only destinations
// that installed rules still use.
func TestWithdrawForgetsDestination(t *testing.T) {
	k := testKernel()
	f := newTableFastPath(t, k, &upserts{})
	a, b := netip.MustParseAddrPort("192.0.2.1:4000"), netip.MustParseAddrPort("192.0.2.1:4002")
	install(t, f, a, inet1)
	install(t, f, b, inet3)
	install(t, f, b, inet1) // b re-aimed: inet3 is no longer used
	f.mu.Lock()
	f.untrack(a)
	n := len(f.hops.dests)
	f.mu.Unlock()
	if n != 1 {
		t.Errorf("%d destinations cached, want 1 (inet1, still used by b)", n)
	}
	before, _ := k.calls()
	mustResync(t, f)
	if after, _ := k.calls(); after-before != 1 {
		t.Errorf("re-check took %d route lookups, want 1", after-before)
	}
}

// TestRewriteFailureRetried: rules whose rewrite failed are tried again
// with the next change, even one elsewhere.
func TestRewriteFailureRetried(t *testing.T) {
	k := testKernel()
	u := &upserts{}
	f := newTableFastPath(t, k, u)
	install(t, f, netip.MustParseAddrPort("192.0.2.1:4000"), inet1)
	install(t, f, netip.MustParseAddrPort("192.0.2.1:4002"), host)
	u.fail = errors.New("map full")
	f.neighChanged(neighKey{2, gw1}, macGw1b)
	u.fail = nil
	f.neighChanged(neighKey{2, host}, macGw2)
	want := map[string]int{hopKey(2, macEth1, macGw1b): 1, hopKey(2, macEth1, macGw2): 1}
	if got := hopsOf(f); !maps.Equal(got, want) {
		t.Errorf("next hops %v, want %v", got, want)
	}
}

// BenchmarkRefresh re-checks N rules towards 16 destinations: the cost
// follows the destinations (16 route lookups per op) whatever N.
func BenchmarkRefresh(b *testing.B) {
	dsts := make([]netip.Addr, 16)
	for i := range dsts {
		dsts[i] = netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
	}
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			k := testKernel()
			f := newTableFastPath(b, k, &upserts{})
			installMany(b, f, n, dsts)
			before, _ := k.calls()
			for b.Loop() {
				mustResync(b, f)
			}
			after, _ := k.calls()
			b.ReportMetric(float64(after-before)/float64(b.N), "route-lookups/op")
		})
	}
}

func mustResync(tb testing.TB, f *FastPath) {
	tb.Helper()
	if err := f.resync("test"); err != nil {
		tb.Fatal(err)
	}
}
