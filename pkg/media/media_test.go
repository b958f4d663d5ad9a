// SPDX-License-Identifier: Apache-2.0

package media

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

const (
	longWindow  = 10 * time.Second // never expires within a test
	shortWindow = 100 * time.Millisecond
)

func pkt(seq uint16) []byte {
	return rtpPacket(seq, uint32(seq)*160, 0x1234, 8, []byte(fmt.Sprintf("payload-%d", seq)))
}

func TestForwardBothWays(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			e := newTestEngine(t, longWindow)
			c := newCall(t, e, ip, nil, nil)
			var bytesAB, bytesBA uint64
			for i := range uint16(3) {
				p, q := pkt(i), pkt(100+i)
				c.aToB(t, p)
				c.bToA(t, q)
				bytesAB += uint64(len(p))
				bytesBA += uint64(len(q))
			}
			sa := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Out.Packets == 3 })
			sb := waitStats(t, c.rb.s, "rb", func(s StreamStats) bool { return s.Out.Packets == 3 })
			if sa.In.Packets != 3 || sa.In.Bytes != bytesAB || sb.Out.Bytes != bytesAB {
				t.Errorf("A->B: ra in %d pkts/%d B, rb out %d B; want 3/%d/%d", sa.In.Packets, sa.In.Bytes, sb.Out.Bytes, bytesAB, bytesAB)
			}
			if sb.In.Packets != 3 || sb.In.Bytes != bytesBA || sa.Out.Bytes != bytesBA {
				t.Errorf("B->A: rb in %d pkts/%d B, ra out %d B; want 3/%d/%d", sb.In.Packets, sb.In.Bytes, sa.Out.Bytes, bytesBA, bytesBA)
			}
			if !sa.Confirmed || !sb.Confirmed {
				t.Errorf("confirmed ra=%v rb=%v, want both latched on exact SDP match", sa.Confirmed, sb.Confirmed)
			}
			if sa.Endpoint != c.a.addr || sb.Endpoint != c.b.addr {
				t.Errorf("endpoints %v / %v, want %v / %v", sa.Endpoint, sb.Endpoint, c.a.addr, c.b.addr)
			}
			if sa.Dropped != 0 || sb.Dropped != 0 {
				t.Errorf("dropped %d / %d, want 0", sa.Dropped, sb.Dropped)
			}
			if sa.In.LastPacket.IsZero() || sa.Out.LastPacket.IsZero() {
				t.Errorf("last packet times not set: in %v out %v", sa.In.LastPacket, sa.Out.LastPacket)
			}
			if len(sa.SSRCs) != 1 || sa.SSRCs[0].SSRC != 0x1234 || sa.SSRCs[0].Packets != 3 || sa.SSRCs[0].PayloadType != 8 {
				t.Errorf("ra SSRCs %+v, want one SSRC 0x1234 with 3 PCMA packets", sa.SSRCs)
			}
		})
	}
}

func TestRTCPOnSeparatePort(t *testing.T) {
	e := newTestEngine(t, longWindow)
	rtp := newCall(t, e, "127.0.0.1", nil, nil)
	rtcp := newCall(t, e, "127.0.0.1",
		func(c *StreamConfig) { c.RTCP = true }, func(c *StreamConfig) { c.RTCP = true })

	rtp.aToB(t, pkt(1))
	rr := rtcpRR(0x1234)
	rtcp.aToB(t, rr)
	rtcp.bToA(t, rtcpRR(0x9999))
	rtp.bToA(t, pkt(2))
	rtp.b.expectNothing() // the RTCP went to the RTCP socket only

	s := waitStats(t, rtcp.ra.s, "rtcp ra", func(s StreamStats) bool { return s.Out.Packets == 1 })
	if !s.Confirmed {
		t.Error("RTCP port not latched by RTCP from the SDP endpoint")
	}
	if len(s.SSRCs) != 0 {
		t.Errorf("RTCP port has RTP stats %+v, want none", s.SSRCs)
	}
}

