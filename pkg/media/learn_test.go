// SPDX-License-Identifier: Apache-2.0

package media

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestLearningRules drives the pure learning step packet by packet with a
// synthetic clock; the socket tests check the same rules end to end.
func TestLearningRules(t *testing.T) {
	const window = time.Second
	var (
		sdp      = netip.MustParseAddrPort("192.0.2.10:4000")
		natPort  = netip.MustParseAddrPort("192.0.2.10:5555")   // same address, other port
		natAddr  = netip.MustParseAddrPort("198.51.100.7:4000") // same port, other address
		attacker = netip.MustParseAddrPort("203.0.113.66:6666")
		other    = netip.MustParseAddrPort("203.0.113.67:7777")
		mapped   = netip.MustParseAddrPort("[::ffff:192.0.2.10]:4000")
		zero     = netip.MustParseAddrPort("0.0.0.0:4000")
		none     netip.AddrPort
	)
	type step struct {
		src      netip.AddrPort
		at       time.Duration // after Configure; >= window is after the window
		rtcp     bool          // stray RTCP on an RTP port
		want     verdict
		wantDest netip.AddrPort
		latched  bool
	}
	in, after := 10*time.Millisecond, window+time.Millisecond
	tests := []struct {
		name  string
		cfg   StreamConfig
		steps []step
	}{
		{"heuristic exact SDP match latches at once", StreamConfig{Peer: sdp}, []step{
			{sdp, in, false, accept, sdp, true},
			{attacker, in, false, reject, sdp, true},
			{attacker, after, false, reject, sdp, true},
		}},
		{"heuristic IPv4-mapped source equals SDP", StreamConfig{Peer: sdp}, []step{
			{mapped, in, false, accept, mapped, true},
			{sdp, in, false, accept, mapped, true},
		}},
		{"heuristic NAT port learned, latched after window", StreamConfig{Peer: sdp}, []step{
			{natPort, in, false, accept, natPort, false},
			{natPort, in, false, accept, natPort, false},
			{natPort, after, false, accept, natPort, true},
		}},
		// Until a source latches, nothing from an address the signalling
		// did not name is forwarded, and nothing is sent to it.
		{"heuristic better rank replaces, equal rank does not", StreamConfig{Peer: sdp}, []step{
			{attacker, in, false, reject, sdp, false},
			{natAddr, in, false, reject, sdp, false},
			{natPort, in, false, accept, natPort, false},
			{netip.MustParseAddrPort("192.0.2.10:6000"), in, false, accept, natPort, false},
			{attacker, in, false, reject, natPort, false},
			{sdp, in, false, accept, sdp, true},
		}},
		{"heuristic attacker before peer: neither forwarded nor sent to", StreamConfig{Peer: sdp}, []step{
			{attacker, in, false, reject, sdp, false},
			{attacker, in, false, reject, sdp, false},
			{sdp, in, false, accept, sdp, true},
			{attacker, in, false, reject, sdp, true},
			{attacker, after, false, reject, sdp, true},
		}},
		{"heuristic NAT, SDP names a private address: latched when the window closes", StreamConfig{Peer: sdp}, []step{
			{natAddr, in, false, reject, sdp, false},
			{natAddr, in, false, reject, sdp, false},
			{natAddr, after, false, accept, natAddr, true},
			{natAddr, after, false, accept, natAddr, true},
			{sdp, after, false, reject, natAddr, true},
		}},
		{"heuristic NAT, attacker first: the first candidate latches", StreamConfig{Peer: sdp}, []step{
			{attacker, in, false, reject, sdp, false},
			{natAddr, in, false, reject, sdp, false}, // better rank (same port): the best candidate
			{attacker, after, false, reject, natAddr, true},
		}},
		{"heuristic first packet after window latches best candidate, not itself", StreamConfig{Peer: sdp}, []step{
			{natPort, in, false, accept, natPort, false},
			{attacker, after, false, reject, natPort, true},
			{natPort, after, false, accept, natPort, true},
		}},
		{"heuristic nobody during window: first source latches", StreamConfig{Peer: sdp}, []step{
			{natAddr, after, false, accept, natAddr, true},
			{sdp, after, false, reject, natAddr, true},
		}},
		{"heuristic strict drops worse sources in window", StreamConfig{Peer: sdp, StrictSource: true}, []step{
			{natPort, in, false, accept, natPort, false},
			{attacker, in, false, reject, natPort, false},
			{natAddr, in, false, reject, natPort, false},
			{netip.MustParseAddrPort("192.0.2.10:6000"), in, false, accept, natPort, false}, // equal rank
			{attacker, after, false, reject, natPort, true},
		}},
		{"strict stray RTCP from worse source dropped", StreamConfig{Peer: sdp, StrictSource: true}, []step{
			{natPort, in, false, accept, natPort, false},
			{attacker, in, true, reject, natPort, false},
			{natPort, after, true, accept, natPort, false}, // RTCP never latches
			{attacker, after, true, reject, natPort, false},
		}},
		{"stray RTCP never latches or learns", StreamConfig{Peer: sdp}, []step{
			{sdp, in, true, accept, sdp, false},
			{natPort, in, true, accept, sdp, false},
			{attacker, in, true, reject, sdp, false},
			{attacker, after, true, reject, sdp, false},
			{sdp, after, false, accept, sdp, true},
		}},
		{"RTCP port: RTCP latches", StreamConfig{Peer: sdp, RTCP: true}, []step{
			{sdp, in, true, accept, sdp, true},
			{attacker, in, true, reject, sdp, true},
		}},
		{"media handover follows new source", StreamConfig{Peer: sdp, MediaHandover: true}, []step{
			{sdp, in, false, accept, sdp, true},
			{attacker, in, false, accept, attacker, true},
			{other, after, false, accept, other, true},
			{sdp, after, true, reject, other, true}, // stray RTCP does not take over
		}},
		{"handover after window with candidate", StreamConfig{Peer: sdp, MediaHandover: true}, []step{
			{natPort, in, false, accept, natPort, false},
			{attacker, after, false, accept, attacker, true},
		}},
		{"delayed: latest wins during window", StreamConfig{Peer: sdp, Learning: Delayed}, []step{
			{sdp, in, false, accept, sdp, false},
			{attacker, in, false, reject, sdp, false}, // the latest, not forwarded or sent to
			{natPort, in, false, accept, natPort, false},
			{sdp, after, false, reject, natPort, true},
			{natPort, after, false, accept, natPort, true},
		}},
		{"delayed: an unnamed latest source latches when the window closes", StreamConfig{Peer: sdp, Learning: Delayed}, []step{
			{sdp, in, false, accept, sdp, false},
			{natAddr, in, false, reject, sdp, false},
			{natAddr, after, false, accept, natAddr, true},
		}},
		{"immediate: first packet latches", StreamConfig{Peer: sdp, Learning: Immediate}, []step{
			{attacker, in, true, reject, sdp, false}, // stray RTCP proves nothing
			{natPort, in, true, accept, sdp, false},
			{attacker, in, false, accept, attacker, true},
			{sdp, in, false, reject, attacker, true},
		}},
		{"off: never learns, forwards from the signalled address only", StreamConfig{Peer: sdp, Learning: Off}, []step{
			{attacker, in, false, reject, sdp, false},
			{natPort, in, false, accept, sdp, true},
			{attacker, after, false, reject, sdp, true},
			{natAddr, after, false, reject, sdp, true},
		}},
		{"off + strict: only SDP endpoint", StreamConfig{Peer: sdp, Learning: Off, StrictSource: true}, []step{
			{natPort, in, false, reject, sdp, false},
			{sdp, in, false, accept, sdp, true},
			{attacker, after, false, reject, sdp, true},
		}},
		{"asymmetric: destination stays SDP, source still latched", StreamConfig{Peer: sdp, Asymmetric: true}, []step{
			{natPort, in, false, accept, sdp, false},
			{natPort, after, false, accept, sdp, true},
			{attacker, after, false, reject, sdp, true},
		}},
		{"asymmetric: an unnamed source is not forwarded before it latches", StreamConfig{Peer: sdp, Asymmetric: true}, []step{
			{natAddr, in, false, reject, sdp, false},
			{natAddr, after, false, accept, sdp, true},
		}},
		{"hold: nothing to send to until learned", StreamConfig{Peer: zero}, []step{
			{natAddr, in, false, accept, natAddr, false},
		}},
		{"hold with learning off stays unsendable", StreamConfig{Peer: zero, Learning: Off}, []step{
			{natAddr, in, false, accept, none, true},
		}},
		{"unknown mode acts as heuristic", StreamConfig{Peer: sdp, Learning: LearningMode(42)}, []step{
			{natPort, in, false, accept, natPort, false},
			{sdp, in, false, accept, sdp, true},
		}},
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newConfigState(nil, tc.cfg, window, t0, false)
			for i, s := range tc.steps {
				ns, v := st.next(s.src, 0, !s.rtcp || tc.cfg.RTCP, t0.Add(s.at))
				if v != s.want {
					t.Fatalf("step %d (%s at %v): verdict %v, want %v", i, s.src, s.at, v, s.want)
				}
				gotDest := ns.dest
				if ns.destSA == nil {
					gotDest = netip.AddrPort{}
				}
				if gotDest != s.wantDest {
					t.Fatalf("step %d (%s): destination %v, want %v", i, s.src, gotDest, s.wantDest)
				}
				if ns.latched != s.latched {
					t.Fatalf("step %d (%s): latched %v, want %v", i, s.src, ns.latched, s.latched)
				}
				if (ns.destSA == nil) != !usable(ns.dest) {
					t.Fatalf("step %d: cached sockaddr %v out of step with %v", i, ns.destSA, ns.dest)
				}
				st = ns
			}
		})
	}
}

