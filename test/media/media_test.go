// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// TestMedia runs the forwarding scenarios against one relayd instance, one
// call (or a few) per scenario, each deleted when its scenario ends.
func TestMedia(t *testing.T) {
	requireEnvironment(t)
	t.Parallel()
	dir := testenv.ArtifactDir(t, "MEDIA_ARTIFACTS")
	tp := newTopology(t)
	// Long enough that no call of a scenario times out; the timeouts have
	// their own test and relay.
	r := startRelayd(t, tp, dir, "--timeout=10", "--silent-timeout=20", "--offer-timeout=20")
	env := &testEnv{r: r, tp: tp}
	scenarios := []struct {
		name string
		run  func(*testing.T, *testEnv)
	}{
		{"1_both_ways", scenarioBothWays},
		{"2_rtcp_mux", scenarioRTCPMux},
		{"3_nat_learning", scenarioNATLearning},
		{"3b_nat_private_sdp_address", scenarioNATPrivateAddress},
		{"3c_nat_sip_source_address", scenarioNATSIPSource},
		{"4a_hijack_before_a_sent", scenarioHijackBeforeLatch},
		{"4b_hijack_after_window", scenarioHijackAfterWindow},
		{"4c_strict_source", scenarioStrictSource},
		{"4d_media_handover", scenarioMediaHandover},
		{"5_reinvite_new_port", scenarioReinvite},
		{"6_hold_resume", scenarioHoldResume},
		{"8a_ipv6", scenarioIPv6},
		{"8b_ipv4_to_ipv6", scenarioIPv4ToIPv6},
		{"9_delete_releases_ports", scenarioDelete},
		{"10a_tos_default", scenarioTOSDefault},
		{"10b_tos_per_call", scenarioTOSPerCall},
		{"10c_tclass_ipv6", scenarioTClassIPv6},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r.watchSubtest(t)
			sc.run(t, env)
		})
	}
}

type testEnv struct {
	r  *relayd
	tp *topology
}

// parties makes a and b on IPv4.
func (e *testEnv) parties(t *testing.T) (a, b *party) {
	t.Helper()
	return newParty(t, e.tp.a, "a", partyA4), newParty(t, e.tp.b, "b", partyB4)
}

// targets are the relay addresses a party sends to: the relay's own local
// address on that side (not the advertised 203.0.113.1, which only exists in
// front of a NAT) with the ports from the SDP the relay gave that party.
type targets struct {
	rtp, rtcp netip.AddrPort
}

func target(local string, s relaySDP) targets {
	return targets{rtp: ap(local, s.port), rtcp: ap(local, s.rtcpPort)}
}

// exchange sends n packets each way between two sockets through the relay
// and requires each side to receive all of them from the relay socket it
// sends to, unmodified, and nothing else. It returns what each side got.
func exchange(t *testing.T, label string, rtcp bool, a *endpoint, aDst netip.AddrPort, b *endpoint, bDst netip.AddrPort, n int) (atB, atA []packet) {
	t.Helper()
	fa := newFlow(label+" a→b", rtcp)
	first := a.send(t, fa, aDst, n)
	atB, _ = b.expect(t, burst{fa, first, n, bDst})
	fb := newFlow(label+" b→a", rtcp)
	first = b.send(t, fb, bDst, n)
	atA, _ = a.expect(t, burst{fb, first, n, aDst})
	return atB, atA
}

// quiet checks that none of the sockets got anything else.
func quiet(t *testing.T, why string, eps ...*endpoint) {
	t.Helper()
	for _, e := range eps {
		e.expectNothing(t, 50*time.Millisecond, why)
	}
}

// 1: offer from a, answer from b; 50 RTP packets each way to the ports in the
// SDPs, arriving from the relay port the receiver was given; RTCP likewise on
// RTP+1.
func scenarioBothWays(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
	exchange(t, "RTCP", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 20)
	quiet(t, "every packet must arrive once, on the socket of its kind", a.rtp, a.rtcp, b.rtp, b.rtcp)
}