func TestRTCPMux(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	rr := rtcpRR(0x1234)
	c.aToB(t, rr)
	if st := c.ra.s.Stats(); st.Confirmed {
		t.Error("stray RTCP latched the RTP/mux port")
	}
	c.aToB(t, pkt(1))
	c.aToB(t, rr)
	c.aToB(t, pkt(2))
	s := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.In.Packets == 4 })
	if !s.Confirmed {
		t.Error("RTP from the SDP endpoint did not latch")
	}
	if len(s.SSRCs) != 1 || s.SSRCs[0].Packets != 2 {
		t.Errorf("SSRCs %+v, want RTP counted only (2 packets)", s.SSRCs)
	}
}

// rtcp-mux towards a party that does not multiplex: A sends RTP and RTCP on
// one port; B has separate RTP and RTCP ports. A's RTCP must leave by the
// relay's RTCP socket facing B, to B's RTCP port; A's RTP by the RTP socket.
func TestRTCPDemux(t *testing.T) {
	e := newTestEngine(t, longWindow)
	a, bRTP, bRTCP := newParty(t, e, "127.0.0.1"), newParty(t, e, "127.0.0.1"), newParty(t, e, "127.0.0.1")
	ra, rbRTP, rbRTCP := attach(t, e, "127.0.0.1"), attach(t, e, "127.0.0.1"), attach(t, e, "127.0.0.1")
	ra.s.Configure(StreamConfig{Sink: rbRTP.s, RTCPSink: rbRTCP.s, Peer: a.addr})
	rbRTP.s.Configure(StreamConfig{Sink: ra.s, Peer: bRTP.addr})
	rbRTCP.s.Configure(StreamConfig{Sink: ra.s, Peer: bRTCP.addr, RTCP: true})

	a.send(ra.addr(), pkt(1))
	bRTP.expect(pkt(1), rbRTP.addr())
	rr := rtcpRR(0x1234)
	a.send(ra.addr(), rr)
	bRTCP.expect(rr, rbRTCP.addr())
	bRTP.expectNothing()
	// B's RTCP comes back muxed on A's single port.
	back := rtcpRR(0x9999)
	bRTCP.send(rbRTCP.addr(), back)
	a.expect(back, ra.addr())
}

func TestSeveralStreams(t *testing.T) {
	e := newTestEngine(t, longWindow)
	calls := make([]*call, 6)
	for i := range calls {
		calls[i] = newCall(t, e, "127.0.0.1", nil, nil)
	}
	for round := range uint16(3) {
		for i, c := range calls {
			c.a.send(c.ra.addr(), pkt(uint16(i)*100+round))
			c.b.send(c.rb.addr(), pkt(uint16(i)*100+50+round))
		}
		for i, c := range calls {
			c.b.expect(pkt(uint16(i)*100+round), c.rb.addr())
			c.a.expect(pkt(uint16(i)*100+50+round), c.ra.addr())
		}
	}
}

func TestNATLearning(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			e := newTestEngine(t, shortWindow)
			sdpA := newParty(t, e, ip) // what A's SDP says; A really sends from c.a
			c := newCall(t, e, ip, nil, nil)
			c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: sdpA.addr})

			c.aToB(t, pkt(1))
			c.bToA(t, pkt(2))
			sdpA.expectNothing()
			st := c.ra.s.Stats()
			if st.Endpoint != c.a.addr || st.Confirmed {
				t.Fatalf("in window: endpoint %v confirmed %v, want learned %v, not yet latched", st.Endpoint, st.Confirmed, c.a.addr)
			}
			pastWindow(t, e)
			c.aToB(t, pkt(3))
			if st := c.ra.s.Stats(); !st.Confirmed || st.Endpoint != c.a.addr {
				t.Fatalf("after window: endpoint %v confirmed %v, want latched to %v", st.Endpoint, st.Confirmed, c.a.addr)
			}
			// The SDP endpoint itself is now a stranger.
			sdpA.send(c.ra.addr(), pkt(4))
			c.b.expectNothing()
			c.bToA(t, pkt(5))
		})
	}
}

