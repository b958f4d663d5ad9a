// SPDX-License-Identifier: Apache-2.0

// Package inetsum computes the Internet checksum (RFC 1071) that IPv4 headers
// and UDP over IPv4 and IPv6 carry, for the places relayd writes those
// headers itself: the media plane's raw send path and recordings in
// Ethernet/IP form.
package inetsum

import "encoding/binary"

// Add adds b to sum as big-endian 16-bit words. It takes 32 bits at a time
// (the end-around carry makes that the same sum), which a 64-bit
// accumulator cannot overflow for any datagram. Pieces added one after the
// other must each start at an even offset of the checksummed data, as the
// headers and payloads of IP and UDP do.
func Add(b []byte, sum uint64) uint64 {
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	if len(b) >= 4 {
		sum += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// Checksum folds a sum of Add into the one's complement checksum to write
// into a header.
func Checksum(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// UDP is the checksum to write into a UDP header: a computed 0 is sent as
// 0xffff, since 0 means "no checksum" over IPv4 and is invalid over IPv6.
func UDP(sum uint64) uint16 {
	if c := Checksum(sum); c != 0 {
		return c
	}
	return 0xffff
}