// 2: both parties use rtcp-mux; RTCP sent on the RTP port arrives on the
// other side's RTP port, and the RTCP sockets stay silent.
func scenarioRTCPMux(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	as, bs := a.spec(1), b.spec(1)
	as.mux, bs.mux = true, true
	c := setupCall(t, e.r, a, b, callOptions{aSpec: &as, bSpec: &bs})
	if !c.toB.mux || !c.toA.mux {
		t.Fatalf("a=rtcp-mux offered by a: SDP to b has rtcp-mux %v, SDP to a has rtcp-mux %v; want both\nto b:\n%s\nto a:\n%s",
			c.toB.mux, c.toA.mux, c.toB.body, c.toA.body)
	}
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 20)
	exchange(t, "muxed RTCP", true, a.rtp, aT.rtp, b.rtp, bT.rtp, 20)
	quiet(t, "with rtcp-mux nothing may arrive on the RTCP sockets", a.rtcp, b.rtcp)
}

// 3: a's SDP names port P, but a sends from another port (a NAT): once a
// has sent, b's media reaches the port a really uses, and query shows it
// as a's endpoint.
func scenarioNATLearning(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	nat := a.extraSocket(t, "RTP behind NAT", int(a.rtp.local.Port())+100)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)

	fa := newFlow("a→b from NAT port", false)
	first := nat.send(t, fa, aT.rtp, 10)
	b.rtp.expect(t, burst{fa, first, 10, bT.rtp})

	fb := newFlow("b→a", false)
	first = b.rtp.send(t, fb, bT.rtp, 50)
	nat.expect(t, burst{fb, first, 50, aT.rtp})
	a.rtp.expectNothing(t, settle, "after a sent from its real port, its SDP port gets nothing")

	s := streamAt(t, queryStreams(t, e.r.query(t, c.id)), c.toA.port)
	if s.endpoint != nat.local {
		t.Errorf("query: relay socket %d facing a has endpoint %s, want the learned %s (SDP said %s)\n%s",
			c.toA.port, s.endpoint, nat.local, a.rtp.local, s)
	}
}

// 4a: the attacker x sends to the relay port facing a inside the learning
// window, before a has ever sent. x's address is not the one the signalling
// named and nothing has latched yet: its packets are refused and counted,
// never forwarded to b, and b's media goes to a's SDP address, never to x.
// Then a sends from its SDP address: the exact match latches at once, and
// x's later packets are refused as well.
func scenarioHijackBeforeLatch(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	x := newParty(t, e.tp.x, "x", attacker4)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)

	const early = 5
	fx := newFlow("x attacker", false)
	x.rtp.send(t, fx, aT.rtp, early)
	waitHandled(t, e.r, c, c.toA.port, "x's early packets refused", func(s qStream) bool { return s.stats["errors"] >= early })
	b.rtp.expectNothing(t, 50*time.Millisecond, "x's packets before a sent must not reach b")

	fb := newFlow("b→a before a sent", false)
	first := b.rtp.send(t, fb, bT.rtp, 5)
	a.rtp.expect(t, burst{fb, first, 5, aT.rtp})
	x.rtp.expectNothing(t, 50*time.Millisecond, "b's media must go to a's SDP address, never to x")

	fa := newFlow("a→b", false)
	first = a.rtp.send(t, fa, aT.rtp, 10)
	b.rtp.expect(t, burst{fa, first, 10, bT.rtp})

	first = b.rtp.send(t, fb, bT.rtp, 50)
	a.rtp.expect(t, burst{fb, first, 50, aT.rtp})

	const late = 5
	x.rtp.send(t, fx, aT.rtp, late)
	s := waitHandled(t, e.r, c, c.toA.port, "x's late packets refused", func(s qStream) bool { return s.stats["errors"] >= early+late })
	if got := s.stats["errors"]; got != early+late {
		t.Errorf("relay socket facing a counts %d refused packets, want %d (every packet of x)\n%s", got, early+late, s)
	}
	b.rtp.expectNothing(t, 50*time.Millisecond, "x's packets after a latched must be dropped")
	x.rtp.expectNothing(t, 50*time.Millisecond, "x must receive nothing")
	if s.endpoint != a.rtp.local {
		t.Errorf("query: relay socket facing a has endpoint %s, want a's %s\n%s", s.endpoint, a.rtp.local, s)
	}
}