func TestHijackAttempts(t *testing.T) {
	type env struct {
		e        *Engine
		c        *call
		attacker *party
	}
	x := []byte("attacker payload, not RTP")
	tests := []struct {
		name     string
		window   time.Duration
		nat      bool // A's SDP names another port than A sends from
		strict   bool
		handover bool
		run      func(t *testing.T, v env)
	}{
		{"before peer inside window", longWindow, false, false, false, func(t *testing.T, v env) {
			// Not the signalled address, and nothing latched yet: neither
			// forwarded nor answered.
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.b.send(v.c.rb.addr(), pkt(0))
			v.c.a.expect(pkt(0), v.c.ra.addr())
			v.attacker.expectNothing()
			v.c.aToB(t, pkt(1)) // exact SDP match latches
			v.c.bToA(t, pkt(2))
			v.attacker.expectNothing()
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
		}},
		{"before peer inside window strict", longWindow, false, true, false, func(t *testing.T, v env) {
			// Not the signalled address: refused even before the peer spoke.
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.aToB(t, pkt(1))
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
		}},
		{"after peer inside window", longWindow, false, false, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1))
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
			v.attacker.expectNothing()
		}},
		{"after peer outside window", shortWindow, false, false, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1))
			pastWindow(t, v.e)
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
		}},
		{"after peer outside window strict", shortWindow, false, true, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1))
			pastWindow(t, v.e)
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
		}},
		{"NAT peer, attacker first after window", shortWindow, true, false, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1)) // same address, other port: best candidate
			pastWindow(t, v.e)
			v.attacker.send(v.c.ra.addr(), x) // latches the candidate, not itself
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
			v.c.aToB(t, pkt(3))
		}},
		{"NAT peer, attacker inside window", longWindow, true, false, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1)) // the signalled address, another port: forwarded
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing() // another address, before anything latched
			v.c.bToA(t, pkt(2))   // the destination stays A
			v.attacker.expectNothing()
		}},
		{"NAT peer, attacker inside window strict", longWindow, true, true, false, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1))
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expectNothing()
			v.c.bToA(t, pkt(2))
		}},
		{"media handover lets the new source take over", longWindow, false, false, true, func(t *testing.T, v env) {
			v.c.aToB(t, pkt(1))
			v.attacker.send(v.c.ra.addr(), x)
			v.c.b.expect(x, v.c.rb.addr())
			v.c.b.send(v.c.rb.addr(), pkt(2))
			v.attacker.expect(pkt(2), v.c.ra.addr())
			v.c.a.expectNothing()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, tc.window)
			c := newCall(t, e, "127.0.0.1", nil, nil)
			peer := c.a.addr
			if tc.nat {
				peer = newParty(t, e, "127.0.0.1").addr
			}
			c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: peer, StrictSource: tc.strict, MediaHandover: tc.handover})
			attacker := newParty(t, e, "127.0.0.3")
			tc.run(t, env{e: e, c: c, attacker: attacker})
			if !tc.handover {
				if st := c.ra.s.Stats(); st.Endpoint != c.a.addr {
					t.Errorf("endpoint %v at the end, want the real peer %v", st.Endpoint, c.a.addr)
				}
			}
		})
	}
}

func TestRejectedCounted(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	attacker := newParty(t, e, "127.0.0.3")
	for range 3 {
		attacker.send(c.ra.addr(), pkt(9))
	}
	st := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Rejected == 3 })
	if st.Dropped != 3 || st.In.Packets != 1 {
		t.Errorf("dropped %d, in %d; want 3 dropped, rejected packets not counted as received (in 1)", st.Dropped, st.In.Packets)
	}
}

