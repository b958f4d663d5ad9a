// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/relayd/relayd/pkg/inetsum"
)

// Format is the link layer of a recording's pcap file (recording-format).
type Format uint8

const (
	// FormatRaw writes bare IPv4/IPv6 packets (LINKTYPE_RAW), the
	// incumbent's default.
	FormatRaw Format = iota
	// FormatEth puts a synthetic Ethernet header (zero MACs) in front of
	// each packet (LINKTYPE_ETHERNET), for tools that want one.
	FormatEth
)

// ParseFormat reads a recording-format value: raw or eth.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "raw":
		return FormatRaw, nil
	case "eth":
		return FormatEth, nil
	}
	return 0, fmt.Errorf("%q: %w", s, ErrBadFormat)
}

func (f Format) String() string {
	if f == FormatEth {
		return "eth"
	}
	return "raw"
}

// linkType is the pcap LINKTYPE_ value of the format.
func (f Format) linkType() uint32 {
	if f == FormatEth {
		return 1 // LINKTYPE_ETHERNET
	}
	return 101 // LINKTYPE_RAW
}

const (
	pcapMagic   = 0xa1b2c3d4 // microsecond timestamps, the common form
	pcapSnaplen = 65535
	ethLen      = 14
	ip4Len      = 20
	ip6Len      = 40
	udpLen      = 8
	// maxFrame is the most a synthetic frame adds in front of a payload.
	maxFrame = 16 + ethLen + ip6Len + udpLen
)

// writeFileHeader writes the pcap global header (native byte order, as
// libpcap writes it; readers tell the order from the magic).
func writeFileHeader(w io.Writer, f Format) error {
	var h [24]byte
	binary.NativeEndian.PutUint32(h[0:], pcapMagic)
	binary.NativeEndian.PutUint16(h[4:], 2)
	binary.NativeEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0
	binary.NativeEndian.PutUint32(h[16:], pcapSnaplen)
	binary.NativeEndian.PutUint32(h[20:], f.linkType())
	_, err := w.Write(h[:])
	return err
}

// frame builds, in out, the pcap record header and the synthetic
// Ethernet/IP/UDP headers of one datagram from src to dst carrying payload,
// and returns them (the payload follows them in the file). ok is false when
// the datagram cannot be framed (too big for one IP packet, or the two
// addresses are of different families and neither is IPv4-mapped).
// id is the IPv4 identification.
func frame(out *[maxFrame]byte, f Format, ns int64, src, dst netip.AddrPort, payload []byte, id uint16) ([]byte, bool) {
	v4 := src.Addr().Is4() && dst.Addr().Is4()
	ipLen := ip6Len
	if v4 {
		ipLen = ip4Len
	}
	udpTotal := udpLen + len(payload)
	ipTotal := ipLen + udpTotal
	if ipTotal > 0xffff || (!v4 && udpTotal > 0xffff) {
		return nil, false
	}
	link := 0
	if f == FormatEth {
		link = ethLen
	}
	n := 16 + link + ipLen + udpLen
	b := out[:n]
	clear(b)
	// pcap record header
	sec, usec := ns/1e9, (ns%1e9)/1e3
	if ns < 0 {
		sec, usec = 0, 0
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(sec))
	binary.NativeEndian.PutUint32(b[4:], uint32(usec))
	binary.NativeEndian.PutUint32(b[8:], uint32(link+ipTotal))
	binary.NativeEndian.PutUint32(b[12:], uint32(link+ipTotal))
	p := b[16:]
	if f == FormatEth {
		// Zero MACs: only the EtherType tells the frame apart.
		if v4 {
			binary.BigEndian.PutUint16(p[12:], 0x0800)
		} else {
			binary.BigEndian.PutUint16(p[12:], 0x86dd)
		}
		p = p[ethLen:]
	}
	var sum uint64 // UDP pseudo-header
	if v4 {
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		p[0] = 0x45
		binary.BigEndian.PutUint16(p[2:], uint16(ipTotal))
		binary.BigEndian.PutUint16(p[4:], id)
		p[6] = 0x40 // don't fragment
		p[8] = 64   // TTL
		p[9] = 17   // UDP
		copy(p[12:16], s4[:])
		copy(p[16:20], d4[:])
		binary.BigEndian.PutUint16(p[10:], inetsum.Checksum(inetsum.Add(p[:ip4Len], 0)))
		sum = inetsum.Add(p[12:20], 0)
	} else {
		s6, d6 := src.Addr().As16(), dst.Addr().As16()
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(udpTotal))
		p[6] = 17 // UDP
		p[7] = 64 // hop limit
		copy(p[8:24], s6[:])
		copy(p[24:40], d6[:])
		sum = inetsum.Add(p[8:40], 0)
	}
	sum += 17 + uint64(udpTotal)
	u := p[ipLen:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpTotal))
	binary.BigEndian.PutUint16(u[6:], inetsum.UDP(inetsum.Add(payload, inetsum.Add(u[:udpLen], sum))))
	return b, true
}
