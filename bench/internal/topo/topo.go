// SPDX-License-Identifier: Apache-2.0

package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/relayd/relayd/bench/internal/netns"
)

// Kind names a topology.
type Kind string

// The topologies. In the veth ones the relay namespace does not forward, so
// media can only cross through the relay process (or its fast path).
const (
	// TwoLegs: callers in one namespace (198.51.100.0/24), callees in another
	// (203.0.113.0/24), each reached through its own veth pair; the relay has
	// one interface per side and the offer carries direction flags, as on a
	// relay between an access and a core network.
	TwoLegs Kind = "veth2"
	// OneLeg: callers and callees share one namespace and one veth pair
	// (198.51.100.0/24 split in halves); the relay has a single interface,
	// as a cloud relay "on a stick".
	OneLeg Kind = "veth1"
	// Loopback: relay and endpoints share one namespace and talk over lo;
	// quick runs, no NIC on the path.
	Loopback Kind = "loopback"
)

// ParseKind accepts a topology name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case TwoLegs, OneLeg, Loopback:
		return k, nil
	}
	return "", fmt.Errorf("%w: %q (want veth2, veth1 or loopback)", ErrBadTopology, s)
}

// Config says what to build.
type Config struct {
	Kind Kind
	// AddrsPerSide is how many endpoint addresses each side gets (default
	// 200, at most 100 per side in veth1, 250 otherwise).
	AddrsPerSide int
	// RelayCPUs and GenCPUs, when both set and disjoint, steer receive
	// processing with RPS: packets arriving for the relay are processed on
	// the relay's CPUs, packets arriving for the endpoints on the
	// generator's, as on two separate hosts.
	RelayCPUs, GenCPUs []int
	// Steering says where receive processing runs (default SteerNAPI).
	Steering Steering
	// EndpointGRO turns GRO on for the endpoint-side veths, which receive the
	// relay's output. An XDP relay that redirects frames into a veth needs
	// GRO or an XDP program on the peer (docs/fastpath.md §2.1); the bench
	// keeps the topology the same for every relay mode.
	EndpointGRO bool
	Log         *slog.Logger
}

// Side is one party's half of the topology.
type Side struct {
	NS    string       // namespace holding this side's endpoints
	Addrs []netip.Addr // endpoint addresses
	Relay netip.Addr   // the relay's address facing this side
	Iface string       // relay interface name (ng "direction" value)
	Dev   string       // the relay's network device facing this side
	// PortBase is the first UDP port the bench's endpoint sockets use on
	// this side; ports below the relay's range keep them apart in loopback.
	PortBase int
}

// Topology is what Create built; Close removes it.
type Topology struct {
	Kind    Kind
	RelayNS string
	Sides   [2]Side
	// Interfaces are the relay's --interface values, Directions the offer's
	// "direction" list (nil with one interface).
	Interfaces []string
	Directions []string
	NG         netip.AddrPort // ng control address inside RelayNS
	PortMin    int            // relay media port range
	PortMax    int
	Notes      []string // what was set up, for the report

	namespaces         []string
	relayCPUs, genCPUs []int
	log                *slog.Logger
}

// Fixed parts of the address plan: documentation ranges only (RFC 5737), so
// nothing the bench sends can reach a real network.
const (
	relayPortMin = 20000
	relayPortMax = 59999
	ngPort       = 2223
	callerPorts  = 10000
	calleePorts  = 15000
	prefix       = "rbench-"
	// RelayDevPrefix names the relay-side veths (rbxr0, rbxr1) and
	// endpointDev the endpoint side: distinctive names, because the NAPI
	// kernel threads are found by name (napi/rbxr0-N) across namespaces.
	RelayDevPrefix = "rbxr"
	endpointDev    = "rbxe"
)

// Create builds the topology. On error everything created so far is
// removed again.
func Create(ctx context.Context, cfg Config) (*Topology, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Steering == "" {
		cfg.Steering = SteerNAPI
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	removeStale(cfg.Log)
	t := &Topology{Kind: cfg.Kind, log: cfg.Log, PortMin: relayPortMin, PortMax: relayPortMax}
	var err error
	switch cfg.Kind {
	case TwoLegs:
		err = t.buildTwoLegs(ctx, cfg)
	case OneLeg:
		err = t.buildOneLeg(ctx, cfg)
	case Loopback:
		err = t.buildLoopback(ctx, cfg)
	default:
		err = fmt.Errorf("%w: %q", ErrBadTopology, cfg.Kind)
	}
	if err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

// Preflight refuses early, with a message that says what is missing, on a
// machine where the bench cannot create network namespaces.
func Preflight() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the bench creates network namespaces and veth pairs, which needs root (run it with sudo)", ErrNoNamespaces)
	}
	if _, err := ipBinary(); err != nil {
		return fmt.Errorf("%w: %v", ErrNoNamespaces, err)
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return fmt.Errorf("%w: this kernel has no network namespaces (%v)", ErrNoNamespaces, err)
	}
	return nil
}