func TestReconfigureNewPeer(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	c.bToA(t, pkt(2))

	a2 := newParty(t, e, "127.0.0.1") // A moved (re-INVITE with a new c=/m=)
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: a2.addr})
	c.b.send(c.rb.addr(), pkt(3))
	a2.expect(pkt(3), c.ra.addr()) // straight to the new SDP endpoint
	c.a.expectNothing()

	a2.send(c.ra.addr(), pkt(4))
	c.b.expect(pkt(4), c.rb.addr())
	c.a.send(c.ra.addr(), pkt(5)) // the old endpoint is now a stranger
	c.b.expectNothing()
	if st := c.rb.s.Stats(); !st.Confirmed || st.Endpoint != c.b.addr {
		t.Errorf("other direction: confirmed %v endpoint %v, want still latched to %v", st.Confirmed, st.Endpoint, c.b.addr)
	}
	c.b.send(c.rb.addr(), pkt(6))
	a2.expect(pkt(6), c.ra.addr())
}

func TestHoldAndResume(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.bToA(t, pkt(1))

	hold := netip.AddrPortFrom(netip.IPv4Unspecified(), c.a.addr.Port())
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: hold})
	if st := c.ra.s.Stats(); st.Endpoint.IsValid() {
		t.Errorf("on hold: endpoint %v, want none", st.Endpoint)
	}
	before := c.rb.s.Stats().Dropped
	c.b.send(c.rb.addr(), pkt(2))
	c.a.expectNothing()
	waitStats(t, c.rb.s, "rb", func(s StreamStats) bool { return s.Dropped == before+1 })

	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: c.a.addr})
	c.bToA(t, pkt(3))

	// On hold, but the held party still sends: its source is learned.
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: hold})
	c.aToB(t, pkt(4))
	c.bToA(t, pkt(5))
}

func TestLearningModesOverSockets(t *testing.T) {
	t.Run("off sends to SDP endpoint", func(t *testing.T) {
		e := newTestEngine(t, longWindow)
		c := newCall(t, e, "127.0.0.1", nil, nil)
		sdpA := newParty(t, e, "127.0.0.1")
		c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: sdpA.addr, Learning: Off})
		c.aToB(t, pkt(1))
		c.b.send(c.rb.addr(), pkt(2))
		sdpA.expect(pkt(2), c.ra.addr())
		c.a.expectNothing()
	})
	t.Run("off strict accepts SDP endpoint only", func(t *testing.T) {
		e := newTestEngine(t, longWindow)
		c := newCall(t, e, "127.0.0.1", nil, nil)
		sdpA := newParty(t, e, "127.0.0.1")
		c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: sdpA.addr, Learning: Off, StrictSource: true})
		c.a.send(c.ra.addr(), pkt(1))
		c.b.expectNothing()
		sdpA.send(c.ra.addr(), pkt(2))
		c.b.expect(pkt(2), c.rb.addr())
	})
	t.Run("immediate latches the first source", func(t *testing.T) {
		e := newTestEngine(t, longWindow)
		c := newCall(t, e, "127.0.0.1", func(s *StreamConfig) { s.Learning = Immediate }, nil)
		first := newParty(t, e, "127.0.0.3")
		first.send(c.ra.addr(), pkt(1))
		c.b.expect(pkt(1), c.rb.addr())
		c.a.send(c.ra.addr(), pkt(2)) // even the SDP endpoint is refused now
		c.b.expectNothing()
		c.b.send(c.rb.addr(), pkt(3))
		first.expect(pkt(3), c.ra.addr())
	})
	t.Run("delayed: latest source in window, latched after", func(t *testing.T) {
		e := newTestEngine(t, shortWindow)
		c := newCall(t, e, "127.0.0.1", func(s *StreamConfig) { s.Learning = Delayed }, nil)
		later := newParty(t, e, "127.0.0.1")
		c.aToB(t, pkt(1))
		later.send(c.ra.addr(), pkt(2))
		c.b.expect(pkt(2), c.rb.addr())
		c.b.send(c.rb.addr(), pkt(3))
		later.expect(pkt(3), c.ra.addr())
		pastWindow(t, e)
		c.a.send(c.ra.addr(), pkt(4)) // latches "later", is itself refused
		c.b.expectNothing()
		if st := c.ra.s.Stats(); !st.Confirmed || st.Endpoint != later.addr {
			t.Fatalf("confirmed %v endpoint %v, want latched to %v", st.Confirmed, st.Endpoint, later.addr)
		}
		later.send(c.ra.addr(), pkt(5))
		c.b.expect(pkt(5), c.rb.addr())
	})
}

