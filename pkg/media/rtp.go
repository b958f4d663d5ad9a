// SPDX-License-Identifier: Apache-2.0

package media

import "encoding/binary"

const (
	rtpHeaderLen  = 12
	rtcpHeaderLen = 8
	rtpVersion    = 2
)

// classify demultiplexes a datagram by its first byte as RFC 7983 §7 does,
// and tells RTP from RTCP the way RFC 5761 §4 does: version 2 in both, and a
// second byte of 192..223 (RTCP packet types, which RTP payload types 64..95
// with the marker bit would collide with and so must not use) means RTCP.
// That range contains SR/RR/SDES/BYE/APP (200..204), which the learning rules
// care about, as well as AVPF feedback and XR, which a stray-RTCP check should
// not mistake for RTP either.
func classify(b []byte) Kind {
	if len(b) == 0 {
		return KindOther
	}
	switch c := b[0]; {
	case c <= 3:
		return KindSTUN
	case c >= 20 && c <= 63:
		return KindDTLS
	case c>>6 != rtpVersion || len(b) < rtcpHeaderLen:
		return KindOther
	}
	if b[1] >= 192 && b[1] <= 223 {
		// The first packet of a compound must fit; SRTCP trailers may follow.
		if (int(binary.BigEndian.Uint16(b[2:4]))+1)*4 > len(b) {
			return KindOther
		}
		return KindRTCP
	}
	if _, ok := parseRTP(b); ok {
		return KindRTP
	}
	return KindOther
}

// rtpHeader holds the fields the statistics need; parsing never allocates.
type rtpHeader struct {
	pt     uint8
	marker bool
	seq    uint16
	ts     uint32
	ssrc   uint32
	// payload is b[hdrLen:len(b)-padLen].
	hdrLen int
	padLen int
}

// parseRTP validates an RTP v2 fixed header, its CSRC list, header extension
// and padding against the datagram length (RFC 3550 §5.1, §5.3.1).
func parseRTP(b []byte) (rtpHeader, bool) {
	var h rtpHeader
	if len(b) < rtpHeaderLen || b[0]>>6 != rtpVersion {
		return h, false
	}
	cc := int(b[0] & 0x0f)
	n := rtpHeaderLen + 4*cc
	if n > len(b) {
		return h, false
	}
	if b[0]&0x10 != 0 { // extension
		if n+4 > len(b) {
			return h, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
		if n > len(b) {
			return h, false
		}
	}
	if b[0]&0x20 != 0 { // padding: last octet counts itself
		p := int(b[len(b)-1])
		if p == 0 || n+p > len(b) {
			return h, false
		}
		h.padLen = p
	}
	h.hdrLen = n
	h.marker = b[1]&0x80 != 0
	h.pt = b[1] & 0x7f
	h.seq = binary.BigEndian.Uint16(b[2:4])
	h.ts = binary.BigEndian.Uint32(b[4:8])
	h.ssrc = binary.BigEndian.Uint32(b[8:12])
	return h, true
}

// isRTCPType reports whether an RTP-port datagram is RTCP by packet type only,
// which is what the stray-RTCP rule needs.
func isRTCPType(b []byte) bool {
	return len(b) >= 2 && b[0]>>6 == rtpVersion && b[1] >= 192 && b[1] <= 223
}

// staticClockRate is the RFC 3551 §6 clock rate of a static payload type; zero
// means unassigned or dynamic. A switch rather than a table keeps the package
// free of mutable globals.
func staticClockRate(pt uint8) uint32 {
	switch pt {
	case 0, 3, 4, 5, 7, 8, 9, 12, 13, 15, 18:
		return 8000
	case 6:
		return 16000
	case 10, 11:
		return 44100
	case 16:
		return 11025
	case 17:
		return 22050
	case 14, 25, 26, 28, 31, 32, 33, 34:
		return 90000
	}
	return 0
}

// ptRate is one payload type's clock rate from the SDP.
type ptRate struct {
	pt   uint8
	rate uint32
}

// clockRate is the rate jitter is measured in for pt: the SDP's rtpmap first,
// then the static table; zero when unknown (jitter is then not computed).
// An SDP lists a few payload types: a scan of them costs less per packet
// than a map lookup did (2 % of the loop's CPU).
func clockRate(rates []ptRate, pt uint8) uint32 {
	for _, r := range rates {
		if r.pt == pt {
			return r.rate
		}
	}
	return staticClockRate(pt)
}
