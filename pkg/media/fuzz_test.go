// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"math"
	"net/netip"
	"testing"
	"time"
)

// FuzzClassify feeds arbitrary datagrams to the classifier, the RTP header
// parser, the per-SSRC statistics and the whole per-packet path of a latched
// stream: nothing may panic, the parser must stay within the datagram, and
// whatever the bytes, a packet from the latched peer is forwarded.
func FuzzClassify(f *testing.F) {
	f.Add(rtpPacket(1, 160, 0x1234, 8, make([]byte, 160)))
	f.Add(rtcpRR(7))
	f.Add([]byte{})
	peer := netip.MustParseAddrPort("192.0.2.1:4000")
	f.Fuzz(func(t *testing.T, b []byte) {
		kind := classify(b)
		h, ok := parseRTP(b)
		if ok {
			if h.hdrLen < rtpHeaderLen || h.hdrLen+h.padLen > len(b) {
				t.Fatalf("header %d + padding %d outside a %d-byte datagram", h.hdrLen, h.padLen, len(b))
			}
			if h.seq != binary.BigEndian.Uint16(b[2:]) || h.ts != binary.BigEndian.Uint32(b[4:]) ||
				h.ssrc != binary.BigEndian.Uint32(b[8:]) || h.pt != b[1]&0x7f {
				t.Fatalf("parsed %+v does not match the bytes % x", h, b[:12])
			}
		}
		switch kind {
		case KindRTP:
			if !ok || isRTCPType(b) {
				t.Fatalf("classified RTP but parseRTP ok=%v, RTCP type=%v", ok, isRTCPType(b))
			}
		case KindRTCP:
			if !isRTCPType(b) {
				t.Fatal("classified RTCP without an RTCP packet type")
			}
		}

		a := newStream(netip.MustParseAddrPort("198.51.100.1:30000"))
		sink := newStream(netip.MustParseAddrPort("198.51.100.1:30002"))
		a.Configure(StreamConfig{Sink: sink, Peer: peer})
		sink.Configure(StreamConfig{Sink: a, Peer: netip.MustParseAddrPort("192.0.2.2:5000")})
		now := time.Now()
		a.receive(rtpPacket(1, 0, 1, 0, nil), peer, 0, now.UnixNano(), 0, now) // latch
		// Three times, to reach the duplicate and jitter paths.
		for i := range 3 {
			to, _ := a.receive(b, peer, 0, now.UnixNano(), int64(i)*1e6, now)
			if to != sink {
				t.Fatalf("datagram % x from the latched peer not forwarded", head(b))
			}
		}
		st := a.Stats()
		if st.In.Packets != 4 || st.Dropped != 0 {
			t.Fatalf("in %d dropped %d, want 4 and 0", st.In.Packets, st.Dropped)
		}
	})
}

// fuzzBytes hands out the fuzzer's bytes one field at a time, zeros when
// they run out.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) more() bool { return len(f.b) > 0 }