func TestAsymmetric(t *testing.T) {
	e := newTestEngine(t, shortWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	sdpA := newParty(t, e, "127.0.0.1")
	c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: sdpA.addr, Asymmetric: true})
	c.aToB(t, pkt(1))
	c.b.send(c.rb.addr(), pkt(2))
	sdpA.expect(pkt(2), c.ra.addr()) // not to the source A sends from
	c.a.expectNothing()
	pastWindow(t, e)
	c.aToB(t, pkt(3)) // latches A's source for the checks
	if st := c.ra.s.Stats(); !st.Confirmed || st.Endpoint != sdpA.addr {
		t.Fatalf("confirmed %v endpoint %v, want latched with endpoint %v", st.Confirmed, st.Endpoint, sdpA.addr)
	}
	newParty(t, e, "127.0.0.3").send(c.ra.addr(), pkt(4))
	c.b.expectNothing()
}

func TestSetTOS(t *testing.T) {
	tests := []struct {
		ip              string
		level, opt, tos int
	}{
		{"127.0.0.1", unix.IPPROTO_IP, unix.IP_TOS, 0xb8},
		{"::1", unix.IPPROTO_IPV6, unix.IPV6_TCLASS, 0x88},
	}
	for _, tc := range tests {
		t.Run(tc.ip, func(t *testing.T) {
			e := newTestEngine(t, longWindow)
			l := attach(t, e, tc.ip)
			if err := l.s.SetTOS(tc.tos); err != nil {
				t.Fatalf("SetTOS: %v", err)
			}
			// The worker applies it: poll until it has, or fail.
			deadline := time.Now().Add(recvTimeout)
			for {
				got, gerr := unix.GetsockoptInt(l.fd, tc.level, tc.opt)
				if gerr == nil && got == tc.tos {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("getsockopt = %#x, %v; want %#x", got, gerr, tc.tos)
				}
				time.Sleep(time.Millisecond)
			}
			for _, bad := range []int{-1, 256} {
				if err := l.s.SetTOS(bad); !errors.Is(err, ErrBadTOS) {
					t.Errorf("SetTOS(%d) = %v, want ErrBadTOS", bad, err)
				}
			}
		})
	}
}

func TestStatsOverSockets(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	// 1 2 3 _ 5 5 7 6: one lost (4), one duplicate, one reordered.
	for _, seq := range []uint16{1, 2, 3, 5, 5, 7, 6} {
		c.aToB(t, rtpPacket(seq, uint32(seq)*160, 0xaaaa, 0, []byte("x")))
	}
	// A burst whose timestamps step by one second at 8 kHz: each packet's
	// transit differs from the previous by ~8000 units, so jitter follows
	// J_k = 8000 (1 - (15/16)^k) whatever the scheduling noise (a few units).
	const burst = 20
	for i := range uint16(burst) {
		c.a.send(c.ra.addr(), rtpPacket(i, uint32(i)*8000, 0xbbbb, 0, nil))
	}
	for i := range uint16(burst) {
		c.b.expect(rtpPacket(i, uint32(i)*8000, 0xbbbb, 0, nil), c.rb.addr())
	}
	st := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.In.Packets == 7+burst })
	bySSRC := map[uint32]SSRCStats{}
	for _, s := range st.SSRCs {
		bySSRC[s.SSRC] = s
	}
	a := bySSRC[0xaaaa]
	if a.Packets != 7 || a.Lost != 1 || a.Duplicates != 1 || a.Reordered != 1 || a.HighestSeq != 7 {
		t.Errorf("SSRC aaaa: %+v; want 7 packets, lost 1, 1 duplicate, 1 reordered, highest 7", a)
	}
	b := bySSRC[0xbbbb]
	wantMs := 1000 * (1 - math.Pow(15.0/16, burst-1))
	if math.Abs(b.JitterMs-wantMs) > 0.03*wantMs || b.Lost != 0 {
		t.Errorf("SSRC bbbb: jitter %.1f ms, lost %d; want %.1f ms ±3%%, lost 0", b.JitterMs, b.Lost, wantMs)
	}
}

