// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// frame describes an Ethernet+IP+UDP frame for the tests. build lays it out
// from scratch and computes every checksum over the whole packet (never
// incrementally), so expected frames are independent of the program's
// arithmetic.
type frame struct {
	srcMAC, dstMAC net.HardwareAddr
	src, dst       netip.AddrPort
	tos            uint8
	ttl            uint8 // 0: 64
	id             uint16
	flowLabel      uint32
	payload        []byte

	zeroCsum  bool  // UDP checksum 0 ("none" for IPv4)
	protocol  uint8 // 0: UDP
	ipOptions bool  // IPv4: 4 bytes of options (IHL 6)
	fragOff   uint16
	moreFrags bool
	v6HasExt  bool  // IPv6: insert the extension header v6Ext
	v6Ext     uint8 // 0 hop-by-hop (PadN), 44 fragment
	udpLenAdj int   // added to the UDP length field only
	pad       int   // trailing Ethernet padding bytes
	truncate  int   // bytes cut off the end after building
	etherType uint16
}

const (
	protoUDP = 17
	protoTCP = 6
)

func (f frame) build() []byte {
	b := make([]byte, 0, 256)
	b = append(b, f.dstMAC...)
	b = append(b, f.srcMAC...)
	v4 := f.src.Addr().Is4()
	et := f.etherType
	if et == 0 {
		et = 0x86dd
		if v4 {
			et = 0x0800
		}
	}
	b = binary.BigEndian.AppendUint16(b, et)
	ttl := f.ttl
	if ttl == 0 {
		ttl = 64
	}
	proto := f.protocol
	if proto == 0 {
		proto = protoUDP
	}
	udpLen := 8 + len(f.payload)
	udp := make([]byte, 8, udpLen)
	binary.BigEndian.PutUint16(udp[0:], f.src.Port())
	binary.BigEndian.PutUint16(udp[2:], f.dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+f.udpLenAdj))
	udp = append(udp, f.payload...)
	if !f.zeroCsum {
		binary.BigEndian.PutUint16(udp[6:], udpChecksum(f.src.Addr(), f.dst.Addr(), udp))
	}

	if v4 {
		ihl := 5
		if f.ipOptions {
			ihl = 6
		}
		ip := make([]byte, ihl*4)
		ip[0] = 0x40 | byte(ihl)
		ip[1] = f.tos
		binary.BigEndian.PutUint16(ip[2:], uint16(ihl*4+udpLen))
		binary.BigEndian.PutUint16(ip[4:], f.id)
		frag := f.fragOff & 0x1fff
		if f.moreFrags {
			frag |= 0x2000
		} else if f.fragOff == 0 {
			frag |= 0x4000 // DF, as Linux sends small UDP
		}
		binary.BigEndian.PutUint16(ip[6:], frag)
		ip[8] = ttl
		ip[9] = proto
		s, d := f.src.Addr().As4(), f.dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		if f.ipOptions {
			copy(ip[20:], []byte{1, 1, 1, 0}) // NOP NOP NOP EOL
		}
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
		b = append(b, ip...)
	} else {
		var ext []byte
		switch {
		case !f.v6HasExt:
		case f.v6Ext == 44:
			ext = []byte{proto, 0, 0, 0, 0, 0, 0, 1}
			binary.BigEndian.PutUint16(ext[2:], f.fragOff<<3|boolBit(f.moreFrags))
		default:
			ext = []byte{proto, 0, 1, 4, 0, 0, 0, 0} // PadN
		}
		ip := make([]byte, 40)
		vtf := 6<<28 | uint32(f.tos)<<20 | f.flowLabel&0xfffff
		binary.BigEndian.PutUint32(ip[0:], vtf)
		binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+udpLen))
		ip[6] = proto
		if ext != nil {
			ip[6] = f.v6Ext
		}
		ip[7] = ttl
		s, d := f.src.Addr().As16(), f.dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		b = append(b, ip...)
		b = append(b, ext...)
	}
	b = append(b, udp...)
	b = append(b, make([]byte, f.pad)...)
	return b[:len(b)-f.truncate]
}

func boolBit(v bool) uint16 {
	if v {
		return 1
	}
	return 0
}

// onesSum adds b as big-endian 16-bit words to sum (RFC 1071) and folds.
func onesSum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// udpChecksum computes the UDP checksum of seg (checksum field zero) from
// scratch, with the pseudo header; 0 is sent as 0xffff.
func udpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	var ph []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = append(ph, 0, protoUDP)
		ph = binary.BigEndian.AppendUint16(ph, uint16(len(seg)))
	} else {
		s, d := src.As16(), dst.As16()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
		ph = append(ph, 0, 0, 0, protoUDP)
	}
	c := make([]byte, len(seg))
	copy(c, seg)
	c[6], c[7] = 0, 0
	sum := uint32(onesSum(0, ph))
	s := ^onesSum(sum, c)
	if s == 0 {
		return 0xffff
	}
	return s
}

// rtpPacket is an RTP packet: 12-byte header (version 2) and n payload
// bytes.
func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, n int) []byte {
	p := make([]byte, 12, 12+n)
	p[0] = 0x80
	p[1] = pt
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[4:], ts)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	for i := range n {
		p = append(p, byte(0xd5^i))
	}
	return p
}

// rtcpRR is an RTCP receiver report without report blocks (8 bytes).
func rtcpRR(ssrc uint32) []byte {
	p := []byte{0x80, 201, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(p[4:], ssrc)
	return p
}

// stunBinding is a STUN binding request header (first byte 0x00).
func stunBinding() []byte {
	p := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}
	return append(p, make([]byte, 12)...)
}

// dtlsRecord starts a DTLS 1.2 handshake record (first byte 22).
func dtlsRecord() []byte {
	return append([]byte{22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 20)...)
}
