// SPDX-License-Identifier: Apache-2.0

package session

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// changes records what a manager tells its store.
type changes struct {
	mu  sync.Mutex
	ids []string
}

func (c *changes) add(id string) { c.mu.Lock(); c.ids = append(c.ids, id); c.mu.Unlock() }

func (c *changes) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.ids
	c.ids = nil
	return out
}

// standby is a second relay on 127.0.0.2 whose logical interface has the
// active's name: it holds the active's calls on the same ports.
func standby(t *testing.T, switchover bool) (*Manager, *fakeClock, *changes) {
	t.Helper()
	ch := &changes{}
	m, clk := newMediaManager(t, func(c *Config) {
		c.Interfaces = []Interface{{Name: "internal", Local: netip.MustParseAddr("127.0.0.2")}}
		c.ActiveSwitchover = switchover
		c.OnChange = ch.add
	})
	return m, clk, ch
}

// replicate is what the store does: the state as JSON, from one relay to
// another.
func replicate(t *testing.T, from *Manager, id, node string) CallState {
	t.Helper()
	cs, ok := from.Snapshot(id)
	if !ok {
		t.Fatalf("no state of %s", id)
	}
	cs.Node, cs.Saved = node, time.Now()
	raw, err := json.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	var back CallState
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

func onAddr(ap netip.AddrPort, addr string) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(addr), ap.Port())
}

// A standby holds the call foreign on the same ports, forwards what reaches
// it at once, and with active-switchover makes the call its own once media
// arrived: its timeouts and saving start then, with the owner's counters.
func TestForeignCallTakenOverByMedia(t *testing.T) {
	active, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, active, "c1", a, b, Options{})
	toA, toB := relayPorts(t, active, "c1")
	a.send(toA, 10)
	if got := b.recv(300*time.Millisecond, toB); got != 10 {
		t.Fatalf("B received %d of 10 through the active relay", got)
	}
	b.send(toB, 5)
	if got := a.recv(300*time.Millisecond, toA); got != 5 {
		t.Fatalf("A received %d of 5 through the active relay", got)
	}

	sb, clk, ch := standby(t, true)
	if err := sb.Foreign(replicate(t, active, "c1", "node-a")); err != nil {
		t.Fatal(err)
	}
	st := sb.Statistics()
	if st.SessionsOwn != 0 || st.SessionsForeign != 1 {
		t.Fatalf("standby holds own=%d foreign=%d, want 0 and 1", st.SessionsOwn, st.SessionsForeign)
	}
	if _, ok := sb.Snapshot("c1"); ok {
		t.Error("a foreign call's state is offered for saving")
	}
	if got := sb.ListOwn(0); len(got) != 0 {
		t.Errorf("ListOwn = %q", got)
	}
	if got := sb.List(0); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("List = %q", got)
	}
	sA, sB := relayPorts(t, sb, "c1")
	if sA != onAddr(toA, "127.0.0.2") || sB != onAddr(toB, "127.0.0.2") {
		t.Fatalf("standby ports %v %v, want the active's %v %v on 127.0.0.2", sA, sB, toA, toB)
	}
	// No timeout applies to a foreign call, however long it is silent.
	clk.add(time.Hour)
	sb.Expire()
	if sb.switchover() != 0 {
		t.Error("taken over with no media")
	}
	if !sb.IsForeign("c1") {
		t.Fatal("foreign call gone after an hour of silence")
	}
	if got := ch.take(); len(got) != 0 {
		t.Errorf("foreign call reported to the store: %q", got)
	}

	// The traffic moves to the standby: it forwards at once, to the
	// endpoints the active had learned, from the same ports.
	a.send(sA, 10)
	if got := b.recv(300*time.Millisecond, sB); got != 10 {
		t.Fatalf("B received %d of 10 through the standby", got)
	}
	if n := sb.switchover(); n != 1 {
		t.Fatalf("switchover took over %d calls, want 1", n)
	}
	if sb.IsForeign("c1") {
		t.Fatal("call still foreign after media")
	}
	if got := ch.take(); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("store told %q, want the taken-over call", got)
	}
	st = sb.Statistics()
	if st.SessionsOwn != 1 || st.SessionsForeign != 0 || st.Managed != 1 {
		t.Errorf("after takeover own=%d foreign=%d managed=%d", st.SessionsOwn, st.SessionsForeign, st.Managed)
	}
	// The owner's counters and the standby's add up.
	info, err := sb.Query("c1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if info.RTP.Packets != 25 {
		t.Errorf("RTP packets after takeover %d, want 10+5 counted by the active and 10 here", info.RTP.Packets)
	}
	// Now it is an ordinary call: silence ends it.
	clk.add(2 * time.Minute)
	sb.Expire()
	if _, err := sb.Query("c1", "", ""); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("taken-over call did not time out: %v", err)
	}
}

