// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/test/testenv"
)

// newNetNS and inNetNS: see testenv.
var (
	newNetNS = testenv.NewNetNS
	inNetNS  = testenv.InNetNS
)

// vethPair creates a veth pair with one end in each namespace, both up,
// with the given addresses (IPv6 without duplicate address detection).
func vethPair(t *testing.T, ns1 netns.NsHandle, name1 string, addrs1 []string, ns2 netns.NsHandle, name2 string, addrs2 []string) (l1, l2 netlink.Link) {
	t.Helper()
	h1, err := netlink.NewHandleAt(ns1)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	h2, err := netlink.NewHandleAt(ns2)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name1}, PeerName: name2, PeerNamespace: netlink.NsFd(ns2)}
	if err := h1.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", name1, name2, err)
	}
	setup := func(h *netlink.Handle, name string, addrs []string) netlink.Link {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, a := range addrs {
			ipn, err := netlink.ParseIPNet(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipn, Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatalf("%s: add %s: %v", name, a, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", name, err)
		}
		l, err = h.LinkByName(name) // with its MAC
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	return setup(h1, name1, addrs1), setup(h2, name2, addrs2)
}

// addNeigh adds a permanent neighbour entry ip -> mac on link in ns.
func addNeigh(t *testing.T, ns netns.NsHandle, l netlink.Link, ip string, mac net.HardwareAddr) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	family := netlink.FAMILY_V4
	if strings.Contains(ip, ":") {
		family = netlink.FAMILY_V6
	}
	n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: family, State: netlink.NUD_PERMANENT, IP: net.ParseIP(ip), HardwareAddr: mac}
	if err := h.NeighSet(n); err != nil {
		t.Fatalf("neighbour %s: %v", ip, err)
	}
}

// disableTxChecksum turns TX checksum offload off on ifname (in the
// calling thread's namespace), like `ethtool -K ifname tx off`. A socket on
// a veth otherwise sends CHECKSUM_PARTIAL packets whose checksum field holds
// only the pseudo-header sum, which an XDP rewrite cannot fix.
func disableTxChecksum(t *testing.T, ifname string) {
	t.Helper()
	const ethtoolSTxCsum = 0x17 // ETHTOOL_STXCSUM
	value := struct{ cmd, data uint32 }{ethtoolSTxCsum, 0}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data uintptr
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = uintptr(unsafe.Pointer(&value))
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&value)
	if errno != 0 {
		t.Fatalf("SIOCETHTOOL %s tx off: %v", ifname, errno)
	}
}

// udpStats reads the Udp (or Udp6) counters of the calling thread's
// namespace.
func udpStats(t *testing.T, v6 bool) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	if v6 {
		f, err := os.Open("/proc/thread-self/net/snmp6")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) == 2 && strings.HasPrefix(fields[0], "Udp6") {
				v, _ := strconv.ParseUint(fields[1], 10, 64)
				out[strings.TrimPrefix(fields[0], "Udp6")] = v
			}
		}
		return out
	}
	b, err := os.ReadFile("/proc/thread-self/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		for i, v := range fields[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			out[names[i]] = n
		}
	}
	return out
}

// udpSocket binds a UDP socket to ap in the calling thread's namespace,
// asking for the TOS/traffic class and TTL/hop limit of received packets.
func udpSocket(t *testing.T, ap netip.AddrPort) int {
	t.Helper()
	family := unix.AF_INET
	if ap.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa = &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1)
	} else {
		sa = &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %v: %v", ap, err)
	}
	// The tests read only after sending everything.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(100e6))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

// received is one datagram with its source, TOS/traffic class and TTL/hop
// limit.
type received struct {
	from    netip.AddrPort
	payload []byte
	tos     int
	ttl     int
}

// recvAll reads datagrams until the receive timeout (100 ms of silence).
func recvAll(t *testing.T, fd int) []received {
	t.Helper()
	var out []received
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		if err == unix.EAGAIN || err == unix.EWOULDBLOCK {
			return out
		}
		if err != nil {
			t.Fatalf("recvmsg: %v", err)
		}
		r := received{payload: append([]byte(nil), buf[:n]...), tos: -1, ttl: -1}
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			r.from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			r.from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) >= 1:
				r.tos = int(m.Data[0])
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TTL && len(m.Data) >= 4:
				r.ttl = int(int32(nativeUint32(m.Data)))
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_TCLASS && len(m.Data) >= 4:
				r.tos = int(int32(nativeUint32(m.Data)))
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
				r.ttl = int(int32(nativeUint32(m.Data)))
			}
		}
		out = append(out, r)
	}
}

func nativeUint32(b []byte) uint32 { return binary.NativeEndian.Uint32(b) }

func sendTo(t *testing.T, fd int, to netip.AddrPort, payload []byte) {
	t.Helper()
	var sa unix.Sockaddr
	if to.Addr().Is4() {
		sa = &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}
	} else {
		sa = &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}
	}
	if err := unix.Sendto(fd, payload, 0, sa); err != nil {
		t.Fatalf("send to %v: %v", to, err)
	}
}

func (r received) String() string {
	return fmt.Sprintf("%d bytes from %v tos %d ttl %d", len(r.payload), r.from, r.tos, r.ttl)
}
