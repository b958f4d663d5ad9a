// SPDX-License-Identifier: Apache-2.0

// Package fastpath joins the XDP datapath (package bpf) to the media plane:
// it attaches the program to the interfaces that hold relayd's media
// addresses, turns the media plane's offload rules into kernel rules with
// next hops resolved from the kernel's routes and neighbours (and keeps them
// fresh as those change), and reads the kernel's per-stream counters back.
package fastpath

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/relayd/relayd/bpf"
	"github.com/relayd/relayd/pkg/media"
)

// Modes, as the xdp configuration key spells them.
const (
	ModeAuto    = "auto"
	ModeNative  = "native"
	ModeGeneric = "generic"
)

// ErrNoInterface means no media interface could take the XDP program.
var ErrNoInterface = errors.New("no media interface took the XDP program")

// ErrNotAttached means a rule's local address is on no attached interface.
var ErrNotAttached = errors.New("address not on an interface with the XDP program")

// recheckEvery is how often every destination's next hop is resolved anew,
// once per distinct destination: route, neighbour and interface changes
// arrive as notifications within milliseconds, and this is the safety net
// for a change whose notification was lost or never sent (a policy routing
// rule).
const recheckEvery = 30 * time.Second

// routeSettle gathers the route notifications of one change (an interface
// going down withdraws many routes at once) into one round of lookups.
const routeSettle = 20 * time.Millisecond

// Config says where and how to attach.
type Config struct {
	Mode    string       // auto, native or generic
	Addrs   []netip.Addr // media addresses (interface local addresses)
	PinPath string       // bpffs base; "" pins nothing
	// Adopt keeps the rules and counters a previous relayd left in the
	// pinned maps (it handed its calls over): they keep forwarding until
	// Prune drops those whose calls were not restored. Without Adopt they
	// are removed at once.
	Adopt  bool
	Logger *slog.Logger
}

// FastPath implements media.FastPath with the XDP program.
type FastPath struct {
	dp      *bpf.Datapath
	log     *slog.Logger
	ingress map[netip.Addr]int // media address -> attached ifindex
	// upsert writes rules whose next hop changed (dp.UpsertRules; tests
	// count what it is given).
	upsert   func([]bpf.Rule) (int, error)
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // nil until the refresh goroutine runs

	mu     sync.Mutex
	rules  map[netip.AddrPort]bpf.Rule
	byDest map[netip.Addr]map[netip.AddrPort]struct{} // rules by destination address
	hops   *hopTable
	// retry holds destinations some of whose rules could not be rewritten;
	// the next change or re-check tries again.
	retry map[netip.Addr]struct{}
	// adopted are the locals whose rules a previous relayd left (Adopt)
	// and that no Offload, Withdraw, Release or Prune has touched since.
	adopted map[netip.AddrPort]struct{}
}

var _ media.Adopter = (*FastPath)(nil)

var _ media.FastPath = (*FastPath)(nil)

