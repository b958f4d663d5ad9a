// SPDX-License-Identifier: Apache-2.0

//go:build linux

package media

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/test/testenv"
)

// naiveSum is RFC 1071's sum, word by word: the reference the raw path's
// checksums are checked against.
func naiveSum(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// checkIPv4UDP verifies an IPv4+UDP datagram's checksums and lengths the way
// a receiver that checks them (a NIC, or a host behind one) would.
func checkIPv4UDP(t *testing.T, pkt []byte) {
	t.Helper()
	if len(pkt) < rawHeaderLen || pkt[0] != 0x45 {
		t.Fatalf("not an IPv4 header without options: % x", head(pkt))
	}
	if got := naiveSum(pkt[:ipv4HeaderLen]); got != 0xffff {
		t.Errorf("IPv4 header checksum does not verify: sum %#04x", got)
	}
	if total := int(binary.BigEndian.Uint16(pkt[2:])); total != len(pkt) {
		t.Errorf("IPv4 total length %d, datagram %d bytes", total, len(pkt))
	}
	udp := pkt[ipv4HeaderLen:]
	if l := int(binary.BigEndian.Uint16(udp[4:])); l != len(udp) {
		t.Errorf("UDP length %d, segment %d bytes", l, len(udp))
	}
	if binary.BigEndian.Uint16(udp[6:]) == 0 {
		t.Errorf("UDP checksum left out")
	}
	var pseudo [12]byte
	copy(pseudo[:8], pkt[12:20])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	if got := naiveSum(pseudo[:], udp); got != 0xffff {
		t.Errorf("UDP checksum does not verify: sum %#04x", got)
	}
}

func TestRawHeaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := newStream(netip.MustParseAddrPort("192.0.2.10:30000"))
	src.tos.Store(0xb8)
	dst := encodeAddr(netip.MustParseAddrPort("198.51.100.7:4002"), 0, false)
	for _, n := range []int{0, 1, 2, 3, 7, 12, 160, 172, 173, 1200, 1471} {
		var q rawQueue
		q.init(-1, afInet, 1)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n > 0 {
			b[n-1] = 0xff // an odd tail must count as its high byte
		}
		q.put(src, src, b, dst)
		pkt := append(append([]byte(nil), q.heads[0][:rawHeaderLen]...), b...)
		checkIPv4UDP(t, pkt)
		if pkt[1] != 0xb8 || pkt[8] != rawTTL || binary.BigEndian.Uint16(pkt[6:]) != ipv4DontFrag {
			t.Errorf("len %d: TOS %#x TTL %d flags %#x, want 0xb8, %d, DF", n, pkt[1], pkt[8], binary.BigEndian.Uint16(pkt[6:]), rawTTL)
		}
		if got := netip.AddrFrom4([4]byte(pkt[12:16])); got != src.local.Addr() {
			t.Errorf("len %d: source %v, want %v", n, got, src.local.Addr())
		}
		if got := netip.AddrFrom4([4]byte(pkt[16:20])); got.String() != "198.51.100.7" {
			t.Errorf("len %d: destination %v", n, got)
		}
		if sp, dp := binary.BigEndian.Uint16(pkt[20:]), binary.BigEndian.Uint16(pkt[22:]); sp != 30000 || dp != 4002 {
			t.Errorf("len %d: ports %d -> %d, want 30000 -> 4002", n, sp, dp)
		}
	}
}

func TestRawQueueTakes(t *testing.T) {
	q4, q6 := rawQueue{fd: 3, family: afInet}, rawQueue{fd: 4, family: afInet6}
	v4 := encodeAddr(netip.MustParseAddrPort("192.0.2.1:5000"), 0, false)
	v6 := encodeAddr(netip.MustParseAddrPort("[2001:db8::1]:5000"), 0, true)
	mapped := encodeAddr(netip.MustParseAddrPort("192.0.2.1:5000"), 0, true)
	tests := []struct {
		local string
		dst   *rawAddr
		want4 bool
		want6 bool
		why   string
	}{
		{"192.0.2.10:30000", v4, true, false, "IPv4 stream"},
		{"0.0.0.0:30000", v4, false, false, "no source address to write"},
		{"[2001:db8::10]:30000", v6, false, true, "IPv6 stream"},
		{"[2001:db8::10]:30000", mapped, false, false, "an IPv6 socket's IPv4 peer"},
		{"[::]:30000", v6, false, false, "wildcard"},
		{"[fe80::1]:30000", v6, false, false, "link-local source needs its interface"},
	}
	for _, tc := range tests {
		s := newStream(netip.MustParseAddrPort(tc.local))
		if got4, got6 := q4.takes(s, tc.dst), q6.takes(s, tc.dst); got4 != tc.want4 || got6 != tc.want6 {
			t.Errorf("%s (%s): IPv4 queue takes %v, IPv6 queue %v; want %v, %v", tc.local, tc.why, got4, got6, tc.want4, tc.want6)
		}
	}
	q4.fd = -1
	if q4.takes(newStream(netip.MustParseAddrPort("192.0.2.10:30000")), v4) {
		t.Errorf("takes without a raw socket")
	}
}

