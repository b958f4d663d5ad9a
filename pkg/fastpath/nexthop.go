// SPDX-License-Identifier: Apache-2.0

package fastpath

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"github.com/relayd/relayd/bpf"
)

// route is how the kernel sends to a destination: out of ifindex, to the
// neighbour via (the gateway, or the destination itself when on-link).
type route struct {
	ifindex int
	via     netip.Addr
}

// linkInfo is what a next hop needs of an interface.
type linkInfo struct {
	ifindex int
	name    string
	encap   string // "ether" for Ethernet
	mac     net.HardwareAddr
}

func (l linkInfo) ether() bool { return l.encap == "ether" && len(l.mac) == 6 }

// neighKey names a neighbour entry: an address on an interface.
type neighKey struct {
	ifindex int
	ip      netip.Addr
}

// kernel is what the next-hop table asks the kernel, each call one netlink
// request in the network namespace the FastPath was opened in.
type kernel interface {
	// routeTo is the route lookup (`ip route get`); its errors wrap
	// bpf.ErrNoRoute or bpf.ErrUnsupportedLink.
	routeTo(dst netip.Addr) (route, error)
	// links lists every interface.
	links() ([]linkInfo, error)
	// neighbours lists the IPv4 and IPv6 neighbours with a usable MAC.
	neighbours() (map[neighKey]net.HardwareAddr, error)
}

// dest is the cached next hop of one destination address.
type dest struct {
	rt    route
	rtErr error       // no usable route: rt is meaningless
	hop   bpf.NextHop // zero when err is set
	err   error
}

// routed is the outcome of one route lookup, applied later.
type routed struct {
	dst netip.Addr
	rt  route
	err error
}

// hopTable keeps the next hop of every destination address that installed
// rules send to, so that keeping rules fresh costs work per distinct
// destination and per change, not per rule and per tick: a relay with
// 100,000 streams towards a handful of gateways resolves a handful of
// routes. It mirrors the kernel's interfaces and neighbours (dumped, then
// kept current by change notifications, which carry the new state) and
// asks the kernel for a destination's route only when the destination is
// new, when a route change may have moved it, or in the periodic re-check.
//
// It is not safe for concurrent use: FastPath.mu guards it. Methods that
// return destinations return those whose next hop changed.
type hopTable struct {
	k      kernel
	links  map[int]linkInfo
	neighs map[neighKey]net.HardwareAddr
	dests  map[netip.Addr]*dest
	// byVia finds the destinations a neighbour change affects without
	// walking them all: neighbour entries churn (state changes, garbage
	// collection) far more often than routes.
	byVia map[neighKey]map[netip.Addr]struct{}
}

func newHopTable(k kernel) *hopTable {
	return &hopTable{k: k, links: map[int]linkInfo{}, neighs: map[neighKey]net.HardwareAddr{},
		dests: map[netip.Addr]*dest{}, byVia: map[neighKey]map[netip.Addr]struct{}{}}
}

// lookup returns dst's next hop, asking the kernel for its route the first
// time. The entry stays until forget.
func (t *hopTable) lookup(dst netip.Addr) (bpf.NextHop, error) {
	d, ok := t.dests[dst]
	if !ok {
		rt, err := t.k.routeTo(dst)
		t.setRoute(dst, rt, err)
		d = t.dests[dst]
	}
	return d.hop, d.err
}

// forget drops dst (no rule sends to it any more).
func (t *hopTable) forget(dst netip.Addr) {
	if d, ok := t.dests[dst]; ok {
		t.unindex(dst, d)
		delete(t.dests, dst)
	}
}

// destinations lists the cached destinations.
func (t *hopTable) destinations() []netip.Addr {
	out := make([]netip.Addr, 0, len(t.dests))
	for dst := range t.dests {
		out = append(out, dst)
	}
	return out
}

// covered lists the cached destinations inside any of prefixes: only their
// longest-prefix match can have changed when routes to prefixes changed.
func (t *hopTable) covered(prefixes []netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for dst := range t.dests {
		for _, p := range prefixes {
			if p.Contains(dst) {
				out = append(out, dst)
				break
			}
		}
	}
	return out
}

// setRoutes applies route lookups made without the lock, skipping
// destinations forgotten meanwhile.
func (t *hopTable) setRoutes(rs []routed) []netip.Addr {
	var changed []netip.Addr
	for _, r := range rs {
		if _, ok := t.dests[r.dst]; ok && t.setRoute(r.dst, r.rt, r.err) {
			changed = append(changed, r.dst)
		}
	}
	return changed
}