// 3b: a is behind a NAT and its SDP names its private address, which the
// relay cannot reach and a does not send from. Inside the learning window
// a's packets come from an address the signalling did not name: refused
// (counted), and b's media goes to the private address. When the window
// closes, a's next packet latches it (the best candidate) and media flows
// both ways: the first seconds of the call are lost in both directions,
// which SIP-source-address (3c) avoids.
func scenarioNATPrivateAddress(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	as := a.spec(1)
	as.addr = netip.MustParseAddr("10.99.0.5")
	c := setupCall(t, e.r, a, b, callOptions{aSpec: &as})
	answered := time.Now()
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)

	fa := newFlow("a→b inside the window", false)
	a.rtp.send(t, fa, aT.rtp, 5)
	waitHandled(t, e.r, c, c.toA.port, "a's packets from an unnamed address refused", func(s qStream) bool { return s.stats["errors"] >= 5 })
	b.rtp.expectNothing(t, 50*time.Millisecond, "inside the window a's packets from an unnamed address must not be forwarded")
	fb := newFlow("b→a inside the window", false)
	b.rtp.send(t, fb, bT.rtp, 5)
	a.rtp.expectNothing(t, 50*time.Millisecond, "inside the window b's media goes to a's SDP address, not to a candidate")

	time.Sleep(time.Until(answered.Add(learningWindow + 300*time.Millisecond)))
	exchange(t, "RTP after the window", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	s := streamAt(t, queryStreams(t, e.r.query(t, c.id)), c.toA.port)
	if s.endpoint != a.rtp.local {
		t.Errorf("query: relay socket facing a has endpoint %s, want a's real %s\n%s", s.endpoint, a.rtp.local, s)
	}
}

// 3c: the same NAT, and the proxy names a's real address: flag
// SIP-source-address with received-from (what Kamailio sends for a phone
// behind NAT, the address its SIP came from). Media flows both ways at once.
func scenarioNATSIPSource(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	as := a.spec(1)
	as.addr = netip.MustParseAddr("10.99.0.5")
	c := setupCall(t, e.r, a, b, callOptions{aSpec: &as, flags: []string{"SIP-source-address"},
		offerExtra:  map[string]any{"received-from": []string{"IP4", a.addr.String()}},
		answerExtra: map[string]any{"received-from": []string{"IP4", b.addr.String()}}})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP at once", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	quiet(t, "nothing else", a.rtp, b.rtp)
}

// 4b: once a is latched and the learning window is over, x's packets are
// dropped (b gets none) and x receives nothing; query counts the drops.
func scenarioHijackAfterWindow(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	x := newParty(t, e.tp.x, "x", attacker4)
	c := setupCall(t, e.r, a, b, callOptions{})
	answered := time.Now()
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	time.Sleep(time.Until(answered.Add(learningWindow + 500*time.Millisecond)))

	const attack = 20
	fx := newFlow("x attacker", false)
	x.rtp.send(t, fx, aT.rtp, attack)
	waitHandled(t, e.r, c, c.toA.port, "the attack refused", func(s qStream) bool { return s.stats["errors"] >= attack })
	b.rtp.expectNothing(t, 50*time.Millisecond, "x's packets after a latched and the window closed must be dropped")

	fb := newFlow("b→a after attack", false)
	first := b.rtp.send(t, fb, bT.rtp, 20)
	a.rtp.expect(t, burst{fb, first, 20, aT.rtp})
	x.rtp.expectNothing(t, settle, "x must never receive b's media")
	exchange(t, "RTP after attack", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)

	checkDropsCounted(t, e.r, c, attack)
}