// TestSteadyStateNoNewState checks that a latched stream's packets do not
// replace the state (which would allocate per packet).
func TestSteadyStateNoNewState(t *testing.T) {
	sdp := netip.MustParseAddrPort("192.0.2.10:4000")
	now := time.Now()
	st := newConfigState(nil, StreamConfig{Peer: sdp}, time.Second, now, false)
	st, _ = st.next(sdp, 0, true, now)
	for _, at := range []time.Duration{0, time.Millisecond, 2 * time.Second} {
		if ns, v := st.next(sdp, 0, true, now.Add(at)); ns != st || v != accept {
			t.Fatalf("at %v: got new state %v / verdict %v, want the same state, accept", at, ns != st, v)
		}
	}
}

func TestReconfigureKeepsLearnedDestination(t *testing.T) {
	sdp := netip.MustParseAddrPort("192.0.2.10:4000")
	nat := netip.MustParseAddrPort("198.51.100.7:31000")
	now := time.Now()
	st := newConfigState(nil, StreamConfig{Peer: sdp}, time.Second, now, false)
	st, _ = st.next(nat, 0, true, now)
	st, _ = st.next(nat, 0, true, now.Add(2*time.Second))
	if !st.latched || st.dest != nat {
		t.Fatalf("before re-offer: latched %v dest %v, want latched to %v", st.latched, st.dest, nat)
	}

	same := newConfigState(st, StreamConfig{Peer: sdp}, time.Second, now, false)
	if same.latched || same.dest != nat {
		t.Errorf("same SDP endpoint: latched %v dest %v, want unlatched, still %v", same.latched, same.dest, nat)
	}
	// The NAT source was proven before the re-INVITE: its packets keep
	// flowing while learning runs again, and it latches after the window.
	if ns, v := same.next(nat, 0, true, now.Add(10*time.Millisecond)); v != accept || ns.dest != nat {
		t.Errorf("proven NAT source after a re-INVITE: verdict %v dest %v, want accept, %v", v, ns.dest, nat)
	} else if again := newConfigState(ns, StreamConfig{Peer: sdp}, time.Second, now, false); !again.proven.IsValid() {
		t.Error("a second re-INVITE inside the window forgot the proven source")
	}
	if _, v := same.next(netip.MustParseAddrPort("203.0.113.66:6666"), 0, true, now.Add(10*time.Millisecond)); v != reject {
		t.Error("an unnamed source is forwarded after a re-INVITE")
	}
	moved := netip.MustParseAddrPort("192.0.2.11:4002")
	changed := newConfigState(st, StreamConfig{Peer: moved}, time.Second, now, false)
	if changed.latched || changed.dest != moved {
		t.Errorf("new SDP endpoint: latched %v dest %v, want unlatched, %v", changed.latched, changed.dest, moved)
	}
	asym := newConfigState(st, StreamConfig{Peer: sdp, Asymmetric: true}, time.Second, now, false)
	if asym.dest != sdp {
		t.Errorf("asymmetric re-offer: dest %v, want SDP %v", asym.dest, sdp)
	}
}

