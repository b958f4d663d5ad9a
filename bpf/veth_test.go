// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func loadBareTest(t *testing.T) *bareObjects {
	t.Helper()
	var objs bareObjects
	if err := loadBareObjects(&objs, nil); err != nil {
		t.Fatalf("load test programs: %+v", err)
	}
	t.Cleanup(func() { objs.Close() })
	return &objs
}

// attachPass gives a veth end an XDP_PASS program: a veth drops frames
// redirected or XDP_TX'd to its peer unless the peer has XDP (or GRO).
func attachPass(t *testing.T, ns netns.NsHandle, bare *bareObjects, l netlink.Link) {
	t.Helper()
	inNetNS(t, ns, func() {
		xl, err := link.AttachXDP(link.XDPOptions{Program: bare.BarePass, Interface: l.Attrs().Index, Flags: link.XDPDriverMode})
		if err != nil {
			t.Fatalf("attach xdp_pass to %s: %v", l.Attrs().Name, err)
		}
		t.Cleanup(func() { xl.Close() })
	})
}

// TestVeth forwards real UDP through a relay namespace:
//
//	gen (g0) <-> (r0) relay (r1) <-> (s0) sink
//
// with the program attached natively to r0 and r1. A socket in gen sends
// RTP to the relay's address; it arrives rewritten at a socket in sink (or,
// with XDP_TX, back in gen), with valid checksums, the relay's source
// address and port, TOS 184 and TTL 64, while the relay's own socket on
// that port sees nothing.
func TestVeth(t *testing.T) {
	// The relay's receiving addresses are planes; the IPv6 one is not, so
	// that both lookups run on real traffic.
	d := openTest(t, Options{LocalAddrs: []netip.Addr{netip.MustParseAddr("10.0.1.1")}})
	bare := loadBareTest(t)
	gen, relay, sink := newNetNS(t), newNetNS(t), newNetNS(t)
	g0, r0 := vethPair(t, gen, "g0", []string{"10.0.1.2/24", "fd00:1::2/64"}, relay, "r0", []string{"10.0.1.1/24", "fd00:1::1/64"})
	r1, s0 := vethPair(t, relay, "r1", []string{"10.0.2.1/24", "fd00:2::1/64"}, sink, "s0", []string{"10.0.2.2/24", "fd00:2::2/64"})

	attachPass(t, gen, bare, g0)
	attachPass(t, sink, bare, s0)
	inNetNS(t, gen, func() { disableTxChecksum(t, "g0") })
	for _, ip := range []string{"10.0.1.1", "fd00:1::1"} {
		addNeigh(t, gen, g0, ip, r0.Attrs().HardwareAddr)
	}
	for _, ip := range []string{"10.0.1.2", "fd00:1::2"} {
		addNeigh(t, relay, r0, ip, g0.Attrs().HardwareAddr)
	}

	// The sink is not resolved yet: the helper says so, clearly.
	inNetNS(t, relay, func() {
		if _, err := ResolveNextHop(netip.MustParseAddr("10.0.2.2")); !errors.Is(err, ErrNeighborUnknown) {
			t.Errorf("ResolveNextHop before the neighbour is known: %v, want ErrNeighborUnknown", err)
		}
		if _, err := ResolveNextHop(netip.MustParseAddr("10.0.2.1")); !errors.Is(err, ErrUnsupportedLink) {
			t.Errorf("ResolveNextHop of a local address: %v, want ErrUnsupportedLink", err)
		}
		if _, err := ResolveNextHop(netip.MustParseAddr("192.0.2.1")); !errors.Is(err, ErrNoRoute) {
			t.Errorf("ResolveNextHop without a route: %v, want ErrNoRoute", err)
		}
	})
	for _, ip := range []string{"10.0.2.2", "fd00:2::2"} {
		addNeigh(t, relay, r1, ip, s0.Attrs().HardwareAddr)
	}

	tests := []struct {
		name                 string
		peer, local          netip.AddrPort // gen sends from peer to local
		source, dest         netip.AddrPort // the relay sends from source to dest
		destNS               netns.NsHandle
		wantEgress           int
		wantReason           Reason
		wantSrcMAC, wantDMAC string
	}{
		{
			name: "ipv4_redirect",
			peer: ap("10.0.1.2:30000"), local: ap("10.0.1.1:40000"),
			source: ap("10.0.2.1:40002"), dest: ap("10.0.2.2:50000"),
			destNS: sink, wantEgress: r1.Attrs().Index, wantReason: ReasonRedirect,
			wantSrcMAC: r1.Attrs().HardwareAddr.String(), wantDMAC: s0.Attrs().HardwareAddr.String(),
		},
		{
			name: "ipv6_redirect",
			peer: ap("[fd00:1::2]:30000"), local: ap("[fd00:1::1]:40000"),
			source: ap("[fd00:2::1]:40002"), dest: ap("[fd00:2::2]:50000"),
			destNS: sink, wantEgress: r1.Attrs().Index, wantReason: ReasonRedirect,
			wantSrcMAC: r1.Attrs().HardwareAddr.String(), wantDMAC: s0.Attrs().HardwareAddr.String(),
		},
		{
			name: "ipv4_tx",
			peer: ap("10.0.1.2:30004"), local: ap("10.0.1.1:40004"),
			source: ap("10.0.1.1:40006"), dest: ap("10.0.1.2:30006"),
			destNS: gen, wantEgress: r0.Attrs().Index, wantReason: ReasonTX,
			wantSrcMAC: r0.Attrs().HardwareAddr.String(), wantDMAC: g0.Attrs().HardwareAddr.String(),
		},
		{
			name: "ipv6_tx",
			peer: ap("[fd00:1::2]:30004"), local: ap("[fd00:1::1]:40004"),
			source: ap("[fd00:1::1]:40006"), dest: ap("[fd00:1::2]:30006"),
			destNS: gen, wantEgress: r0.Attrs().Index, wantReason: ReasonTX,
			wantSrcMAC: r0.Attrs().HardwareAddr.String(), wantDMAC: g0.Attrs().HardwareAddr.String(),
		},
	}
	const n = 200
	for _, mode := range []Mode{ModeNative, ModeGeneric} {
		inNetNS(t, relay, func() {
			for _, l := range []netlink.Link{r0, r1} {
				if err := d.Attach(l.Attrs().Index, mode); err != nil {
					t.Fatalf("attach to %s: %v", l.Attrs().Name, err)
				}
			}
			if got := d.Attached(); len(got) != 2 {
				t.Errorf("Attached() = %v, want r0 and r1", got)
			}
			if err := d.Attach(r0.Attrs().Index, mode); !errors.Is(err, ErrAttached) {
				t.Errorf("second Attach: %v, want ErrAttached", err)
			}
		})
		for _, tt := range tests {
			t.Run(mode.String()+"/"+tt.name, func(t *testing.T) {
				v6 := tt.local.Addr().Is6()
				var nh NextHop
				var relayFd int
				inNetNS(t, relay, func() {
					var err error
					if nh, err = ResolveNextHop(tt.dest.Addr()); err != nil {
						t.Fatalf("ResolveNextHop(%v): %v", tt.dest.Addr(), err)
					}
					relayFd = udpSocket(t, tt.local)
				})
				if nh.Ifindex != tt.wantEgress || nh.SrcMAC.String() != tt.wantSrcMAC || nh.DstMAC.String() != tt.wantDMAC {
					t.Fatalf("ResolveNextHop(%v) = %+v, want ifindex %d, %s -> %s", tt.dest.Addr(), nh, tt.wantEgress, tt.wantSrcMAC, tt.wantDMAC)
				}
				rule := Rule{
					Local: tt.local, Peer: tt.peer, Source: tt.source, Dest: tt.dest, NextHop: nh,
					TOS: 184, Flags: FlagCheckSource | FlagRTPCheck | FlagSetTOS,
				}
				if err := d.UpsertRule(rule); err != nil {
					t.Fatalf("UpsertRule: %v", err)
				}
				var sendFd, recvFd int
				inNetNS(t, gen, func() { sendFd = udpSocket(t, tt.peer) })
				var before map[string]uint64
				inNetNS(t, tt.destNS, func() {
					recvFd = udpSocket(t, tt.dest)
					before = udpStats(t, v6)
				})
				counters := mustCounters(t, d)

				var sent [][]byte
				for i := range n {
					p := rtpPacket(0, uint16(i), uint32(i)*160, 0xcafe, 160)
					sent = append(sent, p)
					sendTo(t, sendFd, tt.local, p)
					if i%32 == 31 {
						time.Sleep(time.Millisecond) // stay within the veth rings
					}
				}
				got := recvAll(t, recvFd)
				if len(got) != n {
					t.Errorf("received %d datagrams, want %d", len(got), n)
				}
				for i, r := range got {
					if r.from != tt.source || r.tos != 184 || r.ttl != RelayTTL || i >= n || !bytes.Equal(r.payload, sent[i]) {
						t.Errorf("datagram %d: %v; want %d bytes from %v tos 184 ttl %d, payload as sent", i, r, len(sent[0]), tt.source, RelayTTL)
						break
					}
				}
				var after map[string]uint64
				inNetNS(t, tt.destNS, func() { after = udpStats(t, v6) })
				if e := after["InCsumErrors"] - before["InCsumErrors"]; e != 0 {
					t.Errorf("receiver counted %d checksum errors", e)
				}
				if in, errs := after["InDatagrams"]-before["InDatagrams"], after["InErrors"]-before["InErrors"]; in != uint64(len(got)) || errs != 0 {
					t.Errorf("receiver counted %d datagrams and %d errors, the socket got %d", in, errs, len(got))
				}
				if leaked := recvAll(t, relayFd); len(leaked) != 0 {
					t.Errorf("the relay's own socket on %v received %d datagrams, want none", tt.local, len(leaked))
				}
				delta := counterDelta(counters, mustCounters(t, d))
				if delta[tt.wantReason] != n {
					t.Errorf("counters changed by %s, want %s:%d", fmtDelta(delta), tt.wantReason, n)
				}
				st := mustStats(t, d, tt.local)
				if st.Packets != n || st.Bytes != n*uint64(len(sent[0])) || st.RTP.SSRC != 0xcafe || st.RTP.HighestSeq != n-1 || st.RTP.Lost() != 0 {
					t.Errorf("stats = %+v; want %d packets, %d bytes, SSRC 0xcafe up to seq %d, none lost", st, n, n*len(sent[0]), n-1)
				}

				// Without the rule the stack delivers to the relay's socket
				// again (it was listening all along).
				if err := d.RemoveRule(tt.local); err != nil {
					t.Fatal(err)
				}
				sendTo(t, sendFd, tt.local, sent[0])
				if up := recvAll(t, relayFd); len(up) != 1 || up[0].from != tt.peer {
					t.Errorf("after RemoveRule the relay socket got %v, want one datagram from %v", up, tt.peer)
				}
				if err := d.ReleaseStream(tt.local); err != nil {
					t.Fatal(err)
				}
			})
		}

		inNetNS(t, relay, func() {
			for _, l := range []netlink.Link{r0, r1} {
				if err := d.Detach(l.Attrs().Index); err != nil {
					t.Errorf("Detach %s: %v", l.Attrs().Name, err)
				}
				if id := xdpProgID(t, relay, l.Attrs().Index); id != 0 {
					t.Errorf("%s still runs program %d after Detach", l.Attrs().Name, id)
				}
			}
			if err := d.Detach(r0.Attrs().Index); !errors.Is(err, ErrNotAttached) {
				t.Errorf("second Detach: %v, want ErrNotAttached", err)
			}
		})
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