// checkIPv6UDP verifies an IPv6+UDP datagram's lengths and checksum.
func checkIPv6UDP(t *testing.T, pkt []byte) {
	t.Helper()
	if len(pkt) < rawHeaderLen6 || pkt[0]>>4 != 6 || pkt[6] != unix.IPPROTO_UDP {
		t.Fatalf("not IPv6 carrying UDP: % x", head(pkt))
	}
	udp := pkt[ipv6HeaderLen:]
	if l := int(binary.BigEndian.Uint16(pkt[4:])); l != len(udp) {
		t.Errorf("IPv6 payload length %d, UDP segment %d bytes", l, len(udp))
	}
	if l := int(binary.BigEndian.Uint16(udp[4:])); l != len(udp) {
		t.Errorf("UDP length %d, segment %d bytes", l, len(udp))
	}
	var pseudo [40]byte
	copy(pseudo[:32], pkt[8:40])
	binary.BigEndian.PutUint32(pseudo[32:], uint32(len(udp)))
	pseudo[39] = unix.IPPROTO_UDP
	if got := naiveSum(pseudo[:], udp); got != 0xffff {
		t.Errorf("UDP checksum does not verify: sum %#04x", got)
	}
}

func TestRawHeaders6(t *testing.T) {
	src := newStream(netip.MustParseAddrPort("[2001:db8::10]:30000"))
	src.tos.Store(0xb8)
	dst := encodeAddr(netip.MustParseAddrPort("[2001:db8:1::7]:4002"), 0, true)
	for _, n := range []int{0, 1, 172, 173, 1200} {
		var q rawQueue
		q.init(-1, afInet6, 1)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + 3)
		}
		q.put(src, src, b, dst)
		pkt := append(append([]byte(nil), q.heads[0][:rawHeaderLen6]...), b...)
		checkIPv6UDP(t, pkt)
		if tc := binary.BigEndian.Uint32(pkt[0:]) >> 20 & 0xff; tc != 0xb8 || pkt[7] != rawTTL {
			t.Errorf("len %d: traffic class %#x hop limit %d, want 0xb8, %d", n, tc, pkt[7], rawTTL)
		}
		if got := netip.AddrFrom16([16]byte(pkt[8:24])); got != src.local.Addr() {
			t.Errorf("len %d: source %v", n, got)
		}
		if got := netip.AddrFrom16([16]byte(pkt[24:40])); got.String() != "2001:db8:1::7" {
			t.Errorf("len %d: destination %v", n, got)
		}
		if sp, dp := binary.BigEndian.Uint16(pkt[40:]), binary.BigEndian.Uint16(pkt[42:]); sp != 30000 || dp != 4002 {
			t.Errorf("len %d: ports %d -> %d", n, sp, dp)
		}
		if q.names[0].b[2] != 0 || q.names[0].b[3] != 0 {
			t.Errorf("sin6_port left set: a raw IPv6 socket reads it as the protocol")
		}
		if d := q.destination(0); binary.BigEndian.Uint16(d.b[2:]) != 4002 {
			t.Errorf("destination for the socket fallback has port %d", binary.BigEndian.Uint16(d.b[2:]))
		}
	}
}