func ipBinary() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("ip (iproute2) not found in PATH or sbin; install iproute2")
}

// run runs ip (or another program) and returns its combined output in the
// error.
func run(ctx context.Context, stdin string, argv ...string) error {
	if argv[0] == "ip" {
		p, err := ipBinary()
		if err != nil {
			return err
		}
		argv[0] = p
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (t *Topology) addNS(ctx context.Context, role string) (string, error) {
	name := fmt.Sprintf("%s%d-%s", prefix, os.Getpid(), role)
	if err := run(ctx, "", "ip", "netns", "add", name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoNamespaces, err)
	}
	t.namespaces = append(t.namespaces, name)
	err := netns.Do(netns.Path(name), func() error {
		// New namespaces do not forward by default; writing it down keeps
		// the "media only crosses through the relay" claim independent of
		// what the host's defaults become.
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("sysctls in %s: %w", name, err)
	}
	return name, run(ctx, "", "ip", "-n", name, "link", "set", "lo", "up")
}

// addrRange returns n addresses starting at base.
func addrRange(base netip.Addr, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	a := base
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

// addAddrs puts addrs on dev in ns with one `ip -batch` call: hundreds of
// separate ip processes would take seconds.
func addAddrs(ctx context.Context, ns, dev string, addrs []netip.Addr, bits int) error {
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "addr add %s/%d dev %s\n", a, bits, dev)
	}
	return run(ctx, b.String(), "ip", "-n", ns, "-batch", "-")
}

// veth creates a pair from relayDev in the relay namespace to epDev in ns and
// brings both up.
func (t *Topology) veth(ctx context.Context, relayDev, ns, epDev string, relayAddr netip.Addr, bits int) error {
	steps := [][]string{
		{"ip", "-n", t.RelayNS, "link", "add", relayDev, "type", "veth", "peer", "name", epDev, "netns", ns},
		{"ip", "-n", t.RelayNS, "addr", "add", fmt.Sprintf("%s/%d", relayAddr, bits), "dev", relayDev},
		{"ip", "-n", t.RelayNS, "link", "set", relayDev, "up"},
		{"ip", "-n", ns, "link", "set", epDev, "up"},
	}
	for _, s := range steps {
		if err := run(ctx, "", s...); err != nil {
			return err
		}
	}
	return nil
}

func clampAddrs(n, limit int) int {
	if n <= 0 {
		n = 200
	}
	return min(n, limit)
}

func (t *Topology) buildTwoLegs(ctx context.Context, cfg Config) error {
	var err error
	if t.RelayNS, err = t.addNS(ctx, "relay"); err != nil {
		return err
	}
	nsA, err := t.addNS(ctx, "a")
	if err != nil {
		return err
	}
	nsB, err := t.addNS(ctx, "b")
	if err != nil {
		return err
	}
	n := clampAddrs(cfg.AddrsPerSide, 250)
	t.Sides[0] = Side{NS: nsA, Relay: netip.MustParseAddr("198.51.100.1"), Iface: "callers", PortBase: callerPorts,
		Addrs: addrRange(netip.MustParseAddr("198.51.100.2"), n)}
	t.Sides[1] = Side{NS: nsB, Relay: netip.MustParseAddr("203.0.113.1"), Iface: "callees", PortBase: calleePorts,
		Addrs: addrRange(netip.MustParseAddr("203.0.113.2"), n)}
	devs := [2]string{RelayDevPrefix + "0", RelayDevPrefix + "1"}
	t.Sides[0].Dev, t.Sides[1].Dev = devs[0], devs[1]
	for i, s := range t.Sides {
		if err := t.veth(ctx, devs[i], s.NS, endpointDev, s.Relay, 24); err != nil {
			return err
		}
		if err := addAddrs(ctx, s.NS, endpointDev, s.Addrs, 24); err != nil {
			return err
		}
		t.Interfaces = append(t.Interfaces, s.Iface+"/"+s.Relay.String())
	}
	t.Directions = []string{t.Sides[0].Iface, t.Sides[1].Iface}
	t.NG = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ngPort)
	return t.tune(ctx, cfg, devs[:], []string{nsA, nsB})
}