// 4c: with strict-source, x's packets are dropped even inside the learning
// window: before a has sent, and after a latched.
func scenarioStrictSource(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	x := newParty(t, e.tp.x, "x", attacker4)
	c := setupCall(t, e.r, a, b, callOptions{flags: []string{"strict-source"}})
	answered := time.Now()
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)

	fx := newFlow("x attacker", false)
	x.rtp.send(t, fx, aT.rtp, 5)
	waitHandled(t, e.r, c, c.toA.port, "x's first packets refused", func(s qStream) bool { return s.stats["errors"] >= 5 })
	b.rtp.expectNothing(t, 50*time.Millisecond, "strict-source: x's packets inside the window, before a sent, must be dropped")

	fa := newFlow("a→b", false)
	first := a.rtp.send(t, fa, aT.rtp, 10)
	b.rtp.expect(t, burst{fa, first, 10, bT.rtp})

	x.rtp.send(t, fx, aT.rtp, 5)
	waitHandled(t, e.r, c, c.toA.port, "x's later packets refused", func(s qStream) bool { return s.stats["errors"] >= 10 })
	b.rtp.expectNothing(t, 50*time.Millisecond, "strict-source: x's packets inside the window, after a latched, must be dropped")
	if elapsed := time.Since(answered); elapsed > learningWindow {
		t.Errorf("harness too slow: the second attack ended %v after the answer, outside the learning window it is meant to test", elapsed)
	}

	fb := newFlow("b→a", false)
	first = b.rtp.send(t, fb, bT.rtp, 20)
	a.rtp.expect(t, burst{fb, first, 20, aT.rtp})
	x.rtp.expectNothing(t, settle, "x must never receive b's media")

	checkDropsCounted(t, e.r, c, 10)
}

// 4d: media-handover means the latest source takes over a latched stream at
// once (for endpoints that change address mid-call; it reopens hijacking):
// after a latched and the learning window closed, x's packets reach b and
// b's media follows x.
func scenarioMediaHandover(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	x := newParty(t, e.tp.x, "x", attacker4)
	c := setupCall(t, e.r, a, b, callOptions{flags: []string{"media-handover"}})
	answered := time.Now()
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	// Past the window, so that a is latched under every learning rule (in
	// delayed mode the first packet after the window confirms).
	time.Sleep(time.Until(answered.Add(learningWindow + 500*time.Millisecond)))
	exchange(t, "RTP after the window", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)

	fx := newFlow("x taking over", false)
	first := x.rtp.send(t, fx, aT.rtp, 10)
	b.rtp.expect(t, burst{fx, first, 10, bT.rtp})

	fb := newFlow("b→(a, now x)", false)
	first = b.rtp.send(t, fb, bT.rtp, 20)
	x.rtp.expect(t, burst{fb, first, 20, aT.rtp})
	a.rtp.expectNothing(t, settle, "with media-handover b's media follows the newest source")

	s := streamAt(t, queryStreams(t, e.r.query(t, c.id)), c.toA.port)
	if s.endpoint != x.rtp.local {
		t.Errorf("query: relay socket facing a has endpoint %s after the handover, want %s\n%s", s.endpoint, x.rtp.local, s)
	}
}

// checkDropsCounted requires the relay socket facing a to count the packets
// it refused, each once, in its query entry's stats.errors: nothing else
// sent to that socket in these scenarios is dropped, so the count must equal
// the attacker's refused packets.
func checkDropsCounted(t *testing.T, r *relayd, c *call, want int64) {
	t.Helper()
	s := streamAt(t, queryStreams(t, r.query(t, c.id)), c.toA.port)
	t.Logf("query, relay socket facing a: %s", s)
	if others := dropCounters(s); len(others) > 0 {
		t.Logf("query also exposes %v", others)
	}
	got, ok := s.stats["errors"]
	if !ok {
		t.Logf("query exposes no stats.errors on the stream (fields %v); drops not checked", s.rawFields)
		return
	}
	if got != want {
		t.Errorf("query: relay socket facing a counts stats.errors = %d, want %d (each packet x sent, refused once)\n%s", got, want, s)
	}
}

