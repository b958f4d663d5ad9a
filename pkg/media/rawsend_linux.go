// SPDX-License-Identifier: Apache-2.0

//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/pkg/inetsum"
)

// A stream socket sends one datagram per system call: at RTP rates a
// stream has one packet per pass, so sendmmsg on its socket batches nothing,
// and the syscall, the descriptor lookup and the UDP socket layer are paid
// per packet. A raw socket with our own IP and UDP headers sends the whole
// pass in one sendmmsg, whichever streams the datagrams leave by; the kernel
// still routes, filters (netfilter sees ordinary UDP) and resolves
// neighbours for each. In the bench's A/B that is 1.15–1.19× less CPU per
// relayed packet (BENCHMARKS.md, "Userspace loop").
//
// What stays on the stream's own socket: streams bound to a wildcard or an
// IPv6 link-local address (no source to write, or one that needs its
// interface), an IPv6 socket's sends to IPv4 peers, datagrams the raw socket
// refuses as too big (the socket fragments), and the single sends (replies,
// injected packets).

const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
	rawHeaderLen  = ipv4HeaderLen + udpHeaderLen
	rawHeaderLen6 = ipv6HeaderLen + udpHeaderLen
	rawTTL        = 64
	ipv4DontFrag  = 0x4000
	// rawSendBuffer is the raw socket's send buffer: it carries what every
	// stream socket's buffer did, so it is sized for a full pass of the
	// worker's batch many times over.
	rawSendBuffer = 4 << 20
)

// rawQueue is one raw socket of a worker (IPv4 or IPv6) and the pass's
// datagrams queued on it.
type rawQueue struct {
	fd     int    // -1: every datagram leaves by its stream's socket
	family uint16 // afInet or afInet6
	ipID   uint16
	hdrs   []unix.Mmsghdr
	iovs   [][2]unix.Iovec
	heads  [][rawHeaderLen6]byte
	ctrl   [][]byte // an IP(V6)_PKTINFO per datagram: the source the route is looked up from
	names  []rawAddr
	sink   []*Stream
	from   []*Stream
	n      int
}

// openRawSocket opens one of the worker's raw sockets (IP_HDRINCL, implied
// by IPPROTO_RAW for both families). Without CAP_NET_RAW it fails, and the
// worker sends through the stream sockets as before.
func openRawSocket(family int) (int, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return -1, fmt.Errorf("raw socket: %w", err)
	}
	// SO_SNDBUFFORCE passes the rmem/wmem_max limit with CAP_NET_ADMIN;
	// plain SO_SNDBUF is the fallback.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, rawSendBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, rawSendBuffer)
	}
	return fd, nil
}

func (q *rawQueue) init(fd int, family uint16, n int) {
	q.fd, q.family = fd, family
	q.ipID = 1
	q.hdrs = make([]unix.Mmsghdr, n)
	q.iovs = make([][2]unix.Iovec, n)
	q.heads = make([][rawHeaderLen6]byte, n)
	q.names = make([]rawAddr, n)
	q.sink = make([]*Stream, n)
	q.from = make([]*Stream, n)
	hlen, level, typ, info := rawHeaderLen, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo
	if family == afInet6 {
		hlen, level, typ, info = rawHeaderLen6, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo
	}
	space := unix.CmsgSpace(info)
	ctrl := make([]byte, n*space)
	q.ctrl = make([][]byte, n)
	for i := range q.hdrs {
		q.iovs[i][0].Base = &q.heads[i][0]
		q.iovs[i][0].SetLen(hlen)
		h := &q.hdrs[i].Hdr
		h.Name = &q.names[i].b[0]
		h.Iov = &q.iovs[i][0]
		h.SetIovlen(2)
		q.ctrl[i] = ctrl[i*space : (i+1)*space]
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&q.ctrl[i][0]))
		cm.Level = int32(level)
		cm.Type = int32(typ)
		cm.SetLen(unix.CmsgLen(info))
		h.Control = &q.ctrl[i][0]
		h.SetControllen(space)
	}
}

// takes reports whether a datagram from sink to dst can leave by this raw
// socket: the stream has a source of this family to write, and dst is of
// the same family (not an IPv4 peer of an IPv6 socket).
func (q *rawQueue) takes(sink *Stream, dst *rawAddr) bool {
	if q.fd < 0 || sink.rawFamily != q.family {
		return false
	}
	if q.family == afInet {
		return dst.n == sizeofSockaddrInet4
	}
	return dst.n == sizeofSockaddrInet6 && !isV4Mapped(dst.b[8:24])
}

func isV4Mapped(a []byte) bool {
	return binary.BigEndian.Uint64(a) == 0 && binary.BigEndian.Uint32(a[8:]) == 0xffff
}