func TestDetach(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	c.ra.s.Detach()
	c.ra.s.Detach() // idempotent
	c.a.send(c.ra.addr(), pkt(2))
	c.b.expectNothing()
	if st := c.ra.s.Stats(); st.In.Packets != 1 {
		t.Errorf("detached stream counted %d packets, want 1 (nothing after Detach)", st.In.Packets)
	}
	// B's packets have no live sink socket any more.
	c.b.send(c.rb.addr(), pkt(3))
	c.a.expectNothing()
	waitStats(t, c.rb.s, "rb", func(s StreamStats) bool { return s.Dropped == 1 })
	// The worker closes the socket and reports it; the other stream must
	// not mind.
	c.ra.waitClosed(t)
	if _, err := unix.GetsockoptInt(c.ra.fd, unix.SOL_SOCKET, unix.SO_TYPE); !errors.Is(err, unix.EBADF) {
		t.Errorf("socket still open after the engine reported it closed: %v", err)
	}
	c.b.send(c.rb.addr(), pkt(4))
	waitStats(t, c.rb.s, "rb", func(s StreamStats) bool { return s.Dropped == 2 })
}

func TestGarbageForwardedFromLatchedPeer(t *testing.T) {
	e := newTestEngine(t, longWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	garbage := [][]byte{
		{},
		{0xff},
		{0x80, 0x00, 0x00},
		[]byte("hello, not RTP at all"),
		{0x8f, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2},  // 15 CSRCs claimed, none there
		{0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 99}, // padding longer than packet
		{0x80, 200, 0xff, 0xff, 1, 2, 3, 4},               // RTCP length overrun
	}
	for _, g := range garbage {
		c.aToB(t, g)
	}
	st := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.In.Packets == uint64(1+len(garbage)) })
	if len(st.SSRCs) != 1 || st.SSRCs[0].Packets != 1 {
		t.Errorf("SSRCs %+v, want only the one valid RTP packet counted", st.SSRCs)
	}
	if st.Dropped != 0 {
		t.Errorf("dropped %d, want 0", st.Dropped)
	}
	stranger := newParty(t, e, "127.0.0.3")
	stranger.send(c.ra.addr(), garbage[3])
	c.b.expectNothing()
}

func TestDropsWithoutSinkOrEndpoint(t *testing.T) {
	e := newTestEngine(t, longWindow)
	t.Run("never configured", func(t *testing.T) {
		l := attach(t, e, "127.0.0.1")
		a := newParty(t, e, "127.0.0.1")
		a.send(l.addr(), pkt(1))
		st := waitStats(t, l.s, "l", func(s StreamStats) bool { return s.Dropped == 1 })
		if st.In.Packets != 1 || st.Confirmed {
			t.Errorf("in %d confirmed %v, want counted (1), not latched", st.In.Packets, st.Confirmed)
		}
	})
	t.Run("nil sink", func(t *testing.T) {
		c := newCall(t, e, "127.0.0.1", func(s *StreamConfig) { s.Sink = nil }, nil)
		c.a.send(c.ra.addr(), pkt(1))
		c.b.expectNothing()
		waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Dropped == 1 && s.In.Packets == 1 })
	})
	t.Run("sink party on hold", func(t *testing.T) {
		c := newCall(t, e, "127.0.0.1", nil, func(s *StreamConfig) { s.Peer = netip.MustParseAddrPort("0.0.0.0:0") })
		c.a.send(c.ra.addr(), pkt(1))
		c.b.expectNothing()
		waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Dropped == 1 })
	})
}

