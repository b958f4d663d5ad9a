// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// newLoopGen makes a generator on 127.0.0.0/8 in the test's own namespace
// (no root needed) whose calls send straight to each other: the caller's
// "relay address" is the callee's endpoint and vice versa.
func newLoopGen(t *testing.T, calls, workers int) *Generator {
	t.Helper()
	var cpus []int
	for i := range workers {
		cpus = append(cpus, i%2)
	}
	if workers == 1 {
		cpus = nil
	}
	g, err := New(Config{
		Sides: [2]Side{
			{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}},
			{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4"), netip.MustParseAddr("127.0.0.5")}},
		},
		CPUs:     cpus,
		MaxCalls: calls,
		PPS:      100,
		Run:      0xabcdef,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := g.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return g
}

func TestDirectCallsCarryMedia(t *testing.T) {
	const calls = 10
	g := newLoopGen(t, calls, 1)
	var slots []CallSlot
	for range calls {
		cs, err := g.Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		if err := g.Activate(cs, cs.Callee, cs.Caller, 8); err != nil {
			t.Fatalf("Activate: %v", err)
		}
		slots = append(slots, cs)
	}
	if _, err := g.Allocate(); err == nil {
		t.Errorf("Allocate beyond MaxCalls succeeded")
	}
	seen := map[netip.AddrPort]bool{}
	for _, cs := range slots {
		for _, ep := range []netip.AddrPort{cs.Caller, cs.Callee} {
			if seen[ep] {
				t.Errorf("endpoint %s used twice", ep)
			}
			seen[ep] = true
		}
	}
	time.Sleep(100 * time.Millisecond)
	g.BeginWindow(time.Now())
	time.Sleep(time.Second)
	g.EndWindow(time.Now())
	time.Sleep(100 * time.Millisecond)
	r, err := g.Report(context.Background(), slots)
	if err != nil {
		t.Fatalf("Report: %v", err)
	}
	// 10 calls x 2 streams x 100/s x ~1 s.
	if r.Sent < 1800 || r.Sent > 2200 {
		t.Errorf("sent %d packets in %.2fs, want about 2000", r.Sent, r.WindowSec)
	}
	if r.Received != r.Sent || r.Loss() != 0 {
		t.Errorf("received %d of %d (loss %.4f), want all", r.Received, r.Sent, r.Loss())
	}
	if r.Streams != 2*calls || r.DeadStreams != 0 {
		t.Errorf("streams %d dead %d, want %d and 0", r.Streams, r.DeadStreams, 2*calls)
	}
	if r.Stray+r.OldCall+r.Duplicates+r.Reordered+r.SendErrors+r.Skipped+r.NoTimestamp != 0 {
		t.Errorf("unexpected counts: %+v", r)
	}
	if r.Latency.Count() != r.Received || r.Latency.Quantile(0.5) <= 0 {
		t.Errorf("latency: %d samples, p50 %.0f ns", r.Latency.Count(), r.Latency.Quantile(0.5))
	}
	// The per-call counts are the calls' lifetimes, read while they still
	// send: a datagram sent just before the read may not have been read
	// back yet (one per direction at most, at one every 10 ms). The
	// window's counts above are exact.
	for i, c := range r.Calls {
		for d := range 2 {
			if c.Sent[d] == 0 || c.Received[d] > c.Sent[d] || c.Sent[d]-c.Received[d] > 1 {
				t.Errorf("call %d direction %d: sent %d received %d", i, d, c.Sent[d], c.Received[d])
			}
		}
	}
}

func TestReuseAndStop(t *testing.T) {
	g := newLoopGen(t, 4, 2)
	cs, err := g.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Activate(cs, cs.Callee, cs.Caller, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	g.Deactivate(cs)
	time.Sleep(50 * time.Millisecond)
	r, err := g.Report(context.Background(), []CallSlot{cs})
	if err != nil {
		t.Fatal(err)
	}
	first := r.Calls[0]
	if first.Sent[0] == 0 || first.Received[0] != first.Sent[0] || first.Received[1] != first.Sent[1] {
		t.Fatalf("first call totals %+v", first)
	}
	time.Sleep(100 * time.Millisecond)
	r, _ = g.Report(context.Background(), []CallSlot{cs})
	if r.Calls[0] != first {
		t.Errorf("deactivated call kept sending: %+v then %+v", first, r.Calls[0])
	}
	g.Release(cs)
	again, err := g.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Activate(again, again.Callee, again.Caller, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if sent, recv := g.Totals(); sent == 0 || recv == 0 {
		t.Errorf("Totals = %d, %d", sent, recv)
	}
	if g.Workers() != 2 {
		t.Errorf("Workers = %d, want 2", g.Workers())
	}
}

func TestConfigErrors(t *testing.T) {
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no calls", Config{Sides: [2]Side{{Addrs: lo}, {Addrs: lo}}}},
		{"no addresses", Config{MaxCalls: 1, Sides: [2]Side{{Addrs: lo}, {}}}},
		{"ipv6", Config{MaxCalls: 1, Sides: [2]Side{{Addrs: lo}, {Addrs: []netip.Addr{netip.MustParseAddr("::1")}}}}},
		{"payload too small", Config{MaxCalls: 1, PayloadLen: 8, Sides: [2]Side{{Addrs: lo}, {Addrs: lo}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if g, err := New(tc.cfg); err == nil {
				g.Close()
				t.Errorf("New succeeded, want an error")
			}
		})
	}
}