// TestRawSendOnTheWire relays through an engine and reads what left the
// relay socket off loopback with a packet socket: the datagram the raw path
// wrote must be the one the stream's socket would have sent.
func TestRawSendOnTheWire(t *testing.T) {
	if unix.Geteuid() != 0 {
		testenv.Unavailable(t, "the raw send path and the capture need CAP_NET_RAW (run as root)")
	}
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			lo, err := net.InterfaceByName("lo")
			if err != nil {
				t.Fatal(err)
			}
			capFD, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
			if err != nil {
				t.Fatalf("capture socket: %v", err)
			}
			t.Cleanup(func() { _ = unix.Close(capFD) })
			if err := unix.Bind(capFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
				t.Fatal(err)
			}
			e := newTestEngine(t, longWindow)
			for _, w := range e.workers {
				if w.raw4.fd < 0 || w.raw6.fd < 0 {
					t.Fatalf("worker %d has no raw sockets (%d, %d) though root", w.idx, w.raw4.fd, w.raw6.fd)
				}
			}
			c := newCall(t, e, ip, nil, nil)
			if err := c.rb.s.SetTOS(0x88); err != nil {
				t.Fatal(err)
			}
			payload := pkt(7)
			c.aToB(t, payload)
			waitStats(t, c.rb.s, "rb", func(s StreamStats) bool { return s.Out.Packets == 1 })
			if st := c.ra.s.Stats(); st.Dropped != 0 {
				t.Fatalf("dropped %d", st.Dropped)
			}
			from, to := c.rb.addr(), c.b.addr
			hlen := rawHeaderLen
			if to.Addr().Is6() {
				hlen = rawHeaderLen6
			}
			buf := make([]byte, 2048)
			_ = unix.SetsockoptTimeval(capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
			deadline := time.Now().Add(recvTimeout)
			for time.Now().Before(deadline) {
				n, _, err := unix.Recvfrom(capFD, buf, 0)
				if err != nil || n < hlen {
					continue
				}
				p := buf[:n]
				if (p[0]>>4 == 6) != to.Addr().Is6() || binary.BigEndian.Uint16(p[hlen-8:]) != from.Port() ||
					binary.BigEndian.Uint16(p[hlen-6:]) != to.Port() {
					continue // other traffic, or A's datagram to the relay
				}
				var tos byte
				if to.Addr().Is6() {
					checkIPv6UDP(t, p)
					tos = byte(binary.BigEndian.Uint32(p) >> 20)
				} else {
					checkIPv4UDP(t, p)
					tos = p[1]
				}
				if tos != 0x88 {
					t.Errorf("TOS %#x, want the stream's 0x88", tos)
				}
				if !bytes.Equal(p[hlen:], payload) {
					t.Errorf("payload % x, want % x", head(p[hlen:]), head(payload))
				}
				return
			}
			t.Fatalf("no datagram from %v to %v captured", from, to)
		})
	}
}

// TestSocketSends: with the raw path turned off every datagram leaves by its
// stream's socket, and the engine opens no raw socket.
func TestSocketSends(t *testing.T) {
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, SocketSends: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if w := e.workers[0]; w.raw4.fd >= 0 || w.raw6.fd >= 0 {
		t.Fatalf("raw sockets opened with SocketSends")
	}
	c := newCall(t, e, "127.0.0.1", nil, nil)
	c.aToB(t, pkt(1))
	c.bToA(t, pkt(2))
}

func BenchmarkRawHeader(b *testing.B) {
	src := newStream(netip.MustParseAddrPort("192.0.2.10:30000"))
	dst := encodeAddr(netip.MustParseAddrPort("198.51.100.7:4002"), 0, false)
	payload := make([]byte, 172)
	var q rawQueue
	q.init(-1, afInet, 1)
	b.ReportAllocs()
	for b.Loop() {
		q.n = 0
		q.put(src, src, payload, dst)
	}
}

// TestRawSendFollowsSourceRouting: a relay with one address per uplink
// routes each address's media by `ip rule from ADDR`; the raw path must
// leave by the same uplink as the stream's own socket would. In a namespace:
// the main table's default goes out a0, the rule for 10.2.0.1 sends its
// traffic out b0; a stream bound to 10.2.0.1 relays to 10.9.9.9 and the
// datagram must be seen leaving b0.
func TestRawSendFollowsSourceRouting(t *testing.T) {
	for _, fam := range []routingFamily{
		{"ipv4", netlink.FAMILY_V4, "udp4", [2]string{"10.1.0.1", "10.2.0.1"}, [2]string{"10.1.0.2", "10.2.0.2"}, 24, "10.9.9.9"},
		{"ipv6", netlink.FAMILY_V6, "udp6", [2]string{"2001:db8:1::1", "2001:db8:2::1"}, [2]string{"2001:db8:1::2", "2001:db8:2::2"}, 64, "2001:db8:9::9"},
	} {
		for _, sends := range []string{"raw", "socket"} {
			t.Run(fam.name+"/"+sends, func(t *testing.T) { testSourceRouting(t, fam, sends == "socket") })
		}
	}
}

// routingFamily is one address family's plan of the source-routing rig:
// the relay's address and gateway on uplinks a0 and b0, and the callee.
type routingFamily struct {
	name    string
	family  int
	network string
	addr    [2]string
	gw      [2]string
	bits    int
	callee  string
}

