// SPDX-License-Identifier: Apache-2.0

package media

import (
	"testing"
	"time"
)

// A tap added to an offloaded call takes it out of the kernel without
// unlatching it (no learning window opens), and removing it puts it back
// at once, with no packet needed to latch again.
func TestReconfigureTapsKernel(t *testing.T) {
	r := newOffloadRig(t)
	c := r.offloaded()
	ca := StreamConfig{Sink: c.rb, Peer: c.a}
	cb := StreamConfig{Sink: c.ra, Peer: c.b}

	// An ingress tap on ra: ra leaves the kernel; rb, whose sink ra has no
	// Egress stage, stays.
	in := &tap{}
	tapped := ca
	tapped.Stages = []Stage{in}
	r.calls()
	c.ra.Reconfigure(tapped)
	r.o.flush()
	if c.ra.InKernel() || !c.rb.InKernel() {
		t.Fatalf("ingress tap on ra: ra in kernel %v (want false), rb %v (want true)", c.ra.InKernel(), c.rb.InKernel())
	}
	if !c.ra.Stats().Confirmed {
		t.Error("Reconfigure unlatched ra")
	}
	// Still latched: a hijacker is refused at once, as before.
	now := time.Now()
	if sink, _ := c.ra.receive(pkt(9), peer(9), 0, now.UnixNano(), 0, now); sink != nil {
		t.Error("a stranger's packet was forwarded after Reconfigure")
	}
	r.converged()

	// An egress tap on ra (what leaves towards A): rb, which sends into
	// ra, leaves the kernel too.
	out := &tap{}
	tappedB := tapped
	tappedB.Egress = []Stage{out}
	c.ra.Reconfigure(tappedB)
	r.o.flush()
	if c.ra.InKernel() || c.rb.InKernel() {
		t.Fatalf("egress tap on ra: ra %v, rb %v in kernel, want neither", c.ra.InKernel(), c.rb.InKernel())
	}
	r.converged()

	// The taps go: both directions are back in the kernel in the same pass.
	c.ra.Reconfigure(ca)
	c.rb.Reconfigure(cb)
	r.o.flush()
	if !c.ra.InKernel() || !c.rb.InKernel() {
		t.Fatalf("taps removed: ra %v, rb %v in kernel, want both", c.ra.InKernel(), c.rb.InKernel())
	}
	r.converged()
}

// A Reconfigure that changes more than the stages is a Configure: the peer
// moved, so learning starts over.
func TestReconfigureNewPeerRelearns(t *testing.T) {
	r := newOffloadRig(t)
	c := r.offloaded()
	c.ra.Reconfigure(StreamConfig{Sink: c.rb, Peer: peer(7)})
	r.o.flush()
	if c.ra.Stats().Confirmed || c.ra.InKernel() {
		t.Error("a new peer kept the old latch")
	}
	r.converged()
}

// Reconfigure on a stream that was never configured configures it.
func TestReconfigureFresh(t *testing.T) {
	r := newOffloadRig(t)
	s, sink := r.stream(), r.stream()
	s.Reconfigure(StreamConfig{Sink: sink, Peer: partyOf(s)})
	if !s.state.Load().cfg.configured {
		t.Fatal("not configured")
	}
	if d, ok := s.Destination(); !ok || d != partyOf(s) {
		t.Errorf("destination %v %v, want the peer", d, ok)
	}
}