// Without active-switchover media does not take a call over; signalling
// does, and the operator's TakeOverAll does.
func TestForeignCallTakenOverBySignalAndOperator(t *testing.T) {
	active, _ := newMediaManager(t, nil)
	for _, id := range []string{"sig", "op1", "op2"} {
		setupCall(t, active, id, newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	}
	sb, _, ch := standby(t, false)
	for _, id := range []string{"sig", "op1", "op2"} {
		if err := sb.Foreign(replicate(t, active, id, "node-a")); err != nil {
			t.Fatal(err)
		}
	}
	toA, _ := relayPorts(t, sb, "op1")
	newParty(t, "127.0.0.1").send(toA, 3)
	time.Sleep(50 * time.Millisecond)
	if sb.switchover() != 0 || !sb.IsForeign("op1") {
		t.Error("media took a call over without active-switchover")
	}
	// A re-INVITE reaches the standby: it serves the call from now on.
	p := newParty(t, "127.0.0.1")
	if _, err := sb.Offer(Signal{CallID: "sig", FromTag: "A", ToTag: "B", SDP: p.sdp()}); err != nil {
		t.Fatal(err)
	}
	if sb.IsForeign("sig") {
		t.Error("signalled call still foreign")
	}
	if got := ch.take(); !slices.Equal(got, []string{"sig"}) {
		t.Errorf("store told %q", got)
	}
	if n := sb.TakeOverAll(); n != 2 {
		t.Errorf("TakeOverAll = %d, want 2", n)
	}
	got := ch.take()
	slices.Sort(got)
	if !slices.Equal(got, []string{"op1", "op2"}) {
		t.Errorf("store told %q after TakeOverAll", got)
	}
	if st := sb.Statistics(); st.SessionsOwn != 3 || st.SessionsForeign != 0 {
		t.Errorf("own=%d foreign=%d", st.SessionsOwn, st.SessionsForeign)
	}
}

// Updates replace a foreign call's state on the sockets it keeps, deletes
// drop it without a trace in statistics, and stopping the standby saves or
// deletes nothing of them.
func TestForeignCallUpdatedAndDropped(t *testing.T) {
	active, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, active, "c", a, b, Options{})
	sb, _, ch := standby(t, true)
	if err := sb.Foreign(replicate(t, active, "c", "node-a")); err != nil {
		t.Fatal(err)
	}
	// B moves (a re-INVITE with a new port on the active): the update
	// follows the active's ports and points them at B's new address.
	b2 := newParty(t, "127.0.0.1")
	if _, err := active.Offer(Signal{CallID: "c", FromTag: "B", ToTag: "A", SDP: b2.sdp()}); err != nil {
		t.Fatal(err)
	}
	if _, err := active.Answer(Signal{CallID: "c", FromTag: "B", ToTag: "A", SDP: a.sdp()}); err != nil {
		t.Fatal(err)
	}
	if err := sb.Foreign(replicate(t, active, "c", "node-a")); err != nil {
		t.Fatal(err)
	}
	after, afterB := relayPorts(t, sb, "c")
	wantA, wantB := relayPorts(t, active, "c")
	if after != onAddr(wantA, "127.0.0.2") || afterB != onAddr(wantB, "127.0.0.2") {
		t.Errorf("standby's ports %v %v after an update, the active's are %v %v", after, afterB, wantA, wantB)
	}
	if st := sb.Statistics(); st.SessionsForeign != 1 || st.SessionsOwn != 0 {
		t.Fatalf("after the update own=%d foreign=%d", st.SessionsOwn, st.SessionsForeign)
	}
	a.send(after, 5)
	if got := b2.recv(300*time.Millisecond, afterB); got != 5 {
		t.Errorf("B's new address received %d of 5 through the updated standby", got)
	}
	if !sb.DropForeign("c") {
		t.Fatal("DropForeign found no foreign call")
	}
	st := sb.Statistics()
	if st.SessionsForeign != 0 || st.ForcedTerminated+st.RegularTerminated+st.Timeout != 0 || st.Managed != 0 {
		t.Errorf("a dropped foreign call left traces: %+v", st)
	}
	if sb.DropForeign("c") {
		t.Error("dropped twice")
	}
	// Its ports are free again (the media plane closes sockets on its
	// own time).
	deadline := time.Now().Add(2 * time.Second)
	for sb.Statistics().Interfaces[0].PortsUsed != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d port slots still used after the drop", sb.Statistics().Interfaces[0].PortsUsed)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sb.Foreign(replicate(t, active, "c", "node-a")); err != nil {
		t.Fatal(err)
	}
	sb.Close()
	if got := ch.take(); len(got) != 0 {
		t.Errorf("stopping the standby told the store %q", got)
	}
}