func testSourceRouting(t *testing.T, fam routingFamily, socketSends bool) {
	if unix.Geteuid() != 0 {
		testenv.Unavailable(t, "needs root for a network namespace and the raw socket")
	}
	ns := testenv.NewNetNS(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	uplink := map[string]netlink.Link{}
	for i, u := range []struct{ name, peer string }{{"a0", "a1"}, {"b0", "b1"}} {
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: u.name}, PeerName: u.peer}); err != nil {
			t.Fatalf("add veth %s: %v", u.name, err)
		}
		l, err := h.LinkByName(u.name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := h.LinkByName(u.peer)
		if err != nil {
			t.Fatal(err)
		}
		ipn, _ := netlink.ParseIPNet(fmt.Sprintf("%s/%d", fam.addr[i], fam.bits))
		// No duplicate address detection: the address is usable at once.
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatal(err)
		}
		for _, x := range []netlink.Link{l, p} {
			if err := h.LinkSetUp(x); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam.family,
			State: netlink.NUD_PERMANENT, IP: net.ParseIP(fam.gw[i]), HardwareAddr: mac}); err != nil {
			t.Fatal(err)
		}
		uplink[u.name] = l
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(fam.gw[0]), LinkIndex: uplink["a0"].Attrs().Index}); err != nil {
		t.Fatalf("main default route: %v", err)
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(fam.gw[1]), LinkIndex: uplink["b0"].Attrs().Index, Table: 100}); err != nil {
		t.Fatalf("table 100 default route: %v", err)
	}
	rule := netlink.NewRule()
	rule.Family = fam.family
	src := netip.MustParseAddr(fam.addr[1])
	rule.Src = &net.IPNet{IP: src.AsSlice(), Mask: net.CIDRMask(src.BitLen(), src.BitLen())}
	rule.Table = 100
	if err := h.RuleAdd(rule); err != nil {
		t.Fatalf("ip rule: %v", err)
	}

	var e *Engine
	var capFD int
	var caller *net.UDPConn
	var ra, rb *Stream
	testenv.InNetNS(t, ns, func() {
		if e, err = NewEngine(Config{Workers: 1, LearningWindow: longWindow, SocketSends: socketSends}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		if w := e.workers[0]; (w.raw4.fd >= 0) == socketSends || (w.raw6.fd >= 0) == socketSends {
			t.Fatalf("raw sockets %d, %d with SocketSends %v", w.raw4.fd, w.raw6.fd, socketSends)
		}
		// Seen leaving b0: outgoing frames reach only ETH_P_ALL packet sockets.
		if capFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Close(capFD) })
		if err := unix.Bind(capFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: uplink["b0"].Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		if caller, err = net.ListenUDP(fam.network, &net.UDPAddr{IP: net.ParseIP(fam.addr[0])}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = caller.Close() })
		g := e.NewGroup()
		for _, x := range []struct {
			ip string
			s  **Stream
		}{{fam.addr[0], &ra}, {fam.addr[1], &rb}} {
			sock := bindSocket(t, x.ip)
			s, err := e.Attach(g, sock, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Detach)
			*x.s = s
		}
	})
	callee := netip.AddrPortFrom(netip.MustParseAddr(fam.callee), 4000)
	ra.Configure(StreamConfig{Sink: rb, Peer: caller.LocalAddr().(*net.UDPAddr).AddrPort()})
	rb.Configure(StreamConfig{Sink: ra, Peer: callee})
	payload := pkt(3)
	if _, err := caller.WriteToUDPAddrPort(payload, ra.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = unix.SetsockoptTimeval(capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	deadline := time.Now().Add(recvTimeout)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(capFD, buf, 0)
		if err != nil {
			continue
		}
		p := buf[:n]
		hlen, src, dst := rawHeaderLen, netip.Addr{}, netip.Addr{}
		switch {
		case n >= rawHeaderLen && p[0]>>4 == 4 && p[9] == unix.IPPROTO_UDP:
			src, dst = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
		case n >= rawHeaderLen6 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_UDP:
			hlen, src, dst = rawHeaderLen6, netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		}
		if dst != callee.Addr() {
			continue
		}
		if src != rb.LocalAddr().Addr() {
			t.Errorf("left b0 from %v, want %v", src, rb.LocalAddr().Addr())
		}
		switch {
		case socketSends: // the socket's checksum is left to offload
		case hlen == rawHeaderLen:
			checkIPv4UDP(t, p)
		default:
			checkIPv6UDP(t, p)
		}
		if !bytes.Equal(p[hlen:], payload) {
			t.Errorf("payload % x, want % x", head(p[hlen:]), head(payload))
		}
		waitStats(t, rb, "rb", func(s StreamStats) bool { return s.Out.Packets == 1 })
		return
	}
	t.Fatalf("nothing to %v left b0: the source rule was not followed (out: %+v)", callee, rb.Stats().Out)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
