// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// pausableRelay forwards each datagram it receives to a fixed destination,
// unless told to drop for a while: a relay restarting, as the generator
// sees it.
type pausableRelay struct {
	conn *net.UDPConn
	dst  netip.AddrPort
	drop atomic.Bool
}

func newPausableRelay(t *testing.T) *pausableRelay {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &pausableRelay{conn: c}
}

func (p *pausableRelay) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *pausableRelay) run() {
	buf := make([]byte, 2048)
	for {
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if !p.drop.Load() {
			_, _ = p.conn.WriteToUDPAddrPort(buf[:n], p.dst)
		}
	}
}

// Per stream, the window counts what was sent and received and the longest
// silence: a pause in the middle shows as a gap as long as the pause and
// its packets as lost; a stream cut off before the end has the silence up
// to the window's end as its gap.
func TestReportStreamsLossAndGaps(t *testing.T) {
	g := newLoopGen(t, 1, 1)
	cs, err := g.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	toCallee, toCaller := newPausableRelay(t), newPausableRelay(t)
	toCallee.dst, toCaller.dst = cs.Callee, cs.Caller
	go toCallee.run()
	go toCaller.run()
	if err := g.Activate(cs, toCallee.addr(), toCaller.addr(), 8); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	const pause, tail = 400 * time.Millisecond, 300 * time.Millisecond
	g.BeginWindow(time.Now())
	time.Sleep(300 * time.Millisecond)
	toCallee.drop.Store(true) // stream 0, caller -> callee, pauses
	time.Sleep(pause)
	toCallee.drop.Store(false)
	time.Sleep(500 * time.Millisecond)
	toCaller.drop.Store(true) // stream 1 falls silent for good
	time.Sleep(tail)
	g.EndWindow(time.Now())
	time.Sleep(100 * time.Millisecond)
	r, err := g.ReportStreams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.PerStream) != 2 {
		t.Fatalf("%d streams reported, want 2: %+v", len(r.PerStream), r.PerStream)
	}
	var sent, recv uint64
	for _, s := range r.PerStream {
		sent += s.Sent
		recv += s.Received
	}
	if sent != r.Sent || recv != r.Received {
		t.Errorf("streams sum to %d sent, %d received; the window says %d and %d", sent, recv, r.Sent, r.Received)
	}
	// 100 packets/s per stream.
	near := func(what string, got, want, slack float64) {
		t.Helper()
		if got < want-slack || got > want+slack {
			t.Errorf("%s = %.0f, want %.0f ± %.0f", what, got, want, slack)
		}
	}
	s0, s1 := r.PerStream[0], r.PerStream[1]
	if s0.Stream != 0 || s1.Stream != 1 {
		t.Fatalf("streams %d and %d, want 0 and 1", s0.Stream, s1.Stream)
	}
	near("stream 0 sent", float64(s0.Sent), 150, 20)
	near("stream 0 lost", float64(s0.Lost()), 40, 8)
	near("stream 0 gap ms", float64(s0.MaxGap.Milliseconds()), 410, 60)
	near("stream 1 lost", float64(s1.Lost()), 30, 8)
	near("stream 1 gap ms", float64(s1.MaxGap.Milliseconds()), 300, 60)
	if s1.MaxGap >= s0.MaxGap {
		t.Errorf("the cut-off stream's gap %v is not below the paused one's %v", s1.MaxGap, s0.MaxGap)
	}
	// A window with nothing missing: gaps of the packet period.
	toCaller.drop.Store(false)
	time.Sleep(100 * time.Millisecond)
	g.BeginWindow(time.Now())
	time.Sleep(500 * time.Millisecond)
	g.EndWindow(time.Now())
	time.Sleep(100 * time.Millisecond)
	if r, err = g.ReportStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range r.PerStream {
		if s.Lost() != 0 || s.MaxGap > 60*time.Millisecond {
			t.Errorf("stream %d in a clean window: lost %d, gap %v", s.Stream, s.Lost(), s.MaxGap)
		}
	}
}
