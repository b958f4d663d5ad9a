// SPDX-License-Identifier: Apache-2.0

//go:build linux

package bpf

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// usableNeigh are the neighbour states the kernel itself sends to (STALE and
// the probing states still hold a MAC that is re-validated in the
// background).
const usableNeigh = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// ResolveNextHop asks the kernel (in the calling thread's network
// namespace) how it would send to dst: the egress interface from the route,
// its MAC, and the MAC of the next hop (the gateway, or dst when directly
// connected) from the neighbour table. It fails with ErrNoRoute,
// ErrUnsupportedLink (loopback, tunnels) or ErrNeighborUnknown (not resolved
// yet: send one packet through a socket and retry). The caller re-resolves
// when routes or neighbours change.
func ResolveNextHop(dst netip.Addr) (NextHop, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return NextHop{}, fmt.Errorf("resolve next hop: %w: invalid address", ErrNoRoute)
	}
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return NextHop{}, fmt.Errorf("route to %v: %w: %w", dst, ErrNoRoute, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex <= 0 {
		return NextHop{}, fmt.Errorf("route to %v: %w", dst, ErrNoRoute)
	}
	rt := routes[0]
	switch rt.Type {
	case unix.RTN_UNICAST:
	case unix.RTN_LOCAL:
		return NextHop{}, fmt.Errorf("route to %v: local address: %w", dst, ErrUnsupportedLink)
	default:
		return NextHop{}, fmt.Errorf("route to %v: route type %d: %w", dst, rt.Type, ErrNoRoute)
	}
	lk, err := netlink.LinkByIndex(rt.LinkIndex)
	if err != nil {
		return NextHop{}, fmt.Errorf("route to %v: interface %d: %w", dst, rt.LinkIndex, err)
	}
	attrs := lk.Attrs()
	if attrs.EncapType != "ether" || len(attrs.HardwareAddr) != 6 {
		return NextHop{}, fmt.Errorf("route to %v via %s (%s): %w", dst, attrs.Name, attrs.EncapType, ErrUnsupportedLink)
	}
	via := dst
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && !gw.IsUnspecified() {
		via = gw.Unmap()
	}
	family := netlink.FAMILY_V6
	if via.Is4() {
		family = netlink.FAMILY_V4
	}
	neighs, err := netlink.NeighList(rt.LinkIndex, family)
	if err != nil {
		return NextHop{}, fmt.Errorf("neighbours of %s: %w", attrs.Name, err)
	}
	for _, n := range neighs {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || ip.Unmap() != via || n.State&usableNeigh == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		return NextHop{
			Ifindex: rt.LinkIndex,
			SrcMAC:  append(net.HardwareAddr(nil), attrs.HardwareAddr...),
			DstMAC:  append(net.HardwareAddr(nil), n.HardwareAddr...),
		}, nil
	}
	return NextHop{}, fmt.Errorf("next hop %v for %v on %s: %w", via, dst, attrs.Name, ErrNeighborUnknown)
}