// Open loads the program and attaches it to the interfaces of cfg.Addrs. Any
// error means relayd runs in userspace only; it says why. Interfaces,
// routes and neighbours are those of the calling thread's network
// namespace, for the FastPath's whole life.
func Open(cfg Config) (*FastPath, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "fastpath")
	// Every media address gets its own plane of kernel stream entries,
	// one per port (12 MiB): the program finds a packet's stream without
	// a lookup. Loopback addresses get none in auto mode, where they are
	// never attached.
	var planes []netip.Addr
	for _, a := range cfg.Addrs {
		if cfg.Mode != ModeAuto || !a.Unmap().IsLoopback() {
			planes = append(planes, a)
		}
	}
	dp, err := bpf.Open(bpf.Options{PinPath: cfg.PinPath, PinLinks: cfg.PinPath != "", LocalAddrs: planes, Logger: log})
	if err != nil {
		return nil, err
	}
	f := &FastPath{dp: dp, log: log, ingress: map[netip.Addr]int{}, upsert: dp.UpsertRules, stop: make(chan struct{}),
		rules:  map[netip.AddrPort]bpf.Rule{},
		byDest: map[netip.Addr]map[netip.AddrPort]struct{}{}, retry: map[netip.Addr]struct{}{},
		adopted: map[netip.AddrPort]struct{}{}}
	if !cfg.Adopt {
		if err := f.clearStale(); err != nil {
			dp.Close()
			return nil, err
		}
	} else {
		rules, err := dp.Rules()
		if err != nil {
			dp.Close()
			return nil, fmt.Errorf("list adopted rules: %w", err)
		}
		for _, r := range rules {
			f.adopted[plain(r.Local)] = struct{}{}
		}
	}
	attached := map[int]bool{}
	for _, addr := range cfg.Addrs {
		ifc, err := interfaceOf(addr)
		if err != nil {
			log.Warn("media address stays in userspace", "address", addr, "reason", err)
			continue
		}
		if !attached[ifc.Index] {
			if err := f.attach(ifc, cfg.Mode); err != nil {
				log.Warn("interface stays in userspace", "interface", ifc.Name, "address", addr, "reason", err)
				continue
			}
			attached[ifc.Index] = true
		}
		f.ingress[addr.Unmap()] = ifc.Index
	}
	if len(f.ingress) == 0 {
		f.Close()
		return nil, ErrNoInterface
	}
	// In the calling thread's network namespace, like the attach above;
	// the refresh keeps to it whatever thread it later runs on.
	if err := f.startRefresh(); err != nil {
		f.Close()
		return nil, fmt.Errorf("track routes and neighbours: %w", err)
	}
	return f, nil
}

// attach hooks the program into ifc: native where the driver supports it,
// generic otherwise. veth and bridges get generic in auto mode: for traffic
// that starts as an skb native mode gains nothing there, and a native veth
// drops what it sends unless its peer runs XDP or GRO.
func (f *FastPath) attach(ifc *net.Interface, mode string) error {
	if ifc.Flags&net.FlagLoopback != 0 && mode == ModeAuto {
		return errors.New("loopback: same-host traffic never reaches XDP on a NIC")
	}
	want := bpf.ModeNative
	switch mode {
	case ModeGeneric:
		want = bpf.ModeGeneric
	case ModeAuto:
		if kind := linkKind(ifc.Index); kind == "veth" || kind == "bridge" {
			want = bpf.ModeGeneric
		}
	}
	err := f.dp.Attach(ifc.Index, want)
	if err != nil && mode == ModeAuto && want == bpf.ModeNative && errors.Is(err, bpf.ErrNativeUnsupported) {
		f.log.Info("native XDP unsupported, using generic", "interface", ifc.Name, "reason", err)
		want = bpf.ModeGeneric
		err = f.dp.Attach(ifc.Index, want)
	}
	if err != nil {
		return err
	}
	if want == bpf.ModeNative && linkKind(ifc.Index) == "veth" {
		// Measured on 6.18 (BENCHMARKS.md): a native XDP_TX on a veth is
		// dropped, and the veth keeps dropping after the program is gone.
		f.log.Warn("native XDP on a veth: packets leaving by the interface they arrived on are dropped by the kernel; use xdp = generic or auto here",
			"interface", ifc.Name)
	}
	f.log.Info("XDP fast path attached", "interface", ifc.Name, "mode", modeName(want))
	return nil
}

func modeName(m bpf.Mode) string {
	if m == bpf.ModeGeneric {
		return ModeGeneric
	}
	return ModeNative
}

func linkKind(ifindex int) string {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return ""
	}
	return l.Type()
}