// An own call whose record another relay wrote becomes foreign here (the
// other took it over); StandbyAll makes every own call foreign. Neither is
// saved by this relay any more, and max-sessions counts own calls only.
func TestOwnCallsBecomeForeign(t *testing.T) {
	a, _, cha := standby(t, true) // on 127.0.0.2
	// b on 127.0.0.3, where nothing else on this machine binds: it claims
	// a's ports there.
	b, _ := newMediaManager(t, func(c *Config) {
		c.MaxSessions = 1
		c.Interfaces = []Interface{{Name: "internal", Local: netip.MustParseAddr("127.0.0.3")}}
	})
	setupCall(t, a, "x", newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	setupCall(t, a, "y", newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	cha.take()
	// b holds x foreign and still takes a call of its own under
	// max-sessions=1, then takes x over by signalling (already admitted).
	if err := b.Foreign(replicate(t, a, "x", "node-a")); err != nil {
		t.Fatal(err)
	}
	setupCall(t, b, "own", newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	if err := b.Foreign(replicate(t, a, "y", "node-a")); err != nil {
		t.Fatal(err)
	}
	if n := b.TakeOverAll(); n != 2 {
		t.Fatalf("TakeOverAll = %d", n)
	}
	// A record of x b's old self wrote before a took it over (still on
	// its way) leaves a's x alone.
	stale := replicate(t, b, "x", "node-b")
	stale.Saved = time.Now().Add(-time.Hour)
	if err := a.Foreign(stale); !errors.Is(err, ErrStaleState) || a.IsForeign("x") {
		t.Fatalf("stale record: %v, foreign %v", err, a.IsForeign("x"))
	}
	// That write replaced a's record in the store: a writes x again.
	if got := cha.take(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("after a stale record the store was told %q, want x written again", got)
	}
	// b's record of x reaches a: a's x is foreign now.
	if err := a.Foreign(replicate(t, b, "x", "node-b")); err != nil {
		t.Fatal(err)
	}
	if !a.IsForeign("x") || a.IsForeign("y") {
		t.Fatalf("foreign on a: x=%v y=%v", a.IsForeign("x"), a.IsForeign("y"))
	}
	if got := cha.take(); len(got) != 0 {
		t.Errorf("demotion told the store %q", got)
	}
	if n := a.StandbyAll(); n != 1 {
		t.Errorf("StandbyAll = %d, want 1", n)
	}
	if st := a.Statistics(); st.SessionsOwn != 0 || st.SessionsForeign != 2 {
		t.Errorf("a: own=%d foreign=%d", st.SessionsOwn, st.SessionsForeign)
	}
	if _, ok := a.Snapshot("y"); ok {
		t.Error("a demoted call is offered for saving")
	}
}

// The owner reused a deleted call's ports for a new call, and the new
// call's record arrived before the old one's delete: the new record wins,
// the stale foreign call goes (its sockets close on the media plane's
// time, so the store's follower reads the record again meanwhile).
func TestForeignCallTakesPortsOfAStaleOne(t *testing.T) {
	active, _ := newMediaManager(t, nil)
	setupCall(t, active, "old", newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	sb, _, _ := standby(t, true)
	old := replicate(t, active, "old", "node-a")
	if err := sb.Foreign(old); err != nil {
		t.Fatal(err)
	}
	reuse := replicate(t, active, "old", "node-a")
	reuse.CallID = "new"
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := sb.Foreign(reuse)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new call never got its ports: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sb.IsForeign("old") || !sb.IsForeign("new") {
		t.Errorf("old foreign %v, new foreign %v", sb.IsForeign("old"), sb.IsForeign("new"))
	}
	// An own call's ports are never taken: that is a real conflict.
	own := replicate(t, active, "old", "node-a")
	own.CallID = "third"
	sb.TakeOverAll()
	if err := sb.Foreign(own); err == nil {
		t.Error("a record took the ports of an own call")
	}
	if sb.IsForeign("new") || !slices.Contains(sb.ListOwn(0), "new") {
		t.Error("the own call was dropped")
	}
}
