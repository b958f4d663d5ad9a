// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// The receiver statistics follow RFC 3550 Appendix A.1/A.3 through wraps,
// losses, duplicates, reordering, restarts and new sources.
func TestRxStats(t *testing.T) {
	type pkt struct {
		seq  uint16
		ssrc uint32
	}
	seqs := func(ssrc uint32, from, to int) []pkt {
		var out []pkt
		for s := from; s <= to; s++ {
			out = append(out, pkt{uint16(s), ssrc})
		}
		return out
	}
	cat := func(parts ...[]pkt) []pkt { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name     string
		pkts     []pkt
		extMax   uint32
		cumLost  int32
		fraction uint8
	}{
		{"clean", seqs(1, 100, 199), 199, 0, 0},
		{"wrap", seqs(1, 65500, 65600), 65600, 0, 0},
		{"one lost in 100", cat(seqs(1, 0, 49), seqs(1, 51, 100)), 100, 1, 256 / 101},
		{"duplicates count as received", cat(seqs(1, 0, 9), seqs(1, 9, 9), seqs(1, 10, 19)), 19, -1, 0},
		{"reordered", cat(seqs(1, 0, 4), seqs(1, 6, 6), seqs(1, 5, 5), seqs(1, 7, 9)), 9, 0, 0},
		// A jump of 20000 is believed only when the next packet follows it.
		{"restart", cat(seqs(1, 0, 9), seqs(1, 20000, 20004)), 20004, 0, 0},
		{"stray jump ignored", cat(seqs(1, 0, 9), seqs(1, 30000, 30000), seqs(1, 10, 19)), 19, 0, 0},
		{"new source starts over", cat(seqs(1, 0, 9), seqs(2, 500, 509)), 509, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r rxStats
			at := int64(1e18)
			for i, p := range tc.pkts {
				r.update(rtpHeader{seq: p.seq, ssrc: p.ssrc, ts: uint32(i * 160)}, at+int64(i)*20e6, 8000, true)
			}
			b := r.block()
			if b.extMax != tc.extMax || b.cumLost != tc.cumLost || b.fraction != tc.fraction {
				t.Errorf("block %+v, want ext max %d, lost %d, fraction %d", b, tc.extMax, tc.cumLost, tc.fraction)
			}
			if b.jitter != 0 {
				t.Errorf("jitter %d on a perfectly paced stream", b.jitter)
			}
			// The next interval's fraction covers only what came since.
			last := tc.pkts[len(tc.pkts)-1]
			for i := range 10 {
				r.update(rtpHeader{seq: last.seq + 1 + uint16(i), ssrc: last.ssrc}, at, 8000, false)
			}
			if b := r.block(); b.fraction != 0 {
				t.Errorf("next interval: fraction %d", b.fraction)
			}
		})
	}
}

// Jitter is the smoothed transit variation, in clock units (A.8): packets
// alternately 10 ms early and late converge to about 20 ms × 8 = 160.
func TestRxStatsJitter(t *testing.T) {
	var r rxStats
	for i := range 500 {
		dev := int64(10e6)
		if i%2 == 0 {
			dev = -dev
		}
		r.update(rtpHeader{seq: uint16(i), ssrc: 1, ts: uint32(i * 160)}, 5e9+int64(i)*20e6+dev, 8000, true)
		// An event packet keeps its start timestamp: not counted.
		r.update(rtpHeader{seq: uint16(i), ssrc: 1, ts: 7}, 5e9+int64(i)*20e6, 8000, false)
	}
	if j := r.block().jitter; j < 150 || j > 170 {
		t.Errorf("jitter %d, want about 160", j)
	}
}