// 5: a re-INVITEs to a new port while both sides stream: b's media moves to
// the new socket, and a→b keeps flowing with at most a few packets lost.
func scenarioReinvite(t *testing.T, e *testEnv) {
	const every = 10 * time.Millisecond
	const maxGap = 5 // packets, i.e. 50 ms
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)

	fa, fb := newFlow("a→b continuous", false), newFlow("b→a continuous", false)
	aFirst, bFirst := fa.next, fb.next
	sa := startStreamer(fa, a.rtp, aT.rtp, every)
	sb := startStreamer(fb, b.rtp, bT.rtp, every)
	time.Sleep(300 * time.Millisecond)

	a2 := a.extraSocket(t, "RTP after re-INVITE", 0)
	spec := a.spec(2)
	spec.port = int(a2.local.Port())
	toB2 := replySDP(t, "re-offer reply (SDP for b)", e.r.must(t, offerReq(c.id, c.aTag, spec, nil, nil)))
	toB2.check(t, "SDP the relay re-offered to b", relayInt4)
	bT2 := target(relayInt4, toB2)
	sb.switchTo(b.rtp, bT2.rtp)
	toA2 := replySDP(t, "re-answer reply (SDP for a)", e.r.must(t, answerReq(c.id, c.aTag, c.bTag, b.spec(2), nil, nil)))
	toA2.check(t, "SDP the relay re-answered to a", relayAdv4)
	aT2 := target(relayExt4, toA2)
	sa.switchTo(a2, aT2.rtp)
	bAnswered := sb.nextSeq()
	t.Logf("re-INVITE: relay port for b %d → %d, for a %d → %d", c.toB.port, toB2.port, c.toA.port, toA2.port)

	time.Sleep(500 * time.Millisecond)
	aEnd, errA := sa.halt()
	bEnd, errB := sb.halt()
	for _, err := range []error{errA, errB} {
		if err != nil {
			t.Fatal(err)
		}
	}
	atB := b.rtp.collect(300 * time.Millisecond)
	atA1 := a.rtp.collect(50 * time.Millisecond)
	atA2 := a2.collect(50 * time.Millisecond)

	// a→b: from either relay socket facing b (the old one until the relay
	// switched), every packet but a few.
	got := map[uint16]int{}
	var other []packet
	for _, src := range []netip.AddrPort{bT.rtp, bT2.rtp} {
		seqs, rest := seqsOf(atB, fa, src)
		for s, n := range seqs {
			got[s] += n
		}
		other = rest
		atB = rest
	}
	var missing []uint16
	for s := aFirst; s != aEnd; s++ {
		if got[s] == 0 {
			missing = append(missing, s)
		}
	}
	t.Logf("a→b: sent %d, b received %d distinct (missing %s)", int(aEnd-aFirst), len(got), seqRanges(missing))
	if len(missing) > maxGap {
		t.Errorf("a→b lost %d of %d packets across the re-INVITE (seq %s), want at most %d", len(missing), int(aEnd-aFirst), seqRanges(missing), maxGap)
	}
	for _, p := range other {
		t.Errorf("b: unexpected %s", p)
	}

	// b→a: everything b sent from 100 ms after the re-INVITE completed
	// reaches the new socket, none the old one.
	settled := bAnswered + 10
	newSeqs, rest2 := seqsOf(atA2, fb, aT2.rtp)
	var lateMissing, lateAtOld []uint16
	for s := settled; s != bEnd; s++ {
		if newSeqs[s] == 0 {
			lateMissing = append(lateMissing, s)
		}
	}
	oldSeqs, rest1 := seqsOf(atA1, fb, aT.rtp)
	for s := range oldSeqs {
		if s-bFirst >= settled-bFirst && s-bFirst < bEnd-bFirst {
			lateAtOld = append(lateAtOld, s)
		}
	}
	slices.Sort(lateAtOld)
	t.Logf("b→a: sent %d; old socket got %d, new socket got %d", int(bEnd-bFirst), len(oldSeqs), len(newSeqs))
	if len(lateMissing) > 0 {
		t.Errorf("b→a: after the re-INVITE, %d of %d packets did not reach a's new socket (seq %s)", len(lateMissing), int(bEnd-settled), seqRanges(lateMissing))
	}
	if len(lateAtOld) > 0 {
		t.Errorf("b→a: %d packets sent after the re-INVITE still reached a's old socket (seq %s)", len(lateAtOld), seqRanges(lateAtOld))
	}
	for _, p := range append(rest1, rest2...) {
		t.Errorf("a: unexpected %s", p)
	}

	// And, strictly, with both sides settled on the new ports.
	exchange(t, "RTP after re-INVITE", false, a2, aT2.rtp, b.rtp, bT2.rtp, 50)
	quiet(t, "a's old socket is out of the call", a.rtp)
}