func (f *fuzzBytes) u8() uint8 {
	if len(f.b) == 0 {
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

func (f *fuzzBytes) u16() uint16 { return uint16(f.u8())<<8 | uint16(f.u8()) }
func (f *fuzzBytes) u32() uint32 { return uint32(f.u16())<<16 | uint32(f.u16()) }

// FuzzLearning drives the learning state machine with packets from sources
// an attacker picks, at times it picks, across re-INVITEs and handler
// latches, under every mode and flag. Whatever happens:
//   - until a source has latched, nothing from an address the signalling did
//     not name is forwarded, and nothing is sent to such an address (the
//     rule of CVE-2025-53399's fix), unless the source proves itself by the
//     mode's rule in that very packet;
//   - with strict-source a packet is forwarded only from the signalled
//     address or the latched source;
//   - a latched source moves only by media-handover, a handler's latch or a
//     re-INVITE;
//   - the cached sockaddr always matches the destination.
func FuzzLearning(f *testing.F) {
	f.Add([]byte{0, 0, 3, 10, 0, 0, 10, 2, 200, 0})
	f.Add([]byte{1, 1, 3, 10, 1, 2, 10, 0, 255, 0, 5, 0, 0})
	f.Add([]byte{2, 4, 0, 1, 0, 3, 1, 0, 2, 250, 0})
	f.Add([]byte{3, 8, 1, 1, 2, 2, 3, 3, 4, 4})
	sdp := netip.MustParseAddrPort("192.0.2.10:4000")
	sources := []netip.AddrPort{
		sdp,
		netip.MustParseAddrPort("192.0.2.10:5555"),   // the signalled address, another port (NAT)
		netip.MustParseAddrPort("198.51.100.7:4000"), // another address, the SDP port
		netip.MustParseAddrPort("203.0.113.66:6666"), // an attacker
		netip.MustParseAddrPort("[::ffff:192.0.2.10]:4000"),
		netip.MustParseAddrPort("[2001:db8::1]:4000"),
		netip.MustParseAddrPort("192.0.2.11:4000"), // a re-INVITE's new address
	}
	peers := []netip.AddrPort{sdp, netip.MustParseAddrPort("0.0.0.0:4000"), netip.MustParseAddrPort("192.0.2.11:4000"), {}}
	const window = time.Second
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzBytes{b: data}
		t0 := time.Unix(1_700_000_000, 0)
		cfgOf := func() StreamConfig {
			flags := in.u8()
			return StreamConfig{
				Peer:          peers[int(in.u8())%len(peers)],
				Learning:      LearningMode(flags & 7),
				StrictSource:  flags&8 != 0,
				Asymmetric:    flags&16 != 0,
				MediaHandover: flags&32 != 0,
				RTCP:          flags&64 != 0,
			}
		}
		cfg := cfgOf()
		now := t0
		st := newConfigState(nil, cfg, window, now, in.u8()&1 == 0)
		for steps := 0; in.more() && steps < 256; steps++ {
			op := in.u8()
			now = now.Add(time.Duration(in.u8()) * 20 * time.Millisecond)
			src := sources[int(op>>3)%len(sources)]
			switch op & 7 {
			case 6: // a re-INVITE
				cfg = cfgOf()
				st = newConfigState(st, cfg, window, now, false)
				continue
			case 7: // a handler proved src (an ICE check, SRTP)
				st = st.learn(src, 0, rankOf(src, st.cfg.peer), true)
				continue
			}
			canLatch := op&1 == 0 || cfg.RTCP
			prev := st
			ns, v := st.next(src, 0, canLatch, now)
			named := prev.signalled(src)
			proved := ns.latched && sameEndpoint(ns.src, src)
			if v == accept && !named && !proved && prev.cfg.configured {
				t.Fatalf("step %d: forwarded a packet from unsignalled %v before it proved itself (mode %v, peer %v, prev %+v, next %+v)",
					steps, src, cfg.Learning, prev.cfg.peer, prev, ns)
			}
			if !ns.latched && ns.destSA != nil && ns.cfg.peer.Addr().IsValid() && !ns.cfg.peer.Addr().IsUnspecified() {
				d := plainAddr(ns.dest.Addr())
				if d != ns.cfg.peer.Addr() && !(ns.proven.IsValid() && sameEndpoint(ns.dest, ns.proven)) && ns.dest != prev.dest {
					t.Fatalf("step %d: unlatched stream now sends to %v, neither signalled (%v) nor proven", steps, ns.dest, ns.cfg.peer)
				}
			}
			if v == accept && ns.cfg.strict && ns.cfg.mode != Off && plainAddr(src.Addr()) != ns.cfg.peer.Addr() &&
				!(ns.latched && sameEndpoint(src, ns.src)) && ns.cfg.peer.Addr().IsValid() && !ns.cfg.peer.Addr().IsUnspecified() {
				t.Fatalf("step %d: strict-source forwarded %v (peer %v, latched %v)", steps, src, ns.cfg.peer, ns.src)
			}
			if prev.latched && ns.latched && ns.src != prev.src && !ns.cfg.handover {
				t.Fatalf("step %d: the latched source moved from %v to %v without media-handover", steps, prev.src, ns.src)
			}
			if (ns.destSA == nil) != !usable(ns.dest) && ns.destSA != nil {
				t.Fatalf("step %d: sockaddr %v out of step with %v", steps, ns.destSA, ns.dest)
			}
			st = ns
		}
	})
}

