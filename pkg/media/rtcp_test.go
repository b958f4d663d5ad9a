// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// sr is an RTCP sender report of ssrc with NTP time (msw, lsw), no blocks.
func sr(ssrc, msw, lsw uint32) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 0x80, 200
	binary.BigEndian.PutUint16(b[2:], 6)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint32(b[8:], msw)
	binary.BigEndian.PutUint32(b[12:], lsw)
	return b
}

// rr is a receiver report from ssrc with one block about source.
func rr(ssrc, source uint32, fraction byte, cum int32, jitter, lsr, dlsr uint32) []byte {
	b := make([]byte, 32)
	b[0], b[1] = 0x81, 201
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	binary.BigEndian.PutUint32(b[8:], source)
	binary.BigEndian.PutUint32(b[12:], uint32(cum)&0xffffff)
	b[12] = fraction
	binary.BigEndian.PutUint32(b[20:], jitter)
	binary.BigEndian.PutUint32(b[24:], lsr)
	binary.BigEndian.PutUint32(b[28:], dlsr)
	return b
}

// B's SR passes the relay towards A; A's RR echoes it: the relay knows the
// round trip of A's leg, and with A's loss and jitter, a MOS.
func TestRTCPReports(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", func(a *StreamConfig) {}, nil)
	clk, _ := engineClocks.Load(e)
	// B sends RTP of SSRC 0xbbbb, PT 0, so the relay knows its clock rate.
	c.bToA(t, rtpPacket(1, 160, 0xbbbb, 0, make([]byte, 160)))
	c.bToA(t, sr(0xbbbb, 0x12345678, 0x9abc0000))
	clk.(*testClock).advance(300 * time.Millisecond)
	// A reports on 0xbbbb: 25/256 lost, jitter 80 units (10 ms at 8 kHz),
	// LSR the SR's middle bits, DLSR 100 ms.
	c.aToB(t, rr(0xaaaa, 0xbbbb, 25, -3, 80, 0x56789abc, 6554))
	st := waitStats(t, c.ra.s, "A's report", func(s StreamStats) bool { return len(s.Reports) == 1 })
	r := st.Reports[0]
	if r.SSRC != 0xbbbb || math.Abs(r.FractionLost-25.0/256) > 1e-9 || r.CumulativeLost != -3 {
		t.Errorf("report %+v", r)
	}
	if math.Abs(r.JitterMs-10) > 1e-9 {
		t.Errorf("jitter %.2f ms, want 10", r.JitterMs)
	}
	if math.Abs(r.RTTLegMs-200) > 1 {
		t.Errorf("leg round trip %.1f ms, want 200", r.RTTLegMs)
	}
	want := MOS(25.0/256, 10, r.RTTLegMs)
	if math.Abs(r.MOS-want) > 0.001 || r.MOSAvg != r.MOS || r.Samples != 1 {
		t.Errorf("MOS %.3f avg %.3f samples %d, want %.3f", r.MOS, r.MOSAvg, r.Samples, want)
	}
}

func TestMOS(t *testing.T) {
	for _, tc := range []struct {
		loss, jitter, rtt float64
		lo, hi            float64
	}{
		{0, 0, 0, 4.35, 4.45},     // a clean LAN: the model's top
		{0.01, 5, 50, 4.2, 4.4},   // good
		{0.05, 30, 200, 3.2, 3.6}, // audible trouble
		{0.20, 60, 400, 1, 2.2},   // bad
		{1, 0, 0, 1, 1},           // everything lost
	} {
		if m := MOS(tc.loss, tc.jitter, tc.rtt); m < tc.lo || m > tc.hi {
			t.Errorf("MOS(%.2f, %.0f ms, %.0f ms) = %.2f, want %.2f..%.2f", tc.loss, tc.jitter, tc.rtt, m, tc.lo, tc.hi)
		}
	}
}