// 6: a puts the call on hold with c=0.0.0.0; b's media is not delivered to
// a; a resumes with its address and media flows both ways again.
func scenarioHoldResume(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP before hold", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)

	hold := a.spec(2)
	hold.addr, hold.dir = ip("0.0.0.0"), ""
	toBHold := replySDP(t, "hold offer reply (SDP for b)", e.r.must(t, offerReq(c.id, c.aTag, hold, nil, nil)))
	if toBHold.addr != ip("0.0.0.0") || toBHold.direction != "sendonly" {
		t.Errorf("hold SDP to b: c= %s, direction %q; want 0.0.0.0 and sendonly (reference §2.5)\n%s", toBHold.addr, toBHold.direction, toBHold.body)
	}
	bHold := b.spec(2)
	bHold.dir = "recvonly"
	toAHold := replySDP(t, "hold answer reply (SDP for a)", e.r.must(t, answerReq(c.id, c.aTag, c.bTag, bHold, nil, nil)))
	toAHold.check(t, "hold answer SDP to a", relayAdv4)

	fb := newFlow("b→a during hold", false)
	before := streamAt(t, queryStreams(t, e.r.query(t, c.id)), int(bT.rtp.Port()))
	b.rtp.send(t, fb, bT.rtp, 20)
	waitHandled(t, e.r, c, int(bT.rtp.Port()), "b's packets during the hold handled", func(s qStream) bool {
		return s.stats["packets"]+s.stats["errors"] >= before.stats["packets"]+before.stats["errors"]+20
	})
	a.rtp.expectNothing(t, 50*time.Millisecond, "a is on hold (c=0.0.0.0): b's media must not be delivered")
	a.rtcp.expectNothing(t, 10*time.Millisecond, "a is on hold")

	resume := a.spec(3)
	toB3 := replySDP(t, "resume offer reply (SDP for b)", e.r.must(t, offerReq(c.id, c.aTag, resume, nil, nil)))
	toB3.check(t, "resume SDP to b", relayInt4)
	toA3 := replySDP(t, "resume answer reply (SDP for a)", e.r.must(t, answerReq(c.id, c.aTag, c.bTag, b.spec(3), nil, nil)))
	toA3.check(t, "resume SDP to a", relayAdv4)
	t.Logf("hold/resume: relay port for b %d → %d → %d, for a %d → %d → %d", c.toB.port, toBHold.port, toB3.port, c.toA.port, toAHold.port, toA3.port)
	aT3, bT3 := target(relayExt4, toA3), target(relayInt4, toB3)
	exchange(t, "RTP after resume", false, a.rtp, aT3.rtp, b.rtp, bT3.rtp, 50)
	exchange(t, "RTCP after resume", true, a.rtcp, aT3.rtcp, b.rtcp, bT3.rtcp, 10)
}