func (t *Topology) buildOneLeg(ctx context.Context, cfg Config) error {
	var err error
	if t.RelayNS, err = t.addNS(ctx, "relay"); err != nil {
		return err
	}
	ns, err := t.addNS(ctx, "ab")
	if err != nil {
		return err
	}
	n := clampAddrs(cfg.AddrsPerSide, 100)
	relay := netip.MustParseAddr("198.51.100.1")
	t.Sides[0] = Side{NS: ns, Relay: relay, PortBase: callerPorts, Addrs: addrRange(netip.MustParseAddr("198.51.100.2"), n)}
	t.Sides[1] = Side{NS: ns, Relay: relay, PortBase: calleePorts, Addrs: addrRange(netip.MustParseAddr("198.51.100.130"), n)}
	dev := RelayDevPrefix + "0"
	t.Sides[0].Dev, t.Sides[1].Dev = dev, dev
	if err := t.veth(ctx, dev, ns, endpointDev, relay, 24); err != nil {
		return err
	}
	all := append(append([]netip.Addr{}, t.Sides[0].Addrs...), t.Sides[1].Addrs...)
	if err := addAddrs(ctx, ns, endpointDev, all, 24); err != nil {
		return err
	}
	t.Interfaces = []string{relay.String()}
	t.NG = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ngPort)
	return t.tune(ctx, cfg, []string{dev}, []string{ns})
}

func (t *Topology) buildLoopback(ctx context.Context, cfg Config) error {
	var err error
	if t.RelayNS, err = t.addNS(ctx, "lo"); err != nil {
		return err
	}
	// All of 127/8 is local on lo, so every endpoint gets its own address
	// without any configuration.
	n := clampAddrs(cfg.AddrsPerSide, 250)
	relay := netip.MustParseAddr("127.0.0.1")
	t.Sides[0] = Side{NS: t.RelayNS, Relay: relay, PortBase: callerPorts, Addrs: addrRange(netip.MustParseAddr("127.0.1.1"), n)}
	t.Sides[1] = Side{NS: t.RelayNS, Relay: relay, PortBase: calleePorts, Addrs: addrRange(netip.MustParseAddr("127.0.2.1"), n)}
	t.Sides[0].Dev, t.Sides[1].Dev = "lo", "lo"
	t.Interfaces = []string{relay.String()}
	t.NG = netip.AddrPortFrom(relay, ngPort)
	t.Notes = append(t.Notes, "loopback: relay and endpoints share one namespace; receive processing runs on the sending CPU")
	return nil
}

// Steering says where each side's receive processing runs.
type Steering string

// The steering modes.
const (
	// SteerNAPI (the default) turns on GRO, and so NAPI, on every veth and
	// runs each NAPI instance in a kernel thread pinned to the CPUs of the
	// receiving side: the relay's for the relay-side veths, the
	// generator's for the endpoints'. A native XDP program on a relay-side
	// veth runs in that thread, the generic one in the stack above it, so
	// the relay's CPUs carry all of the relay host's work, and under load
	// a busy thread polls without an interrupt per packet.
	SteerNAPI Steering = "napi"
	// SteerRPS steers with RPS instead: an inter-processor interrupt per
	// packet burst, expensive in a VM.
	SteerRPS Steering = "rps"
	// SteerNone processes packets on whichever CPU sent them.
	SteerNone Steering = "none"
)

// ParseSteering accepts a steering name.
func ParseSteering(s string) (Steering, error) {
	switch v := Steering(s); v {
	case SteerNAPI, SteerRPS, SteerNone:
		return v, nil
	}
	return "", fmt.Errorf("%w: steering %q (want napi, rps or none)", ErrBadTopology, s)
}

