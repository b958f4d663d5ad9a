// SPDX-License-Identifier: Apache-2.0

package transcode

import "encoding/binary"

const rtpHeaderLen = 12

// rtpHeader is what the transcoder reads of an incoming RTP packet; parsing
// never allocates.
type rtpHeader struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte // after CSRCs and extension, without padding
}

// parseRTP validates an RTP version 2 header, its CSRC list, extension and
// padding against the datagram (RFC 3550 §5.1, §5.3.1).
func parseRTP(b []byte) (rtpHeader, bool) {
	var h rtpHeader
	if len(b) < rtpHeaderLen || b[0]>>6 != 2 {
		return h, false
	}
	n := rtpHeaderLen + 4*int(b[0]&0x0f)
	if n > len(b) {
		return h, false
	}
	if b[0]&0x10 != 0 {
		if n+4 > len(b) {
			return h, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
		if n > len(b) {
			return h, false
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		p := int(b[len(b)-1])
		if p == 0 || n+p > len(b) {
			return h, false
		}
		end -= p
	}
	h.marker = b[1]&0x80 != 0
	h.pt = b[1] & 0x7f
	h.seq = binary.BigEndian.Uint16(b[2:4])
	h.ts = binary.BigEndian.Uint32(b[4:8])
	h.ssrc = binary.BigEndian.Uint32(b[8:12])
	h.payload = b[n:end]
	return h, true
}

// putRTP writes a 12-byte RTP header (no CSRCs, extension or padding).
func putRTP(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[0] = 0x80
	b[1] = pt & 0x7f
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], seq)
	binary.BigEndian.PutUint32(b[4:8], ts)
	binary.BigEndian.PutUint32(b[8:12], ssrc)
}