// What rtcpReport writes, pion/rtcp reads back: an RR (with or without a
// block) before the relay sends, an SR after; CNAMEs of every length padded
// right.
func TestRTCPReportWire(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600_000_000, time.UTC).UnixNano()
	for _, cname := range []string{"", "a", "ab", "abc", "abcd", "abcdefghijklmnop", strings.Repeat("x", 300)} {
		for _, sending := range []bool{false, true} {
			for _, hearing := range []bool{false, true} {
				tx := txStats{ssrc: 0x11223344, clock: 48000, lastTS: 1000, lastNs: now - 1e9}
				if sending {
					audio := make([]byte, 12+80)
					putRTP(audio, false, 0, 1, 1000, tx.ssrc)
					tx.sent(audio, now-1e9, true)
					tx.sent(make([]byte, 12+4), now-1e9, false) // an event: its timestamp is not time
				}
				var rx rxStats
				if hearing {
					for i := range 10 {
						rx.update(rtpHeader{seq: uint16(i * 2), ssrc: 0xcafe}, now-2e9, 8000, false)
					}
				}
				sr := partySR{ssrc: 0xcafe, mid: 0x12345678, at: now - 1.5e9}
				buf := make([]byte, rtcpMaxLen)
				n := rtcpReport(buf, &tx, &rx, &sr, cname, now)
				pkts, err := rtcp.Unmarshal(buf[:n])
				if err != nil {
					t.Fatalf("cname %d bytes, sending %v: %v (% x)", len(cname), sending, err, buf[:n])
				}
				var blocks []rtcp.ReceptionReport
				switch p := pkts[0].(type) {
				case *rtcp.SenderReport:
					if !sending {
						t.Fatal("SR without sending")
					}
					if p.SSRC != tx.ssrc || p.NTPTime != ntpTime(now) || p.RTPTime != 1000+48000 ||
						p.PacketCount != 2 || p.OctetCount != 84 {
						t.Errorf("SR %+v", p)
					}
					blocks = p.Reports
				case *rtcp.ReceiverReport:
					if sending || p.SSRC != tx.ssrc {
						t.Fatalf("RR %+v while sending=%v", p, sending)
					}
					blocks = p.Reports
				}
				if hearing != (len(blocks) == 1) {
					t.Fatalf("%d blocks while hearing=%v", len(blocks), hearing)
				}
				if hearing {
					b := blocks[0]
					if b.SSRC != 0xcafe || b.TotalLost != 9 || b.FractionLost != 9*256/19 || b.LastSequenceNumber != 18 ||
						b.LastSenderReport != 0x12345678 || b.Delay != 65536*3/2 {
						t.Errorf("block %+v", b)
					}
				}
				sdes, ok := pkts[1].(*rtcp.SourceDescription)
				want := cname[:min(len(cname), 255)]
				if !ok || len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != tx.ssrc || sdes.Chunks[0].Items[0].Text != want {
					t.Errorf("SDES %+v", pkts[1])
				}
			}
		}
	}
}

// The relay stops claiming to send two reports after it stopped.
func TestRTCPReportStopsSR(t *testing.T) {
	tx := txStats{ssrc: 1, clock: 8000}
	var rx rxStats
	var sr partySR
	buf := make([]byte, rtcpMaxLen)
	kinds := func() uint8 { rtcpReport(buf, &tx, &rx, &sr, "x", 1e18); return buf[1] }
	tx.sent(make([]byte, 20), 1, true)
	if k := kinds(); k != rtcpSR {
		t.Fatalf("report %d after sending", k)
	}
	if k := kinds(); k != rtcpSR {
		t.Fatalf("second report %d", k)
	}
	if k := kinds(); k != rtcpRR {
		t.Fatalf("third report %d, want an RR", k)
	}
}

// parseRTCP finds the SR and the report block about the relay's source in
// compound packets pion/rtcp writes, and refuses broken framing.
func TestParseRTCP(t *testing.T) {
	const ours = 0xabcdef
	raw, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.SenderReport{SSRC: 7, NTPTime: 0x0102030405060708, Reports: []rtcp.ReceptionReport{
			{SSRC: 99, FractionLost: 200},
			{SSRC: ours, FractionLost: 17, TotalLost: 0xfffffe, Jitter: 33, LastSenderReport: 44, Delay: 55},
		}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 7,
			Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "x"}}}}},
		&rtcp.Goodbye{Sources: []uint32{7}},
	})
	if err != nil {
		t.Fatal(err)
	}
	in, ok := parseRTCP(raw, ours)
	want := rtcpIn{sr: true, srSSRC: 7, ntpMid: 0x03040506, report: true, fraction: 17, cumLost: -2, jitter: 33, lsr: 44, dlsr: 55}
	if !ok || in != want {
		t.Errorf("got %+v %v, want %+v", in, ok, want)
	}
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 8, Reports: []rtcp.ReceptionReport{{SSRC: ours, Jitter: 9}}}})
	if in, ok := parseRTCP(rr, ours); !ok || in.sr || !in.report || in.jitter != 9 {
		t.Errorf("RR: %+v %v", in, ok)
	}
	if in, ok := parseRTCP(rr, 1); !ok || in.report {
		t.Errorf("RR about another source: %+v %v", in, ok)
	}
	for _, bad := range [][]byte{nil, {0x80, 200}, append(raw[:len(raw):len(raw)], 0x80, 201, 0, 9), {0x40, 201, 0, 0}} {
		if _, ok := parseRTCP(bad, ours); ok {
			t.Errorf("accepted % x", bad)
		}
	}
}

// An NTP timestamp: seconds since 1900, a binary fraction.
func TestNTPTime(t *testing.T) {
	ns := time.Date(1970, 1, 1, 0, 0, 1, 500_000_000, time.UTC).UnixNano()
	if got := ntpTime(ns); got != (ntpEpochOffset+1)<<32|1<<31 {
		t.Errorf("%#x", got)
	}
}
