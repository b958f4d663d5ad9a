// SPDX-License-Identifier: Apache-2.0

// Package fastpath joins the XDP datapath (package bpf) to the media plane:
// it attaches the program to the interfaces that hold relayd's media
// addresses, turns the media plane's offload rules into kernel rules with
// next hops resolved from the kernel's routes and neighbours (and keeps them
// fresh), and reads the kernel's per-stream counters back.
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

// refreshEvery is how often installed rules' next hops are checked against
// the kernel's routes and neighbours.
const refreshEvery = 5 * time.Second

// Config says where and how to attach.
type Config struct {
	Mode    string       // auto, native or generic
	Addrs   []netip.Addr // media addresses (interface local addresses)
	PinPath string       // bpffs base; "" pins nothing
	Logger  *slog.Logger
}

// FastPath implements media.FastPath with the XDP program.
type FastPath struct {
	dp      *bpf.Datapath
	log     *slog.Logger
	ingress map[netip.Addr]int // media address -> attached ifindex
	stop    chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	slots map[netip.AddrPort]uint32
	rules map[netip.AddrPort]bpf.Rule
}

var _ media.FastPath = (*FastPath)(nil)

// Open loads the program and attaches it to the interfaces of cfg.Addrs. Any
// error means relayd runs in userspace only; it says why.
func Open(cfg Config) (*FastPath, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "fastpath")
	dp, err := bpf.Open(bpf.Options{PinPath: cfg.PinPath, PinLinks: cfg.PinPath != "", Logger: log})
	if err != nil {
		return nil, err
	}
	f := &FastPath{dp: dp, log: log, ingress: map[netip.Addr]int{}, stop: make(chan struct{}),
		done: make(chan struct{}), slots: map[netip.AddrPort]uint32{}, rules: map[netip.AddrPort]bpf.Rule{}}
	if err := f.clearStale(); err != nil {
		dp.Close()
		return nil, err
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
	go f.refresh()
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

// clearStale removes rules and slots a previous run left in pinned maps:
// their calls are gone with that process.
func (f *FastPath) clearStale() error {
	rules, err := f.dp.Rules()
	if err != nil {
		return fmt.Errorf("list stale rules: %w", err)
	}
	if len(rules) == 0 {
		return nil
	}
	locals := make([]netip.AddrPort, len(rules))
	for i, r := range rules {
		locals[i] = r.Local
	}
	if _, err := f.dp.RemoveRules(locals); err != nil {
		return fmt.Errorf("remove stale rules: %w", err)
	}
	for _, r := range rules {
		_ = f.dp.FreeSlot(r.Slot)
	}
	f.log.Info("removed rules left by a previous run", "rules", len(rules))
	return nil
}

// Offload installs the kernel rule for r.
func (f *FastPath) Offload(r media.OffloadRule) error {
	if _, ok := f.ingress[r.Local.Addr().Unmap()]; !ok {
		return ErrNotAttached
	}
	nh, err := bpf.ResolveNextHop(r.Dest.Addr())
	if err != nil {
		return fmt.Errorf("next hop of %s: %w", r.Dest, err)
	}
	if !slices.Contains(f.dp.Attached(), nh.Ifindex) {
		return fmt.Errorf("egress ifindex %d for %s: %w", nh.Ifindex, r.Dest, ErrNotAttached)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	slot, ok := f.slots[r.Local]
	if !ok {
		if slot, err = f.dp.AllocSlot(); err != nil {
			return fmt.Errorf("stats slot: %w", err)
		}
		f.slots[r.Local] = slot
	}
	rule := bpf.Rule{Local: r.Local, Peer: r.Source, Source: r.Egress, Dest: r.Dest, NextHop: nh,
		Flags: bpf.FlagCheckSource | bpf.FlagRTPCheck, Slot: slot}
	if r.TOS >= 0 {
		rule.TOS, rule.Flags = uint8(r.TOS), rule.Flags|bpf.FlagSetTOS
	}
	if err := f.dp.UpsertRule(rule); err != nil {
		return fmt.Errorf("install rule for %s: %w", r.Local, err)
	}
	f.rules[r.Local] = rule
	return nil
}

// Withdraw removes local's rule.
func (f *FastPath) Withdraw(local netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, local)
	if err := f.dp.RemoveRule(local); err != nil && !errors.Is(err, bpf.ErrNoRule) {
		return err
	}
	return nil
}

// Counters reads local's stats slot.
func (f *FastPath) Counters(local netip.AddrPort) (media.KernelCounters, bool) {
	f.mu.Lock()
	slot, ok := f.slots[local]
	f.mu.Unlock()
	if !ok {
		return media.KernelCounters{}, false
	}
	st, err := f.dp.StreamStats(slot)
	if err != nil {
		return media.KernelCounters{}, false
	}
	kc := media.KernelCounters{Packets: st.Packets, Bytes: st.Bytes}
	if st.Packets > 0 {
		kc.LastPacket = st.LastSeenTime()
	}
	return kc, true
}

// Release frees local's stats slot.
func (f *FastPath) Release(local netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slot, ok := f.slots[local]; ok {
		_ = f.dp.FreeSlot(slot)
		delete(f.slots, local)
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

// refresh keeps installed rules' next hops in step with the kernel's routes
// and neighbours (a router's MAC changing, a route moving to another NIC).
func (f *FastPath) refresh() {
	defer close(f.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		f.mu.Lock()
		rules := make([]bpf.Rule, 0, len(f.rules))
		for _, r := range f.rules {
			rules = append(rules, r)
		}
		f.mu.Unlock()
		for _, r := range rules {
			nh, err := bpf.ResolveNextHop(r.Dest.Addr())
			if err != nil || sameHop(nh, r.NextHop) {
				continue
			}
			f.mu.Lock()
			if cur, ok := f.rules[r.Local]; ok && cur.Dest == r.Dest {
				cur.NextHop = nh
				if err := f.dp.UpsertRule(cur); err == nil {
					f.rules[r.Local] = cur
					f.log.Info("next hop changed", "local", r.Local, "dest", r.Dest, "ifindex", nh.Ifindex, "mac", nh.DstMAC)
				}
			}
			f.mu.Unlock()
		}
	}
}

func sameHop(a, b bpf.NextHop) bool {
	return a.Ifindex == b.Ifindex && a.SrcMAC.String() == b.SrcMAC.String() && a.DstMAC.String() == b.DstMAC.String()
}

// Close detaches the program from every interface (a clean stop leaves no
// XDP hook behind) and removes the rules; pinned maps stay for the next run.
func (f *FastPath) Close() error {
	select {
	case <-f.stop:
	default:
		close(f.stop)
		if len(f.ingress) > 0 {
			<-f.done
		}
	}
	f.mu.Lock()
	locals := make([]netip.AddrPort, 0, len(f.rules))
	for l := range f.rules {
		locals = append(locals, l)
	}
	f.rules = map[netip.AddrPort]bpf.Rule{}
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