func TestParseLearningMode(t *testing.T) {
	tests := []struct {
		in   string
		want LearningMode
		err  error
	}{
		{"", Heuristic, nil},
		{"heuristic", Heuristic, nil},
		{"delayed", Delayed, nil},
		{"immediate", Immediate, nil},
		{"off", Off, nil},
		{"sometimes", Heuristic, ErrUnknownLearningMode},
	}
	for _, tc := range tests {
		got, err := ParseLearningMode(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseLearningMode(%q) = %v, %v; want %v, %v", tc.in, got, err, tc.want, tc.err)
		}
		if err == nil && got.String() != tc.in && tc.in != "" {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func TestIPv6PeerOnIPv4Socket(t *testing.T) {
	v6 := netip.MustParseAddrPort("[2001:db8::1]:4000")
	if st := newConfigState(nil, StreamConfig{Peer: v6}, time.Second, time.Now(), true); st.destSA != nil {
		t.Errorf("IPv4 socket got destination %v, want none (unreachable family)", st.dest)
	}
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:4000")
	if st := newConfigState(nil, StreamConfig{Peer: mapped}, time.Second, time.Now(), true); st.destSA == nil {
		t.Error("IPv4 socket refused an IPv4-mapped peer")
	}
	if st := newConfigState(nil, StreamConfig{Peer: v6}, time.Second, time.Now(), false); st.dest != v6 {
		t.Errorf("IPv6 socket destination %v, want %v", st.dest, v6)
	}
}