// 8a: scenario 1 with both parties on IPv6.
func scenarioIPv6(t *testing.T, e *testEnv) {
	a := newParty(t, e.tp.a, "a6", partyA6)
	b := newParty(t, e.tp.b, "b6", partyB6)
	c := setupCall(t, e.r, a, b, callOptions{wantToB: relayInt6, wantToA: relayExt6})
	aT, bT := target(relayExt6, c.toA), target(relayInt6, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
	exchange(t, "RTCP", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 20)
	quiet(t, "every packet must arrive once", a.rtp, a.rtcp, b.rtp, b.rtcp)
}

// 8b: a on IPv4, b on IPv6: the offer asks for address family IP6 towards b.
func scenarioIPv4ToIPv6(t *testing.T, e *testEnv) {
	a := newParty(t, e.tp.a, "a4", partyA4)
	b := newParty(t, e.tp.b, "b6", partyB6)
	c := setupCall(t, e.r, a, b, callOptions{
		offerExtra: map[string]any{"address family": "IP6"},
		wantToB:    relayInt6, wantToA: relayAdv4,
	})
	aT, bT := target(relayExt4, c.toA), target(relayInt6, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
	exchange(t, "RTCP", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 20)
}

// 9: delete closes the call's sockets: media sent to them goes nowhere, and
// the interfaces' used-ports counters return to where they were.
func scenarioDelete(t *testing.T, e *testEnv) {
	if calls := e.r.list(t); len(calls) > 0 {
		t.Errorf("precondition: the earlier scenarios' calls should all be deleted, relay lists %q", calls)
	}
	before := portsUsed(t, e.r.statistics(t))
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)

	callPorts := []int{c.toA.port, c.toA.rtcpPort, c.toB.port, c.toB.rtcpPort}
	during := portsUsed(t, e.r.statistics(t))
	if sum(during) <= sum(before) {
		t.Errorf("statistics ports used during the call %v, want more than before it %v", during, before)
	}
	bound := e.r.socketsBound(t)
	for _, p := range callPorts {
		if !bound[p] {
			t.Errorf("relay port %d of the call is not bound in the relay namespace during the call", p)
		}
	}

	e.r.must(t, map[string]any{"command": "delete", "call-id": c.id})
	if calls := e.r.list(t); slices.Contains(calls, c.id) {
		t.Errorf("after delete (delete-delay 0) the relay still lists %s", c.id)
	}
	after := portsUsed(t, e.r.statistics(t))
	if !maps.Equal(after, before) {
		t.Errorf("statistics ports used after delete %v, want %v as before the call", after, before)
	}
	if sum(after) != 0 && len(e.r.list(t)) == 0 {
		t.Errorf("no call left but statistics ports used %v, want 0 everywhere", after)
	}
	bound = e.r.socketsBound(t)
	for _, p := range callPorts {
		if bound[p] {
			t.Errorf("relay port %d is still bound after delete", p)
		}
	}

	fa, fb := newFlow("a→b after delete", false), newFlow("b→a after delete", false)
	a.rtp.send(t, fa, aT.rtp, 10)
	b.rtp.send(t, fb, bT.rtp, 10)
	fac, fbc := newFlow("a→b RTCP after delete", true), newFlow("b→a RTCP after delete", true)
	a.rtcp.send(t, fac, aT.rtcp, 5)
	b.rtcp.send(t, fbc, bT.rtcp, 5)
	b.rtp.expectNothing(t, 300*time.Millisecond, "the call is deleted")
	for _, ep := range []*endpoint{a.rtp, a.rtcp, b.rtcp} {
		ep.expectNothing(t, 10*time.Millisecond, "the call is deleted")
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// checkTOS requires every packet to carry tos.
func checkTOS(t *testing.T, what string, pkts []packet, want int) {
	t.Helper()
	counts := map[int]int{}
	for _, p := range pkts {
		counts[p.tos]++
	}
	if len(pkts) == 0 {
		t.Errorf("%s: no packets to check the TOS of", what)
		return
	}
	if len(counts) != 1 || counts[want] != len(pkts) {
		t.Errorf("%s: TOS/traffic class values %v (value: packets), want all %d (DSCP %d)", what, counts, want, want>>2)
	}
}

// 10a: media the relay sends carries DSCP EF (TOS 184) by default.
func scenarioTOSDefault(t *testing.T, e *testEnv) {
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	atB, atA := exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	checkTOS(t, "RTP at b", atB, 184)
	checkTOS(t, "RTP at a", atA, 184)
	atB, atA = exchange(t, "RTCP", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 5)
	checkTOS(t, "RTCP at b", atB, 184)
	checkTOS(t, "RTCP at a", atA, 184)
}

// 10b: the offer's TOS key sets the call's TOS byte.
func scenarioTOSPerCall(t *testing.T, e *testEnv) {
	const tos = 104 // DSCP AF31
	a, b := e.parties(t)
	c := setupCall(t, e.r, a, b, callOptions{offerExtra: map[string]any{"TOS": tos}})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	atB, atA := exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	checkTOS(t, fmt.Sprintf("RTP at b with TOS %d in the offer", tos), atB, tos)
	checkTOS(t, fmt.Sprintf("RTP at a with TOS %d in the offer", tos), atA, tos)
}

// 10c: over IPv6 the traffic class carries the same default.
func scenarioTClassIPv6(t *testing.T, e *testEnv) {
	a := newParty(t, e.tp.a, "a6", partyA6)
	b := newParty(t, e.tp.b, "b6", partyB6)
	c := setupCall(t, e.r, a, b, callOptions{wantToB: relayInt6, wantToA: relayExt6})
	aT, bT := target(relayExt6, c.toA), target(relayInt6, c.toB)
	atB, atA := exchange(t, "RTP", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	checkTOS(t, "IPv6 RTP at b (traffic class)", atB, 184)
	checkTOS(t, "IPv6 RTP at a (traffic class)", atA, 184)
}
