// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// FuzzClassify feeds arbitrary datagrams to the classifier, the RTP header
// parser, the per-SSRC statistics and the whole per-packet path of a latched
// stream: nothing may panic, the parser must stay within the datagram, and
// whatever the bytes, a packet from the latched peer is forwarded.
func FuzzClassify(f *testing.F) {
	f.Add(rtpPacket(1, 160, 0x1234, 8, make([]byte, 160)))
	f.Add(rtcpRR(7))
	f.Add([]byte{})
	peer := netip.MustParseAddrPort("192.0.2.1:4000")
	f.Fuzz(func(t *testing.T, b []byte) {
		kind := classify(b)
		h, ok := parseRTP(b)
		if ok {
			if h.hdrLen < rtpHeaderLen || h.hdrLen+h.padLen > len(b) {
				t.Fatalf("header %d + padding %d outside a %d-byte datagram", h.hdrLen, h.padLen, len(b))
			}
			if h.seq != binary.BigEndian.Uint16(b[2:]) || h.ts != binary.BigEndian.Uint32(b[4:]) ||
				h.ssrc != binary.BigEndian.Uint32(b[8:]) || h.pt != b[1]&0x7f {
				t.Fatalf("parsed %+v does not match the bytes % x", h, b[:12])
			}
		}
		switch kind {
		case KindRTP:
			if !ok || isRTCPType(b) {
				t.Fatalf("classified RTP but parseRTP ok=%v, RTCP type=%v", ok, isRTCPType(b))
			}
		case KindRTCP:
			if !isRTCPType(b) {
				t.Fatal("classified RTCP without an RTCP packet type")
			}
		}

		a := newStream(netip.MustParseAddrPort("198.51.100.1:30000"))
		sink := newStream(netip.MustParseAddrPort("198.51.100.1:30002"))
		a.Configure(StreamConfig{Sink: sink, Peer: peer})
		sink.Configure(StreamConfig{Sink: a, Peer: netip.MustParseAddrPort("192.0.2.2:5000")})
		now := time.Now()
		a.receive(rtpPacket(1, 0, 1, 0, nil), peer, 0, now.UnixNano(), 0, now) // latch
		// Three times, to reach the duplicate and jitter paths.
		for i := range 3 {
			to, _ := a.receive(b, peer, 0, now.UnixNano(), int64(i)*1e6, now)
			if to != sink {
				t.Fatalf("datagram % x from the latched peer not forwarded", head(b))
			}
		}
		st := a.Stats()
		if st.In.Packets != 4 || st.Dropped != 0 {
			t.Fatalf("in %d dropped %d, want 4 and 0", st.In.Packets, st.Dropped)
		}
	})
}