// tune applies the veth settings the measurements depend on
// (docs/fastpath.md §2.1, §2.2, §4): TX checksum offload off where the
// generator sends (a local socket's CHECKSUM_PARTIAL packet rewritten by an
// XDP program arrives with a bad checksum), GRO on the endpoint side (an
// XDP redirect into a veth needs NAPI on its peer), and the steering.
func (t *Topology) tune(ctx context.Context, cfg Config, relayDevs, epNS []string) error {
	gro := cfg.EndpointGRO || cfg.Steering == SteerNAPI
	for _, ns := range epNS {
		if err := SetOffloads(netns.Path(ns), endpointDev, offTx(), boolp(gro)); err != nil {
			return fmt.Errorf("offloads on %s %s: %w", ns, endpointDev, err)
		}
	}
	t.Notes = append(t.Notes, "endpoint veths: TX checksum offload off (full checksums on the wire)")
	if gro {
		t.Notes = append(t.Notes, "endpoint veths: GRO on (NAPI receive, as an XDP redirect target needs)")
	}
	t.relayCPUs, t.genCPUs = cfg.RelayCPUs, cfg.GenCPUs
	split := len(cfg.RelayCPUs) > 0 && len(cfg.GenCPUs) > 0 && !overlap(cfg.RelayCPUs, cfg.GenCPUs)
	switch {
	case cfg.Steering == SteerNone:
		t.Notes = append(t.Notes, "no steering: receive processing runs on the sending CPU")
		return nil
	case !split:
		t.Notes = append(t.Notes, "no steering: relay and generator share CPUs")
		return nil
	case cfg.Steering == SteerRPS:
		relayMask, genMask := cpuMask(cfg.RelayCPUs), cpuMask(cfg.GenCPUs)
		for _, dev := range relayDevs {
			if err := setSysfs(ctx, t.RelayNS, dev, "queues/rx-0/rps_cpus", relayMask); err != nil {
				return err
			}
		}
		for _, ns := range epNS {
			if err := setSysfs(ctx, ns, endpointDev, "queues/rx-0/rps_cpus", genMask); err != nil {
				return err
			}
		}
		t.Notes = append(t.Notes, fmt.Sprintf("RPS: relay-side veths -> CPU mask %s, endpoint-side veths -> CPU mask %s", relayMask, genMask))
		return nil
	}
	for _, dev := range relayDevs {
		// TX checksum offload off takes TSO with it, which is what makes
		// veth hand a socket's packet to its peer's NAPI instead of the
		// sending CPU's backlog: without it the relay's CPU would also do
		// the endpoints' receive work.
		if err := SetOffloads(netns.Path(t.RelayNS), dev, offTx(), boolp(true)); err != nil {
			return fmt.Errorf("offloads on %s %s: %w", t.RelayNS, dev, err)
		}
		if err := setSysfs(ctx, t.RelayNS, dev, "threaded", "1"); err != nil {
			return err
		}
	}
	for _, ns := range epNS {
		if err := setSysfs(ctx, ns, endpointDev, "threaded", "1"); err != nil {
			return err
		}
	}
	if err := t.PinNAPI(); err != nil {
		return err
	}
	t.Notes = append(t.Notes, "threaded NAPI with GRO and without TX checksum offload (so without TSO) on every veth: each side's receive work runs in NAPI threads pinned to that side's CPUs at real-time priority 1 (as softirq would run) — the relay's are counted as relay CPU, the endpoints' as generator CPU")
	return nil
}

func offTx() *bool       { return boolp(false) }
func boolp(b bool) *bool { return &b }

// setSysfs writes a veth's sysfs attribute. sysfs shows the namespace of
// whoever mounted it, so the write goes through `ip netns exec`, which
// remounts it.
func setSysfs(ctx context.Context, ns, dev, attr, value string) error {
	path := fmt.Sprintf("/sys/class/net/%s/%s", dev, attr)
	return run(ctx, "", "ip", "netns", "exec", ns, "sh", "-c", fmt.Sprintf("echo %s > %s", value, path))
}

func cpuMask(cpus []int) string {
	if len(cpus) == 0 {
		return ""
	}
	var words []uint32
	for _, c := range cpus {
		for len(words) <= c/32 {
			words = append(words, 0)
		}
		words[c/32] |= 1 << (c % 32)
	}
	parts := make([]string, len(words))
	for i, w := range words {
		parts[len(words)-1-i] = fmt.Sprintf("%08x", w)
	}
	return strings.Join(parts, ",")
}

func overlap(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// Close removes every namespace the topology created; processes still
// inside must have been stopped (their veths go with the namespace).
func (t *Topology) Close() error {
	var errs []error
	for i := len(t.namespaces) - 1; i >= 0; i-- {
		if err := run(context.Background(), "", "ip", "netns", "delete", t.namespaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	t.namespaces = nil
	return errors.Join(errs...)
}

// removeStale deletes namespaces left by an earlier bench that was killed
// before it could clean up (its PID no longer exists).
func removeStale(log *slog.Logger) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // another bench is running
		}
		if err := run(context.Background(), "", "ip", "netns", "delete", e.Name()); err == nil {
			log.Info("removed a stale namespace from a killed bench", "netns", e.Name())
		}
	}
}