// put queues b from sink's address to dst, with the headers the stream's
// socket would have written — DF set as Linux sets it on UDP over IPv4, the
// stream's TOS or traffic class — and the UDP checksum, which the raw path
// has no offload to leave to.
func (q *rawQueue) put(sink, from *Stream, b []byte, dst *rawAddr) {
	i := q.n
	q.n++
	tos := sink.tos.Load()
	if tos < 0 {
		tos = 0
	}
	h := q.heads[i][:]
	udpLen := udpHeaderLen + len(b)
	var udp []byte
	var sum uint64
	if q.family == afInet {
		h[0] = 0x45
		h[1] = byte(tos)
		binary.BigEndian.PutUint16(h[2:], uint16(ipv4HeaderLen+udpLen))
		binary.BigEndian.PutUint16(h[4:], q.ipID)
		// An ID of 0 asks the kernel to pick one: keep ours non-zero.
		if q.ipID++; q.ipID == 0 {
			q.ipID = 1
		}
		binary.BigEndian.PutUint16(h[6:], ipv4DontFrag)
		h[8] = rawTTL
		h[9] = unix.IPPROTO_UDP
		h[10], h[11] = 0, 0
		copy(h[12:16], sink.src[:4])
		copy(h[16:20], dst.b[4:8])
		binary.BigEndian.PutUint16(h[10:], inetsum.Checksum(inetsum.Add(h[:ipv4HeaderLen], 0)))
		udp = h[ipv4HeaderLen:rawHeaderLen]
		// The pseudo-header: addresses, protocol and UDP length.
		sum = inetsum.Add(h[12:20], uint64(unix.IPPROTO_UDP)+uint64(udpLen))
		(*unix.Inet4Pktinfo)(unsafe.Pointer(&q.ctrl[i][unix.CmsgLen(0)])).Spec_dst = [4]byte(sink.src[:4])
		q.names[i] = *dst
	} else {
		binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(tos)<<20) // version, traffic class, no flow label
		binary.BigEndian.PutUint16(h[4:], uint16(udpLen))
		h[6] = unix.IPPROTO_UDP
		h[7] = rawTTL
		copy(h[8:24], sink.src[:])
		copy(h[24:40], dst.b[8:24])
		udp = h[ipv6HeaderLen:rawHeaderLen6]
		sum = inetsum.Add(h[8:40], uint64(unix.IPPROTO_UDP)+uint64(udpLen))
		(*unix.Inet6Pktinfo)(unsafe.Pointer(&q.ctrl[i][unix.CmsgLen(0)])).Addr = sink.src
		q.names[i] = *dst
		// A raw IPv6 socket reads sin6_port as the protocol number.
		q.names[i].b[2], q.names[i].b[3] = 0, 0
	}
	q.hdrs[i].Hdr.Namelen = dst.n
	copy(udp[0:2], sink.srcPort[:])
	copy(udp[2:4], dst.b[2:4]) // the port, already in network order
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	udp[6], udp[7] = 0, 0
	binary.BigEndian.PutUint16(udp[6:], inetsum.UDP(inetsum.Add(b, inetsum.Add(udp, sum))))
	q.iovs[i][1].Base = unsafe.SliceData(b)
	q.iovs[i][1].SetLen(len(b))
	q.sink[i], q.from[i] = sink, from
}

// destination is datagram i's destination as the stream's socket takes it.
func (q *rawQueue) destination(i int) *rawAddr {
	d := &q.names[i]
	if q.family == afInet6 {
		copy(d.b[2:4], q.heads[i][ipv6HeaderLen+2:ipv6HeaderLen+4])
	}
	return d
}

// flushRaw sends q's queued datagrams, as few sendmmsg calls as the kernel
// allows; a full buffer drops the rest of the pass, one refused datagram is
// dropped alone, and one too big for the raw path goes by its socket.
func (w *worker) flushRaw(q *rawQueue) (failed uint64) {
	for i := 0; i < q.n; {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(q.fd), uintptr(unsafe.Pointer(&q.hdrs[i])),
			uintptr(q.n-i), unix.MSG_DONTWAIT, 0, 0)
		k := 0
		if errno == 0 {
			k = int(r)
		}
		for m := i; m < i+k; m++ {
			q.sink[m].out.add(int(q.iovs[m][1].Len), w.nowNs)
		}
		i += k
		if i >= q.n || (errno == 0 && k > 0) {
			continue
		}
		switch {
		case errors.Is(errno, unix.EMSGSIZE):
			b := unsafe.Slice(q.iovs[i][1].Base, q.iovs[i][1].Len)
			w.sendTo(q.sink[i], b, q.destination(i))
			i++
			continue
		case errno == 0 || errno == unix.EAGAIN || errno == unix.ENOBUFS:
			for m := i; m < q.n; m++ {
				q.sink[m].out.addError()
				q.from[m].dropped.Add(1)
			}
			failed += uint64(q.n - i)
			i = q.n
		default:
			q.sink[i].out.addError()
			q.from[i].dropped.Add(1)
			failed++
			i++
		}
	}
	for m := range q.n {
		q.sink[m], q.from[m] = nil, nil
		q.iovs[m][1].Base = nil
	}
	q.n = 0
	return failed
}

func (w *worker) closeRaw() {
	for _, q := range []*rawQueue{&w.raw4, &w.raw6} {
		if q.fd >= 0 {
			_ = unix.Close(q.fd)
			q.fd = -1
		}
	}
}