func TestTruncatedDropped(t *testing.T) {
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, MaxPacketSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	c.a.send(c.ra.addr(), rtpPacket(2, 320, 0x1234, 8, make([]byte, 100)))
	c.b.expectNothing()
	st := waitStats(t, c.ra.s, "ra", func(s StreamStats) bool { return s.Dropped == 1 })
	if st.In.Errors != 1 {
		t.Errorf("in errors %d, want 1 for the oversize datagram", st.In.Errors)
	}
}

func TestEngineLifecycle(t *testing.T) {
	for _, cfg := range []Config{{Workers: -1}, {LearningWindow: -time.Second}, {BatchSize: 5000}, {MaxPacketSize: 70000}} {
		if _, err := NewEngine(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewEngine(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
	e, err := NewEngine(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Attach(Group{}, Socket{FD: -1}, nil); !errors.Is(err, ErrNilConn) {
		t.Errorf("Attach(no socket) = %v, want ErrNilConn", err)
	}
	closed := bindSocket(t, "127.0.0.1")
	_ = unix.Close(closed.FD)
	if _, err := e.Attach(Group{}, closed, nil); err == nil {
		t.Error("Attach(closed socket) succeeded")
	}
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	c.a.send(c.ra.addr(), pkt(2))
	c.b.expectNothing()
	c.ra.s.Detach() // after Close: returns at once
	late := bindSocket(t, "127.0.0.1")
	defer unix.Close(late.FD)
	if _, err := e.Attach(Group{}, late, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close = %v, want ErrClosed", err)
	}
}

func TestManyIdleSockets(t *testing.T) {
	// Idle sockets cost no buffers; a busy call among many idle ones works.
	e := newTestEngine(t, longWindow)
	for range 500 {
		attach(t, e, "127.0.0.1")
	}
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	c.bToA(t, pkt(2))
}

func TestConcurrentConfigureAndTraffic(t *testing.T) {
	// Race detector food: Configure, Stats and forwarding at once.
	e := newTestEngine(t, shortWindow)
	c := newCall(t, e, "127.0.0.1", nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c.ra.s.Configure(StreamConfig{Sink: c.rb.s, Peer: c.a.addr, StrictSource: i%2 == 0})
			_ = c.ra.s.Stats()
			_ = c.rb.s.Stats()
		}
	}()
	for i := range uint16(200) {
		c.a.send(c.ra.addr(), pkt(i))
		c.b.send(c.rb.addr(), pkt(i))
	}
	<-done
	c.aToB(t, drain(t, c.b, pkt(1000)))
}

// drain empties p's socket and returns next, so a test can continue after a
// burst whose exact delivery it does not check.
func drain(t *testing.T, p *party, next []byte) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	for {
		_ = p.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := p.conn.ReadFromUDPAddrPort(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return next
			}
			t.Fatalf("drain: %v", err)
		}
	}
}

// TestBurstBeyondDrainBound: sockets are watched edge-triggered and one
// readiness event reads at most maxDrainRounds batches, so a burst that
// leaves datagrams queued after the last arrival must still be read — by
// the pass after, not by a next datagram that may never come.
func TestBurstBeyondDrainBound(t *testing.T) {
	clk := &testClock{now: time.Now()}
	e, err := NewEngine(Config{Workers: 1, BatchSize: 1, LearningWindow: longWindow, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	c := newCall(t, e, "127.0.0.1", nil, nil)
	const burst = 64
	msgs := make([]ipv4.Message, burst)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{pkt(uint16(i))}, Addr: net.UDPAddrFromAddrPort(c.ra.addr())}
	}
	pc := ipv4.NewPacketConn(c.a.conn)
	for sent := 0; sent < burst; {
		n, err := pc.WriteBatch(msgs[sent:], 0)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
	}
	for i := range burst {
		c.b.expect(pkt(uint16(i)), c.rb.addr())
	}
}
