// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr (unix.Mmsghdr exists only on some GOARCHes).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

func sendmmsg(fd int, msgs []mmsghdr) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), e
}

func recvmmsg(fd int, msgs []mmsghdr) (int, unix.Errno) {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), e
}

// pktinfoLen is the size of an IP_PKTINFO control message.
var pktinfoLen = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// putPktinfoHeader writes the cmsghdr of an IP_PKTINFO message into b once;
// setPktinfoSrc then only changes the source address.
func putPktinfoHeader(b []byte) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
}

// setPktinfoSrc sets ipi_spec_dst, the source address of the datagram.
func setPktinfoSrc(b []byte, src [4]byte) {
	// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
	copy(b[unix.CmsgLen(0)+4:], src[:])
}

// The control message of IP_PKTINFO (unix has the constants as untyped
// ints; a cmsghdr's fields are int32).
const (
	ipprotoIP = int32(unix.IPPROTO_IP)
	ipPktinfo = int32(unix.IP_PKTINFO)
)

// walkCmsgs calls fn with each control message's level, type and data.
func walkCmsgs(ctrl []byte, fn func(level, typ int32, data []byte)) {
	hl := unix.CmsgLen(0)
	for len(ctrl) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < hl || l > len(ctrl) {
			return
		}
		fn(h.Level, h.Type, ctrl[hl:l])
		adv := unix.CmsgSpace(l - hl)
		if adv >= len(ctrl) {
			return
		}
		ctrl = ctrl[adv:]
	}
}

// timestampNs reads an SCM_TIMESTAMPNS control message (the kernel's
// receive time, CLOCK_REALTIME); ok is false when there is none.
func timestampNs(ctrl []byte) (ns int64, ok bool) {
	walkCmsgs(ctrl, func(level, typ int32, data []byte) {
		if level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && len(data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(data))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			ns, ok = sec*1e9+nsec, true
		}
	})
	return ns, ok
}

// sockaddr4 converts an IPv4 address and port to the kernel's layout.
func sockaddr4(ap netip.AddrPort) unix.RawSockaddrInet4 {
	sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	return sa
}
