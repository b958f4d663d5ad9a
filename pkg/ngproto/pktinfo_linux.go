// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ngproto

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// Kamailio talks to the relay over a connected UDP socket, so a reply whose
// source address differs from the address the request was sent to is
// discarded by the proxy's kernel. On a wildcard listener the kernel would
// pick the source by route; IP_PKTINFO / IPV6_PKTINFO let us read the
// request's destination and send the reply from it, as the reference does.

// enablePktinfo asks for the destination address of every datagram.
func enablePktinfo(c *net.UDPConn, v6 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("get raw socket: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		} else {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("enable packet info: %w", err)
	}
	return nil
}

// oobSize is room for one IPv6 packet-info control message.
func oobSize() int { return syscall.CmsgSpace(syscall.SizeofInet6Pktinfo) }

// pktinfoDst returns the destination address recorded in oob, if any. An
// IPv4 datagram on a dual-stack socket is reported in IPv4-mapped form.
func pktinfoDst(oob []byte) netip.Addr {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet4Pktinfo:
			var pi syscall.Inet4Pktinfo
			copy(pi.Addr[:], m.Data[unsafe.Offsetof(pi.Addr):])
			return netip.AddrFrom4(pi.Addr)
		case m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_PKTINFO &&
			len(m.Data) >= syscall.SizeofInet6Pktinfo:
			var pi syscall.Inet6Pktinfo
			copy(pi.Addr[:], m.Data[unsafe.Offsetof(pi.Addr):])
			return netip.AddrFrom16(pi.Addr)
		}
	}
	return netip.Addr{}
}

// pktinfoSrc builds the control message that makes the kernel send from
// src. On an IPv6 socket an IPv4-mapped src is accepted by Linux for
// IPv4-mapped destinations.
func pktinfoSrc(src netip.Addr, v6 bool) []byte {
	if !src.IsValid() {
		return nil
	}
	var (
		level, typ, size int
		data             []byte
	)
	if v6 {
		var pi syscall.Inet6Pktinfo
		pi.Addr = src.As16()
		level, typ, size = syscall.IPPROTO_IPV6, syscall.IPV6_PKTINFO, syscall.SizeofInet6Pktinfo
		data = unsafe.Slice((*byte)(unsafe.Pointer(&pi)), size)
	} else {
		if !src.Unmap().Is4() {
			return nil
		}
		var pi syscall.Inet4Pktinfo
		pi.Spec_dst = src.Unmap().As4()
		level, typ, size = syscall.IPPROTO_IP, syscall.IP_PKTINFO, syscall.SizeofInet4Pktinfo
		data = unsafe.Slice((*byte)(unsafe.Pointer(&pi)), size)
	}
	b := make([]byte, syscall.CmsgSpace(size))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = int32(level)
	h.Type = int32(typ)
	h.SetLen(syscall.CmsgLen(size))
	copy(b[syscall.CmsgLen(0):], data)
	return b
}