// reload replaces the mirrors with fresh dumps and applies fresh routes:
// the periodic re-check, and the catch-up after lost notifications.
func (t *hopTable) reload(links []linkInfo, neighs map[neighKey]net.HardwareAddr, rs []routed) []netip.Addr {
	t.links = make(map[int]linkInfo, len(links))
	for _, l := range links {
		t.links[l.ifindex] = l
	}
	t.neighs = neighs
	for _, r := range rs {
		if d, ok := t.dests[r.dst]; ok {
			t.unindex(r.dst, d)
			d.rt, d.rtErr = r.rt, r.err
			t.index(r.dst, d)
		}
	}
	var changed []netip.Addr
	for dst, d := range t.dests {
		if t.recompute(d) {
			changed = append(changed, dst)
		}
	}
	return changed
}

// neighChanged records the neighbour k's new MAC, nil when it is gone or
// unusable (failed, incomplete).
func (t *hopTable) neighChanged(k neighKey, mac net.HardwareAddr) []netip.Addr {
	old, had := t.neighs[k]
	switch {
	case mac == nil && !had, mac != nil && had && bytes.Equal(old, mac):
		return nil // a state change only (REACHABLE <-> STALE): nothing to do
	case mac == nil:
		delete(t.neighs, k)
	default:
		t.neighs[k] = bytes.Clone(mac)
	}
	var changed []netip.Addr
	for dst := range t.byVia[k] {
		if t.recompute(t.dests[dst]) {
			changed = append(changed, dst)
		}
	}
	return changed
}

// linkChanged records an interface's new state, or its removal.
func (t *hopTable) linkChanged(l linkInfo, removed bool) []netip.Addr {
	old, had := t.links[l.ifindex]
	if removed {
		if !had {
			return nil
		}
		delete(t.links, l.ifindex)
		// The kernel flushes them too; do not wait for its notifications.
		for k := range t.neighs {
			if k.ifindex == l.ifindex {
				delete(t.neighs, k)
			}
		}
	} else {
		if had && old.encap == l.encap && bytes.Equal(old.mac, l.mac) && old.name == l.name {
			return nil // up/down, MTU, statistics: not a next-hop change
		}
		l.mac = bytes.Clone(l.mac)
		t.links[l.ifindex] = l
	}
	var changed []netip.Addr
	for dst, d := range t.dests {
		if d.rtErr == nil && d.rt.ifindex == l.ifindex && t.recompute(d) {
			changed = append(changed, dst)
		}
	}
	return changed
}

// setRoute records dst's route and reports whether its next hop changed.
func (t *hopTable) setRoute(dst netip.Addr, rt route, err error) bool {
	d, ok := t.dests[dst]
	if ok {
		t.unindex(dst, d)
	} else {
		d = &dest{}
		t.dests[dst] = d
	}
	d.rt, d.rtErr = rt, err
	t.index(dst, d)
	return t.recompute(d)
}

func (t *hopTable) index(dst netip.Addr, d *dest) {
	if d.rtErr != nil {
		return
	}
	k := neighKey{d.rt.ifindex, d.rt.via}
	set := t.byVia[k]
	if set == nil {
		set = map[netip.Addr]struct{}{}
		t.byVia[k] = set
	}
	set[dst] = struct{}{}
}

func (t *hopTable) unindex(dst netip.Addr, d *dest) {
	if d.rtErr != nil {
		return
	}
	k := neighKey{d.rt.ifindex, d.rt.via}
	delete(t.byVia[k], dst)
	if len(t.byVia[k]) == 0 {
		delete(t.byVia, k)
	}
}

// recompute derives d's next hop from its route and the mirrors, and
// reports whether it changed.
func (t *hopTable) recompute(d *dest) bool {
	hop, err := t.hopOf(d)
	changed := !sameHop(hop, d.hop)
	d.hop, d.err = hop, err
	return changed
}

func (t *hopTable) hopOf(d *dest) (bpf.NextHop, error) {
	if d.rtErr != nil {
		return bpf.NextHop{}, d.rtErr
	}
	l, ok := t.links[d.rt.ifindex]
	if !ok {
		return bpf.NextHop{}, fmt.Errorf("egress interface %d gone: %w", d.rt.ifindex, bpf.ErrNoRoute)
	}
	if !l.ether() {
		return bpf.NextHop{}, fmt.Errorf("egress %s (%s): %w", l.name, l.encap, bpf.ErrUnsupportedLink)
	}
	mac, ok := t.neighs[neighKey{d.rt.ifindex, d.rt.via}]
	if !ok {
		return bpf.NextHop{}, fmt.Errorf("next hop %v on %s: %w", d.rt.via, l.name, bpf.ErrNeighborUnknown)
	}
	return bpf.NextHop{Ifindex: l.ifindex, SrcMAC: l.mac, DstMAC: mac}, nil
}

func sameHop(a, b bpf.NextHop) bool {
	return a.Ifindex == b.Ifindex && bytes.Equal(a.SrcMAC, b.SrcMAC) && bytes.Equal(a.DstMAC, b.DstMAC)
}