// interfaceOf finds the interface holding addr.
func interfaceOf(addr netip.Addr) (*net.Interface, error) {
	ifcs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	for i := range ifcs {
		addrs, err := ifcs[i].Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr.Unmap() {
					return &ifcs[i], nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no interface holds %s", addr)
}

// clearStale removes the rules and stream entries (counters) a previous
// run left in pinned maps: their calls are gone with that process.
func (f *FastPath) clearStale() error {
	locals, err := f.dp.Streams()
	if err != nil {
		return fmt.Errorf("list stale streams: %w", err)
	}
	if len(locals) == 0 {
		return nil
	}
	n, err := f.dp.ReleaseStreams(locals)
	if err != nil {
		return fmt.Errorf("remove stale streams: %w", err)
	}
	f.log.Info("removed rules left by a previous run", "streams", n)
	return nil
}

// Prune removes the adopted stream entries (rules and counters) whose local
// is not in keep: the streams of calls the new relayd did not restore.
func (f *FastPath) Prune(keep map[netip.AddrPort]bool) (int, error) {
	locals, err := f.dp.Streams()
	if err != nil {
		return 0, fmt.Errorf("list adopted streams: %w", err)
	}
	var drop []netip.AddrPort
	for _, l := range locals {
		if !keep[l] {
			drop = append(drop, l)
		}
	}
	if len(drop) == 0 {
		return 0, nil
	}
	f.mu.Lock()
	for _, l := range drop {
		f.untrack(l)
		delete(f.adopted, plain(l))
	}
	f.mu.Unlock()
	n, err := f.dp.ReleaseStreams(drop)
	if err != nil {
		return n, fmt.Errorf("remove streams of calls not restored: %w", err)
	}
	f.log.Info("removed adopted rules of calls not restored", "streams", n, "kept", len(locals)-n)
	return n, nil
}

// Offload installs the kernel rule for r. Its next hop comes from the
// cache of destinations in use (one route lookup the first time a
// destination is seen) and is kept fresh from then on.
func (f *FastPath) Offload(r media.OffloadRule) error {
	if _, ok := f.ingress[r.Local.Addr().Unmap()]; !ok {
		// Attachments are fixed at start: no later attempt can succeed.
		return fmt.Errorf("local %s: %w (%w)", r.Local, ErrNotAttached, media.ErrNoKernelPath)
	}
	dst := r.Dest.Addr().Unmap()
	f.mu.Lock()
	defer f.mu.Unlock()
	// Resolved and recorded under one lock: a change handled in between
	// would otherwise miss this rule.
	nh, err := f.hops.lookup(dst)
	if err != nil {
		f.forgetUnused(dst)
		return fmt.Errorf("next hop of %s: %w", r.Dest, err)
	}
	if !slices.Contains(f.dp.Attached(), nh.Ifindex) {
		f.forgetUnused(dst)
		return fmt.Errorf("egress ifindex %d for %s: %w", nh.Ifindex, r.Dest, ErrNotAttached)
	}
	rule := bpf.Rule{Local: r.Local, Peer: r.Source, Source: r.Egress, Dest: r.Dest, NextHop: nh,
		Flags: bpf.FlagCheckSource | bpf.FlagRTPCheck | bpf.FlagRTCPPass}
	if r.TOS >= 0 {
		rule.TOS, rule.Flags = uint8(r.TOS), rule.Flags|bpf.FlagSetTOS
	}
	if err := f.dp.UpsertRule(rule); err != nil {
		f.forgetUnused(dst)
		return fmt.Errorf("install rule for %s: %w", r.Local, err)
	}
	f.track(rule)
	delete(f.adopted, plain(r.Local))
	return nil
}

// Adopted says whether local's rule is one a previous relayd left, which
// this one has not rewritten or removed yet (media.Adopter).
func (f *FastPath) Adopted(local netip.AddrPort) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.adopted[plain(local)]
	return ok
}

// plain is ap with an IPv4-mapped address unmapped, as rules key them.
func plain(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

// Withdraw removes local's rule; its counters stay until Release.
func (f *FastPath) Withdraw(local netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.untrack(local)
	delete(f.adopted, plain(local))
	if err := f.dp.RemoveRule(local); err != nil && !errors.Is(err, bpf.ErrNoRule) {
		return err
	}
	return nil
}

// destOf is the address r sends to, as the next-hop cache keys it.
func destOf(r bpf.Rule) netip.Addr { return r.Dest.Addr().Unmap() }

// track records r as installed; f.mu is held and r's destination is in
// f.hops.
func (f *FastPath) track(r bpf.Rule) {
	dst := destOf(r)
	if old, ok := f.rules[r.Local]; ok && destOf(old) != dst {
		f.untrack(r.Local)
	}
	f.rules[r.Local] = r
	set := f.byDest[dst]
	if set == nil {
		set = map[netip.AddrPort]struct{}{}
		f.byDest[dst] = set
	}
	set[r.Local] = struct{}{}
}

// untrack forgets local's rule, and its destination once no rule sends
// there; f.mu is held.
func (f *FastPath) untrack(local netip.AddrPort) {
	r, ok := f.rules[local]
	if !ok {
		return
	}
	delete(f.rules, local)
	dst := destOf(r)
	delete(f.byDest[dst], local)
	f.forgetUnused(dst)
}

// forgetUnused drops dst from the next-hop cache when no rule sends there,
// so that the cache, and the re-check, stay as large as the set of
// destinations in use; f.mu is held.
func (f *FastPath) forgetUnused(dst netip.Addr) {
	if len(f.byDest[dst]) > 0 {
		return
	}
	delete(f.byDest, dst)
	delete(f.retry, dst)
	f.hops.forget(dst)
}

// Counters reads local's kernel counters straight from the memory-mapped
// streams array (bpf.Datapath.StreamStats): no syscall and no lock — not
// f.mu, which rule writes hold — so the session layer may ask on every
// query, liveness check and total. The values are live, not a periodic
// snapshot: a query right after a burst sees all of it.
func (f *FastPath) Counters(local netip.AddrPort) (media.KernelCounters, bool) {
	st, err := f.dp.StreamStats(local)
	if err != nil {
		return media.KernelCounters{}, false
	}
	kc := media.KernelCounters{Packets: st.Packets, Bytes: st.Bytes}
	if st.Packets > 0 {
		kc.LastPacket = st.LastSeenTime()
	}
	return kc, true
}

// Release frees local's stream entry (its rule, if any, and counters).
func (f *FastPath) Release(local netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.untrack(local)
	delete(f.adopted, plain(local))
	if err := f.dp.ReleaseStream(local); err != nil && !errors.Is(err, bpf.ErrNoStream) {
		f.log.Warn("release fast path stream", "local", local, "error", err)
	}
}

// Reasons returns the program's global counters by name.
func (f *FastPath) Reasons() map[string]uint64 {
	c, err := f.dp.Counters()
	if err != nil {
		return nil
	}
	out := make(map[string]uint64, len(c))
	for r, n := range c {
		out[strings.ReplaceAll(r.String(), " ", "_")] = n
	}
	return out
}

// applyHops rewrites, in one batch, the rules sending to dsts (and to the
// destinations left to retry) whose installed next hop differs from the
// cache's. A destination that no longer resolves gets the zero next hop:
// the program passes its packets to the socket, the userspace send makes
// the kernel resolve the neighbour again, and its notification brings the
// rules back. f.mu is held.
func (f *FastPath) applyHops(dsts []netip.Addr, cause string) {
	for dst := range f.retry {
		dsts = append(dsts, dst)
	}
	clear(f.retry)
	var (
		batch      []bpf.Rule
		unresolved int
		example    netip.Addr
	)
	for _, dst := range dsts {
		d, ok := f.hops.dests[dst]
		if !ok {
			continue
		}
		for local := range f.byDest[dst] {
			r := f.rules[local]
			if sameHop(r.NextHop, d.hop) {
				continue
			}
			if !example.IsValid() {
				example = dst
			}
			if d.err != nil {
				unresolved++
			}
			r.NextHop = d.hop
			batch = append(batch, r)
		}
	}
	if len(batch) == 0 {
		return
	}
	n, err := f.upsert(batch)
	for _, r := range batch[:n] {
		f.rules[r.Local] = r
	}
	if err != nil {
		for _, r := range batch[n:] {
			f.retry[destOf(r)] = struct{}{}
		}
		f.log.Warn("rewrite next hops of fast path rules", "rules", len(batch)-n, "error", err)
		if n == 0 {
			return
		}
	}
	// One line per change, not per rule: a gateway's new MAC rewrites
	// every rule behind it.
	attrs := []any{"cause", cause, "rules", n, "unresolved", unresolved, "example", example}
	if d := f.hops.dests[example]; d.err != nil {
		attrs = append(attrs, "reason", d.err)
	} else {
		attrs = append(attrs, "ifindex", d.hop.Ifindex, "mac", d.hop.DstMAC.String())
	}
	f.log.Info("next hops changed", attrs...)
}

// resync re-reads interfaces, neighbours and the route of every
// destination in use — one request per distinct destination, none per
// rule — and rewrites the rules whose next hop changed. The kernel is
// asked without f.mu held, so installs are not held up.
func (f *FastPath) resync(cause string) error {
	links, err := f.hops.k.links()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	neighs, err := f.hops.k.neighbours()
	if err != nil {
		return fmt.Errorf("list neighbours: %w", err)
	}
	f.mu.Lock()
	dsts := f.hops.destinations()
	f.mu.Unlock()
	rs := f.routeAll(dsts)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyHops(f.hops.reload(links, neighs, rs), cause)
	return nil
}

// reroute looks up again the routes of the destinations inside prefixes
// (whose routes changed) and rewrites the rules whose next hop moved.
func (f *FastPath) reroute(prefixes []netip.Prefix) {
	f.mu.Lock()
	dsts := f.hops.covered(prefixes)
	f.mu.Unlock()
	if len(dsts) == 0 {
		return
	}
	rs := f.routeAll(dsts)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyHops(f.hops.setRoutes(rs), "route")
}

// neighChanged applies one neighbour notification: no kernel request, and
// work only for the destinations behind that neighbour.
func (f *FastPath) neighChanged(k neighKey, mac net.HardwareAddr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyHops(f.hops.neighChanged(k, mac), "neighbour")
}

// linkChanged applies one interface notification.
func (f *FastPath) linkChanged(l linkInfo, removed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applyHops(f.hops.linkChanged(l, removed), "interface")
}

// routeAll looks up the route of each of dsts, stopping early when the
// FastPath closes.
func (f *FastPath) routeAll(dsts []netip.Addr) []routed {
	rs := make([]routed, 0, len(dsts))
	for i, dst := range dsts {
		if i%1024 == 1023 {
			select {
			case <-f.stop:
				return rs
			default:
			}
		}
		rt, err := f.hops.k.routeTo(dst)
		rs = append(rs, routed{dst: dst, rt: rt, err: err})
	}
	return rs
}

// HandOver stops like Close but leaves the program attached and every
// rule in the pinned maps: the kernel keeps forwarding while no relayd
// runs, and the next one adopts it all (Config.Adopt). Without pins
// (PinPath "") nothing survives the process and this is Close.
func (f *FastPath) HandOver() error {
	if !f.dp.Pinned() {
		return f.Close()
	}
	f.stopOnce.Do(func() { close(f.stop) })
	if f.done != nil {
		<-f.done
	}
	f.log.Info("XDP fast path left forwarding for the next relayd", "rules", f.ruleCount())
	return f.dp.Close()
}

func (f *FastPath) ruleCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rules)
}

// Close detaches the program from every interface (a clean stop leaves no
// XDP hook behind) and removes the rules; pinned maps stay for the next run.
func (f *FastPath) Close() error {
	f.stopOnce.Do(func() { close(f.stop) })
	if f.done != nil {
		<-f.done // its notification sockets are closed, no goroutine is left
	}
	f.mu.Lock()
	locals := make([]netip.AddrPort, 0, len(f.rules))
	for l := range f.rules {
		locals = append(locals, l)
	}
	f.rules = map[netip.AddrPort]bpf.Rule{}
	f.byDest = map[netip.Addr]map[netip.AddrPort]struct{}{}
	f.mu.Unlock()
	if len(locals) > 0 {
		_, _ = f.dp.RemoveRules(locals)
	}
	for _, ifindex := range f.dp.Attached() {
		if err := f.dp.Detach(ifindex); err != nil {
			f.log.Warn("detach XDP", "ifindex", ifindex, "error", err)
		}
	}
	return f.dp.Close()
}