// FuzzSSRCStats feeds the per-SSRC statistics RTP headers an attacker
// picks (sources, sequence numbers, timestamps, payload types, arrival
// times): the figures stay within what the packets can mean, and every
// packet is counted while no SSRC was evicted.
func FuzzSSRCStats(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 0, 160, 0, 0, 20, 0, 0, 2, 0, 0, 1, 64, 0, 0, 20})
	f.Add([]byte{1, 255, 255, 0, 0, 0, 0, 8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 8, 255, 255})
	ssrcs := []uint32{0x1234, 0xdeadbeef, 0, 0xffffffff, 7, 8}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fuzzBytes{b: data}
		var tab ssrcTable
		rates := []ptRate{{96, 48000}, {97, 0}, {98, 1}}
		var arr int64
		counted := map[uint32]uint64{}
		for steps := 0; in.more() && steps < 4096; steps++ {
			sel := in.u8()
			h := rtpHeader{ssrc: ssrcs[int(sel)%len(ssrcs)], seq: in.u16(), ts: in.u32(), pt: in.u8() & 0x7f}
			if sel&0x80 != 0 {
				arr += int64(in.u32()) << 16 // far jumps, backwards too
			} else {
				arr += int64(in.u16()) * 1e5
			}
			tab.update(h, clockRate(rates, h.pt), arr)
			counted[h.ssrc]++
		}
		snap := tab.snapshot()
		if len(snap) > maxSSRCs {
			t.Fatalf("%d SSRCs reported, at most %d", len(snap), maxSSRCs)
		}
		for _, s := range snap {
			if s.Packets == 0 || s.Duplicates > s.Packets || s.Reordered > s.Packets {
				t.Fatalf("%08x: %d packets, %d duplicates, %d reordered", s.SSRC, s.Packets, s.Duplicates, s.Reordered)
			}
			if s.Lost < -int64(s.Packets) || s.Lost > int64(s.Packets)*maxDropout {
				t.Fatalf("%08x: %d lost of %d packets", s.SSRC, s.Lost, s.Packets)
			}
			for _, x := range []float64{s.Jitter, s.JitterMs, s.MOS} {
				if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
					t.Fatalf("%08x: jitter %v, %v ms, MOS %v", s.SSRC, s.Jitter, s.JitterMs, s.MOS)
				}
			}
			if s.MOS < 1 || s.MOS > 4.5 {
				t.Fatalf("%08x: MOS %v outside 1..4.5", s.SSRC, s.MOS)
			}
			if len(counted) <= maxSSRCs && s.Packets != counted[s.SSRC] {
				t.Fatalf("%08x: %d packets counted, %d sent", s.SSRC, s.Packets, counted[s.SSRC])
			}
		}
	})
}

// FuzzRTCPReports feeds compound RTCP from both parties of a stream pair:
// sender reports one way, receiver reports the other, with blocks an
// attacker writes. The reports kept stay bounded and their figures sane.
func FuzzRTCPReports(f *testing.F) {
	sr := []byte{0x81, 200, 0, 12, 0, 0, 0, 1, 0xe0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 160,
		0, 0, 0, 2, 10, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 20, 0, 0x10, 0, 0, 0, 0, 0x80, 0}
	rr := []byte{0x81, 201, 0, 7, 0, 0, 0, 2, 0, 0, 0, 1, 26, 0, 0, 9, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 0x40, 0}
	f.Add(sr, rr)
	f.Add(rr, sr)
	f.Add([]byte{}, append(append([]byte{}, rr...), rr...))
	f.Fuzz(func(t *testing.T, fromA, fromB []byte) {
		a := newStream(netip.MustParseAddrPort("198.51.100.1:30000"))
		b := newStream(netip.MustParseAddrPort("198.51.100.1:30002"))
		a.Configure(StreamConfig{Sink: b, Peer: netip.MustParseAddrPort("192.0.2.1:4000")})
		b.Configure(StreamConfig{Sink: a, Peer: netip.MustParseAddrPort("192.0.2.2:5000")})
		mono, wall := int64(1e12), time.Now().UnixNano()
		for i := range 3 {
			a.readRTCP(fromA, mono+int64(i)*1e9, wall, a.state.Load().cfg)
			b.readRTCP(fromB, mono+int64(i)*1e9+5e8, wall, b.state.Load().cfg)
		}
		for _, s := range []*Stream{a, b} {
			st := s.Stats()
			if len(st.Reports) > maxReports {
				t.Fatalf("%d reports kept, at most %d", len(st.Reports), maxReports)
			}
			for _, r := range st.Reports {
				if r.FractionLost < 0 || r.FractionLost >= 1 || r.RTTLegMs < 0 || r.JitterMs < 0 ||
					math.IsNaN(r.JitterMs) || math.IsInf(r.JitterMs, 0) {
					t.Fatalf("report %+v", r)
				}
				if r.Samples > 0 && (r.MOS < 1 || r.MOS > 4.5 || r.MOSMin > r.MOSAvg+1e-9 || r.MOSAvg > r.MOSMax+1e-9) {
					t.Fatalf("MOS of report %+v", r)
				}
			}
		}
	})
}
