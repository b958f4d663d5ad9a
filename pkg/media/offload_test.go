// SPDX-License-Identifier: Apache-2.0

package media

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

// tableFastPath keeps rules in a map: the decision logic of the offloader
// (when to install, replace and withdraw) tested without the kernel; the XDP
// datapath itself is proven by the bpf package and the namespace tests.
type tableFastPath struct {
	mu       sync.Mutex
	rules    map[netip.AddrPort]OffloadRule
	counters map[netip.AddrPort]KernelCounters
	released map[netip.AddrPort]bool
}

func newTableFastPath() *tableFastPath {
	return &tableFastPath{rules: map[netip.AddrPort]OffloadRule{},
		counters: map[netip.AddrPort]KernelCounters{}, released: map[netip.AddrPort]bool{}}
}

func (f *tableFastPath) Offload(r OffloadRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[r.Local] = r
	return nil
}

func (f *tableFastPath) Withdraw(local netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, local)
	return nil
}

func (f *tableFastPath) Counters(local netip.AddrPort) (KernelCounters, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.counters[local]
	return c, ok
}

func (f *tableFastPath) Release(local netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.released[local] = true
}

func (f *tableFastPath) rule(local netip.AddrPort) (OffloadRule, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rules[local]
	return r, ok
}

func waitRule(t *testing.T, f *tableFastPath, local netip.AddrPort, want bool) OffloadRule {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r, ok := f.rule(local)
		if ok == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule for %v present=%v, want %v", local, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOffloadLifecycle(t *testing.T) {
	fp := newTableFastPath()
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	if err := c.rb.s.SetTOS(184); err != nil {
		t.Fatal(err)
	}
	// Nothing latched yet: no rule.
	time.Sleep(2 * offloadSweep)
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Fatal("rule installed before the peer latched")
	}
	// A's packet from its SDP endpoint latches (heuristic, exact match): the
	// A->B direction goes to the kernel, aimed at B's SDP endpoint.
	c.aToB(t, pkt(1))
	r := waitRule(t, fp, c.ra.addr(), true)
	want := OffloadRule{Local: c.ra.addr(), Source: c.a.addr, Egress: c.rb.addr(), Dest: c.b.addr, TOS: 184}
	if r != want {
		t.Errorf("rule %+v, want %+v", r, want)
	}
	// Kernel counters show up in both streams' stats.
	fp.mu.Lock()
	fp.counters[c.ra.addr()] = KernelCounters{Packets: 100, Bytes: 17200, LastPacket: time.Now()}
	fp.mu.Unlock()
	st := c.ra.s.Stats()
	if !st.Kernel || st.In.Packets != 101 {
		t.Errorf("ra stats %+v, want kernel and 1+100 packets in", st)
	}
	waitStats(t, c.rb.s, "rb out = 1 sent + 100 in the kernel", func(s StreamStats) bool { return s.Out.Packets == 101 })
	if in, kern, _ := c.ra.s.Received(); in.Packets != 101 || kern.Packets != 100 {
		t.Errorf("Received %+v, kernel part %+v", in, kern)
	}
	// Every offer/answer takes the stream back to userspace.
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: c.a.addr})
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Error("rule still installed after Configure")
	}
	// Re-latched: back in the kernel.
	c.aToB(t, pkt(2))
	waitRule(t, fp, c.ra.addr(), true)
	// B's destination changes (B re-INVITEs elsewhere): A's rule follows.
	moved := netip.MustParseAddrPort("127.0.0.1:9")
	c.rb.s.Configure(StreamConfig{Sink: c.ra.s, Peer: moved, Learning: Off})
	deadline := time.Now().Add(2 * time.Second)
	for {
		if r, ok := fp.rule(c.ra.addr()); ok && r.Dest == moved {
			break
		}
		if time.Now().After(deadline) {
			r, ok := fp.rule(c.ra.addr())
			t.Fatalf("A's rule did not follow B's new endpoint: %+v %v", r, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Detach withdraws and releases.
	c.ra.s.Detach()
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Error("rule survived Detach")
	}
	fp.mu.Lock()
	released := fp.released[c.ra.addr()]
	fp.mu.Unlock()
	if !released {
		t.Error("counters not released on Detach")
	}
}

// Streams that need userspace never get a rule: IPv4<->IPv6 bridging and
// RTCP demultiplexing.
func TestOffloadRefusals(t *testing.T) {
	fp := newTableFastPath()
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	rtcpSink := attach(t, e, "127.0.0.1")
	c := newCall(t, e, "127.0.0.1", func(s *StreamConfig) { s.RTCPSink = rtcpSink.s }, nil)
	c.aToB(t, pkt(1))
	time.Sleep(3 * offloadSweep)
	if _, ok := fp.rule(c.ra.addr()); ok {
		t.Error("a demultiplexing stream went to the kernel")
	}
}
