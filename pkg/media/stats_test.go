// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// rtpPacket builds an RTP v2 packet independently of the parser under test.
func rtpPacket(seq uint16, ts, ssrc uint32, pt uint8, payload []byte) []byte {
	b := make([]byte, 12, 12+len(payload))
	b[0] = 0x80
	b[1] = pt & 0x7f
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	return append(b, payload...)
}

// rtcpRR is an RTCP receiver report with no report blocks (8 bytes).
func rtcpRR(ssrc uint32) []byte {
	b := []byte{0x80, 201, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], ssrc)
	return b
}

func TestClassify(t *testing.T) {
	ext := rtpPacket(1, 2, 3, 96, []byte("payload"))
	ext[0] |= 0x10 // extension of one word: insert header 0xBEDE, length 1
	ext = append(ext[:12], append([]byte{0xbe, 0xde, 0, 1, 1, 2, 3, 4}, ext[12:]...)...)
	padded := append(rtpPacket(1, 2, 3, 0, []byte{1, 2, 3, 4}), 0, 0, 3)
	padded[0] |= 0x20
	tests := []struct {
		name string
		in   []byte
		want Kind
	}{
		{"empty", nil, KindOther},
		{"short", []byte{0x80, 0}, KindOther},
		{"plain RTP", rtpPacket(1, 160, 42, 8, make([]byte, 160)), KindRTP},
		{"RTP header only", rtpPacket(1, 160, 42, 0, nil), KindRTP},
		{"RTP marker", func() []byte { b := rtpPacket(1, 2, 3, 96, nil); b[1] |= 0x80; return b }(), KindRTP},
		{"RTP with extension", ext, KindRTP},
		{"RTP extension overruns", ext[:19], KindOther},
		{"RTP with padding", padded, KindRTP},
		{"RTP padding overruns", func() []byte { b := append([]byte(nil), padded...); b[len(b)-1] = 200; return b }(), KindOther},
		{"RTP zero padding count", func() []byte { b := append([]byte(nil), padded...); b[len(b)-1] = 0; return b }(), KindOther},
		{"RTP CSRCs overrun", func() []byte { b := rtpPacket(1, 2, 3, 0, nil); b[0] |= 0x0f; return b }(), KindOther},
		{"RTP version 1", func() []byte { b := rtpPacket(1, 2, 3, 0, nil); b[0] = 0x40; return b }(), KindOther},
		{"RTCP RR", rtcpRR(7), KindRTCP},
		{"RTCP SR", append([]byte{0x80, 200, 0, 6}, make([]byte, 24)...), KindRTCP},
		{"RTCP length overruns", []byte{0x80, 200, 0, 6, 0, 0, 0, 0}, KindOther},
		{"RTCP AVPF feedback", []byte{0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}, KindRTCP},
		{"STUN binding", []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, KindSTUN},
		{"DTLS record", []byte{22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, KindDTLS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.in); got != tc.want {
				t.Errorf("classify(% x) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRTPFields(t *testing.T) {
	b := rtpPacket(0xfffe, 0xdeadbeef, 0x01020304, 111, []byte{9, 9})
	b[1] |= 0x80
	h, ok := parseRTP(b)
	if !ok {
		t.Fatal("parseRTP rejected a valid packet")
	}
	want := rtpHeader{pt: 111, marker: true, seq: 0xfffe, ts: 0xdeadbeef, ssrc: 0x01020304, hdrLen: 12}
	if h != want {
		t.Errorf("parseRTP = %+v, want %+v", h, want)
	}
}

func TestSequenceAccounting(t *testing.T) {
	tests := []struct {
		name            string
		seqs            []uint16
		lost            int64
		dups, reordered uint64
		highest         uint32
		packets         uint64
	}{
		{"in order", []uint16{10, 11, 12, 13}, 0, 0, 0, 13, 4},
		{"one gap", []uint16{1, 2, 3, 5}, 1, 0, 0, 5, 4},
		{"duplicate of highest", []uint16{1, 2, 2, 3}, 0, 1, 0, 3, 4},
		{"duplicate in window", []uint16{1, 2, 3, 4, 2}, 0, 1, 0, 4, 5},
		{"reordered fills gap", []uint16{1, 2, 4, 3, 5}, 0, 0, 1, 5, 5},
		{"reordered then duplicated", []uint16{1, 3, 2, 2}, 0, 1, 1, 3, 4},
		{"wrap around", []uint16{65534, 65535, 0, 1}, 0, 0, 0, 65536 + 1, 4},
		{"wrap with loss", []uint16{65534, 1}, 2, 0, 0, 65536 + 1, 2},
		{"one-off jump ignored", []uint16{1, 2, 30000, 3}, 0, 0, 0, 3, 4},
		{"sender restart resyncs", []uint16{1, 2, 4, 30000, 30001, 30002}, 1, 0, 0, 30002, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tab ssrcTable
			for i, seq := range tc.seqs {
				tab.update(rtpHeader{seq: seq, ts: uint32(i) * 160, ssrc: 5}, 8000, int64(i)*20e6)
			}
			got := tab.snapshot()
			if len(got) != 1 {
				t.Fatalf("got %d SSRCs, want 1", len(got))
			}
			g := got[0]
			if g.Lost != tc.lost || g.Duplicates != tc.dups || g.Reordered != tc.reordered ||
				g.HighestSeq != tc.highest || g.Packets != tc.packets {
				t.Errorf("lost %d dups %d reordered %d highest %d packets %d; want %d %d %d %d %d",
					g.Lost, g.Duplicates, g.Reordered, g.HighestSeq, g.Packets,
					tc.lost, tc.dups, tc.reordered, tc.highest, tc.packets)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	const rate = 8000
	tests := []struct {
		name string
		// arrival gap (ms) and timestamp step of packet i>0
		gap  func(i int) float64
		step uint32
		want func(n int) float64 // jitter after n packets, timestamp units
	}{
		{"perfect pacing", func(int) float64 { return 20 }, 160, func(int) float64 { return 0 }},
		{
			"alternating 10/30 ms", func(i int) float64 { return 10 + 20*float64(i%2) }, 160,
			// |D| = 80 units every packet: J_n = 80 (1 - (15/16)^(n-1))
			func(n int) float64 { return 80 * (1 - math.Pow(15.0/16, float64(n-1))) },
		},
		{
			"burst with 1 s timestamps", func(int) float64 { return 0 }, 8000,
			func(n int) float64 { return 8000 * (1 - math.Pow(15.0/16, float64(n-1))) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tab ssrcTable
			arr := 0.0
			const n = 50
			for i := range n {
				if i > 0 {
					arr += tc.gap(i)
				}
				tab.update(rtpHeader{seq: uint16(i), ts: 1000 + uint32(i)*tc.step, ssrc: 1}, rate, int64(arr*1e6))
			}
			g := tab.snapshot()[0]
			want := tc.want(n)
			if math.Abs(g.Jitter-want) > 1e-6 {
				t.Errorf("jitter %f units, want %f", g.Jitter, want)
			}
			if wantMs := want * 1000 / rate; math.Abs(g.JitterMs-wantMs) > 1e-6 {
				t.Errorf("jitter %f ms, want %f", g.JitterMs, wantMs)
			}
		})
	}
}

func TestSSRCSlotsBounded(t *testing.T) {
	var tab ssrcTable
	for i := range 10 {
		tab.update(rtpHeader{seq: 1, ssrc: uint32(100 + i)}, 8000, int64(i)*int64(time.Millisecond))
	}
	got := tab.snapshot()
	if len(got) != maxSSRCs {
		t.Fatalf("tracked %d SSRCs, want %d", len(got), maxSSRCs)
	}
	seen := map[uint32]bool{}
	for _, s := range got {
		seen[s.SSRC] = true
	}
	for i := 6; i < 10; i++ { // the most recent ones survive
		if !seen[uint32(100+i)] {
			t.Errorf("SSRC %d evicted, want the stalest evicted first; have %v", 100+i, seen)
		}
	}
}

func TestClockRate(t *testing.T) {
	rates := []ptRate{{96, 48000}, {0, 16000}}
	tests := []struct {
		pt   uint8
		m    []ptRate
		want uint32
	}{
		{0, nil, 8000}, {9, nil, 8000}, {10, nil, 44100}, {26, nil, 90000}, {96, nil, 0},
		{96, rates, 48000}, {0, rates, 16000}, {8, rates, 8000},
	}
	for _, tc := range tests {
		if got := clockRate(tc.m, tc.pt); got != tc.want {
			t.Errorf("clockRate(%v, %d) = %d, want %d", tc.m, tc.pt, got, tc.want)
		}
	}
}
