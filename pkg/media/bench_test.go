// SPDX-License-Identifier: Apache-2.0

package media

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// BenchmarkForwardPath is the per-packet work of the forwarding loop without
// the syscalls: source check on a latched stream, counters, RTP statistics,
// sink and destination lookup. It must not allocate.
func BenchmarkForwardPath(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  StreamConfig
		pkt  []byte
	}{
		{"rtp", StreamConfig{}, rtpPacket(1, 160, 0x1234, 8, make([]byte, 160))},
		{"rtp strict", StreamConfig{StrictSource: true}, rtpPacket(1, 160, 0x1234, 8, make([]byte, 160))},
		{"rtcp mux", StreamConfig{}, rtcpRR(0x1234)},
		{"garbage", StreamConfig{}, []byte("not rtp, forwarded anyway")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			peerA := netip.MustParseAddrPort("192.0.2.1:4000")
			peerB := netip.MustParseAddrPort("192.0.2.2:5000")
			a := newStream(netip.MustParseAddrPort("198.51.100.1:30000"))
			sink := newStream(netip.MustParseAddrPort("198.51.100.1:30002"))
			cfg := tc.cfg
			cfg.Sink, cfg.Peer = sink, peerA
			a.Configure(cfg)
			sink.Configure(StreamConfig{Sink: a, Peer: peerB})
			pkt := append([]byte(nil), tc.pkt...)
			now := time.Now()
			if to, _ := a.receive(pkt, peerA, 0, now.UnixNano(), 0, now); to != sink {
				b.Fatal("first packet not forwarded")
			}
			// The worker reuses one Packet for every datagram; so does
			// this loop.
			p := new(Packet)
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if len(pkt) >= 12 && pkt[1] < 192 {
					binary.BigEndian.PutUint16(pkt[2:], uint16(i+2))
					binary.BigEndian.PutUint32(pkt[4:], uint32(i+2)*160)
				}
				mono := int64(i) * 20e6
				*p = Packet{Data: pkt, Source: peerA, Stream: a, NowNs: now.UnixNano() + mono, monoNs: mono, now: now}
				p.Kind = classify(pkt)
				if to, dst, v := a.ingress(p); v != Continue || to == nil || dst == nil {
					b.Fatal("packet dropped")
				}
			}
		})
	}
}

// BenchmarkForwardLoopback is end to end over loopback: a generator sends RTP
// with sendmmsg to the relay sockets of one or many streams, the workers
// receive with recvmmsg and forward with sendmmsg out of the opposite relay
// sockets (sends=socket) or the worker's raw socket (sends=raw). With one
// stream every readiness event yields full batches; with many streams, as
// with real calls, most events yield one packet. ns/op is per
// forwarded packet and includes the generator (loopback delivery is charged to
// the sender); allocs/op covers the whole process, workers included.
func BenchmarkForwardLoopback(b *testing.B) {
	for _, tc := range []struct{ streams, workers int }{{1, 1}, {1, 2}, {256, 1}, {256, 2}} {
		for _, sends := range []string{"raw", "socket"} {
			b.Run(fmt.Sprintf("streams=%d/workers=%d/sends=%s", tc.streams, tc.workers, sends), func(b *testing.B) {
				benchLoopback(b, tc.streams, tc.workers, sends == "socket")
			})
		}
	}
}

func benchLoopback(b *testing.B, streams, workers int, socketSends bool) {
	e, err := NewEngine(Config{Workers: workers, LearningWindow: time.Millisecond, SocketSends: socketSends})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	listen4 := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	attach := func(g Group) (*Stream, netip.AddrPort) {
		sock := bindSocket(b, "127.0.0.1")
		_ = unix.SetsockoptInt(sock.FD, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		s, err := e.Attach(g, sock, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Detach)
		return s, sock.Local
	}
	gen, sinkParty := listen4(), listen4()
	genAddr := gen.LocalAddr().(*net.UDPAddr).AddrPort()
	sinkAddr := sinkParty.LocalAddr().(*net.UDPAddr).AddrPort()
	ins := make([]*Stream, streams)
	outs := make([]*Stream, streams)
	targets := make([]net.Addr, streams)
	for i := range streams {
		g := e.NewGroup()
		var ra netip.AddrPort
		ins[i], ra = attach(g)
		outs[i], _ = attach(g)
		ins[i].Configure(StreamConfig{Sink: outs[i], Peer: genAddr})
		outs[i].Configure(StreamConfig{Sink: ins[i], Peer: sinkAddr})
		targets[i] = net.UDPAddrFromAddrPort(ra)
	}

	const batch, window = 32, 512
	pc := ipv4.NewPacketConn(gen)
	msgs := make([]ipv4.Message, batch)
	bufs := make([][]byte, batch)
	for i := range msgs {
		bufs[i] = rtpPacket(uint16(i), uint32(i)*160, 0x1234, 8, make([]byte, 160))
		msgs[i] = ipv4.Message{Buffers: bufs[i : i+1]}
	}
	handled := func() (n uint64) {
		for _, s := range ins {
			n += atomic.LoadUint64(&s.in.Packets) + s.dropped.Load()
		}
		return n
	}
	dropped := func() (n uint64) {
		for _, s := range ins {
			n += s.dropped.Load()
		}
		return n
	}
	forwarded := func() (n uint64) {
		for _, s := range outs {
			n += atomic.LoadUint64(&s.out.Packets)
		}
		return n
	}
	var sent uint64
	next := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(bufs[0])))
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for sent < uint64(b.N) {
		n := min(batch, b.N-int(sent))
		for i := range n {
			binary.BigEndian.PutUint16(bufs[i][2:], uint16(sent)+uint16(i))
			msgs[i].Addr = targets[next]
			next = (next + 1) % streams
		}
		w, err := pc.WriteBatch(msgs[:n], 0)
		if err != nil {
			b.Fatal(err)
		}
		sent += uint64(w)
		for handled()+window < sent {
			// Sleeping rather than spinning keeps the generator's CPU
			// out of cpu-ns/pkt; the window keeps the workers busy.
			time.Sleep(20 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for forwarded()+dropped() < sent && time.Now().Before(deadline) {
		time.Sleep(20 * time.Microsecond)
	}
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	b.StopTimer()
	fwd := forwarded()
	b.ReportMetric(float64(fwd)/elapsed.Seconds(), "fwd-pps")
	if fwd > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(fwd), "cpu-ns/pkt")
	}
	if sent-fwd > sent/100 {
		b.Logf("sent %d, forwarded %d, dropped %d", sent, fwd, dropped())
	}
}

// processCPU is the user+system CPU time of the whole process, generator
// included: robust against other load on a shared machine, unlike pps.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
