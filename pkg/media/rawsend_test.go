// SPDX-License-Identifier: Apache-2.0

//go:build linux

package media

import (
	"bytes"
	"encoding/binary"
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
		q.init(-1, 1)
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n > 0 {
			b[n-1] = 0xff // an odd tail must count as its high byte
		}
		q.put(src, src, b, dst)
		pkt := append(append([]byte(nil), q.heads[0][:]...), b...)
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
	q := rawQueue{fd: 3}
	v4 := encodeAddr(netip.MustParseAddrPort("192.0.2.1:5000"), 0, false)
	v6 := encodeAddr(netip.MustParseAddrPort("[2001:db8::1]:5000"), 0, true)
	mapped := encodeAddr(netip.MustParseAddrPort("192.0.2.1:5000"), 0, true)
	tests := []struct {
		local string
		dst   *rawAddr
		want  bool
	}{
		{"192.0.2.10:30000", v4, true},
		{"0.0.0.0:30000", v4, false}, // no source address to write
		{"[2001:db8::10]:30000", v6, false},
		{"[::]:30000", mapped, false},
	}
	for _, tc := range tests {
		if got := q.takes(newStream(netip.MustParseAddrPort(tc.local)), tc.dst); got != tc.want {
			t.Errorf("%s: takes = %v, want %v", tc.local, got, tc.want)
		}
	}
	q.fd = -1
	if q.takes(newStream(netip.MustParseAddrPort("192.0.2.10:30000")), v4) {
		t.Errorf("takes without a raw socket")
	}
}

// TestRawSendOnTheWire relays through an engine and reads what left the
// relay socket off loopback with a raw capture socket: the datagram the raw
// path wrote must be the one the stream's socket would have sent.
func TestRawSendOnTheWire(t *testing.T) {
	if unix.Geteuid() != 0 {
		testenv.Unavailable(t, "the raw send path and the capture need CAP_NET_RAW (run as root)")
	}
	capFD, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatalf("capture socket: %v", err)
	}
	t.Cleanup(func() { _ = unix.Close(capFD) })
	e := newTestEngine(t, longWindow)
	for _, w := range e.workers {
		if w.raw.fd < 0 {
			t.Fatalf("worker %d has no raw socket though root", w.idx)
		}
	}
	c := newCall(t, e, "127.0.0.1", nil, nil)
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
	buf := make([]byte, 2048)
	deadline := time.Now().Add(recvTimeout)
	for time.Now().Before(deadline) {
		_ = unix.SetsockoptTimeval(capFD, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
		n, _, err := unix.Recvfrom(capFD, buf, 0)
		if err != nil {
			continue
		}
		p := buf[:n]
		if n < rawHeaderLen || binary.BigEndian.Uint16(p[20:]) != from.Port() || binary.BigEndian.Uint16(p[22:]) != to.Port() {
			continue // another test's traffic, or A's datagram to the relay
		}
		checkIPv4UDP(t, p)
		if p[1] != 0x88 {
			t.Errorf("TOS %#x, want the stream's 0x88", p[1])
		}
		if !bytes.Equal(p[rawHeaderLen:], payload) {
			t.Errorf("payload % x, want % x", head(p[rawHeaderLen:]), head(payload))
		}
		return
	}
	t.Fatalf("no datagram from %v to %v captured", from, to)
}

// TestSocketSends: with the raw path turned off every datagram leaves by its
// stream's socket, and the engine opens no raw socket.
func TestSocketSends(t *testing.T) {
	e, err := NewEngine(Config{Workers: 1, LearningWindow: longWindow, SocketSends: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if e.workers[0].raw.fd >= 0 {
		t.Fatalf("raw socket opened with SocketSends")
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
	q.init(-1, 1)
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
	for _, sends := range []string{"raw", "socket"} {
		t.Run(sends, func(t *testing.T) { testSourceRouting(t, sends == "socket") })
	}
}

func testSourceRouting(t *testing.T, socketSends bool) {
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
	for _, u := range []struct{ name, peer, addr, gw string }{
		{"a0", "a1", "10.1.0.1/24", "10.1.0.2"},
		{"b0", "b1", "10.2.0.1/24", "10.2.0.2"},
	} {
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
		ipn, _ := netlink.ParseIPNet(u.addr)
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
			t.Fatal(err)
		}
		for _, x := range []netlink.Link{l, p} {
			if err := h.LinkSetUp(x); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4,
			State: netlink.NUD_PERMANENT, IP: net.ParseIP(u.gw), HardwareAddr: mac}); err != nil {
			t.Fatal(err)
		}
		uplink[u.name] = l
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.1.0.2"), LinkIndex: uplink["a0"].Attrs().Index}); err != nil {
		t.Fatalf("main default route: %v", err)
	}
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.2.0.2"), LinkIndex: uplink["b0"].Attrs().Index, Table: 100}); err != nil {
		t.Fatalf("table 100 default route: %v", err)
	}
	rule := netlink.NewRule()
	rule.Src, _ = netlink.ParseIPNet("10.2.0.1/32")
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
		if (e.workers[0].raw.fd >= 0) == socketSends {
			t.Fatalf("raw socket %d with SocketSends %v", e.workers[0].raw.fd, socketSends)
		}
		// Seen leaving b0: outgoing frames reach only ETH_P_ALL packet sockets.
		if capFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Close(capFD) })
		if err := unix.Bind(capFD, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: uplink["b0"].Attrs().Index}); err != nil {
			t.Fatal(err)
		}
		if caller, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 1, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = caller.Close() })
		g := e.NewGroup()
		for _, x := range []struct {
			ip string
			s  **Stream
		}{{"10.1.0.1", &ra}, {"10.2.0.1", &rb}} {
			sock := bindSocket(t, x.ip)
			s, err := e.Attach(g, sock, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Detach)
			*x.s = s
		}
	})
	callee := netip.MustParseAddrPort("10.9.9.9:4000")
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
		if n < rawHeaderLen || p[9] != unix.IPPROTO_UDP || netip.AddrFrom4([4]byte(p[16:20])) != callee.Addr() {
			continue
		}
		if src := netip.AddrFrom4([4]byte(p[12:16])); src != rb.LocalAddr().Addr() {
			t.Errorf("left b0 from %v, want %v", src, rb.LocalAddr().Addr())
		}
		if !socketSends { // the socket's checksum is left to offload
			checkIPv4UDP(t, p)
		}
		if !bytes.Equal(p[rawHeaderLen:], payload) {
			t.Errorf("payload % x, want % x", head(p[rawHeaderLen:]), head(payload))
		}
		waitStats(t, rb, "rb", func(s StreamStats) bool { return s.Out.Packets == 1 })
		return
	}
	t.Fatalf("nothing to %v left b0: the source rule was not followed (out: %+v)", callee, rb.Stats().Out)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
