// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// rawAddr is a destination in the form the kernel takes it (a sockaddr_in or
// sockaddr_in6), encoded once per endpoint change so that a send copies bytes
// and never builds an address.
type rawAddr struct {
	b [sizeofSockaddrInet6]byte
	n uint32
}

// Linux sockaddr layout (include/uapi/linux/in.h, in6.h); the media plane
// runs on Linux only, the layout is fixed by the kernel ABI.
const (
	sizeofSockaddrInet4 = 16
	sizeofSockaddrInet6 = 28
	afInet              = 2
	afInet6             = 10
)

// encodeAddr encodes ap for a socket of the given family: an IPv4 address on
// an AF_INET6 socket becomes v4-mapped.
func encodeAddr(ap netip.AddrPort, scope uint32, v6Socket bool) *rawAddr {
	r := new(rawAddr)
	r.set(ap, scope, v6Socket)
	return r
}

// set encodes ap into r (see encodeAddr) without allocating.
func (r *rawAddr) set(ap netip.AddrPort, scope uint32, v6Socket bool) {
	*r = rawAddr{}
	a := ap.Addr().Unmap()
	if a.Is4() && !v6Socket {
		binary.NativeEndian.PutUint16(r.b[0:], afInet)
		binary.BigEndian.PutUint16(r.b[2:], ap.Port())
		ip := a.As4()
		copy(r.b[4:8], ip[:])
		r.n = sizeofSockaddrInet4
		return
	}
	binary.NativeEndian.PutUint16(r.b[0:], afInet6)
	binary.BigEndian.PutUint16(r.b[2:], ap.Port())
	ip := a.As16() // v4-mapped for an IPv4 address
	copy(r.b[8:24], ip[:])
	if z := ap.Addr().Zone(); z != "" && scope == 0 {
		if n, err := strconv.ParseUint(z, 10, 32); err == nil {
			scope = uint32(n)
		}
	}
	if a.Is6() && !a.Is4In6() {
		binary.NativeEndian.PutUint32(r.b[24:], scope)
	}
	r.n = sizeofSockaddrInet6
}

// decodeAddr is the inverse of encodeAddr for what recvmmsg fills in: the
// source address (unmapped), its IPv6 scope id, and whether the family was
// one of ours.
func decodeAddr(b *[sizeofSockaddrInet6]byte) (netip.AddrPort, uint32, bool) {
	switch binary.NativeEndian.Uint16(b[0:]) {
	case afInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), 0, true
	case afInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])),
			binary.NativeEndian.Uint32(b[24:]), true
	}
	return netip.AddrPort{}, 0, false
}
