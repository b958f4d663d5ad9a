// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/test/e2e"
)

const (
	rtpPayloadType = 8   // PCMA
	rtpPayloadLen  = 160 // 20 ms of PCMA
	rtcpSR         = 200
	// sendGap paces bursts so that no socket buffer on the way overflows:
	// a lost packet must mean the relay lost it.
	sendGap = time.Millisecond
	// expectWithin bounds how long a burst may take to arrive in full.
	expectWithin = 3 * time.Second
	// expectIdle ends the wait early once nothing has arrived for this long.
	expectIdle = time.Second
	// settle is how long an endpoint must stay quiet after the packets it
	// expected arrived ("nothing else").
	settle = 150 * time.Millisecond
)

// packet is one datagram an endpoint received.
type packet struct {
	data []byte
	from netip.AddrPort
	tos  int // IPv4 TOS or IPv6 traffic class; -1 when the kernel did not say
	at   time.Time
}

func (p packet) String() string {
	return fmt.Sprintf("%s from %s tos %d", describe(p.data), p.from, p.tos)
}

// endpoint is one UDP socket of a party, in the party's namespace. A reader
// goroutine queues everything that arrives, with the TOS byte it carried.
type endpoint struct {
	name     string
	conn     *net.UDPConn
	local    netip.AddrPort
	in       chan packet
	overflow atomic.Int64
}

// listenEndpoint binds local inside namespace ns. It returns an error (not a
// test failure) so that callers can retry another port.
func listenEndpoint(t *testing.T, ns, name string, local netip.AddrPort) (*endpoint, error) {
	t.Helper()
	network := "udp4"
	if local.Addr().Is6() {
		network = "udp6"
	}
	var conn *net.UDPConn
	err := e2e.DoInNetns(testenv.NSPath(ns), func() error {
		var err error
		conn, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(local))
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := recvTOS(conn, local.Addr().Is6()); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadBuffer(1 << 20)
	e := &endpoint{name: name, conn: conn, local: local, in: make(chan packet, 8192)}
	go e.read()
	t.Cleanup(func() {
		conn.Close()
		if n := e.overflow.Load(); n > 0 {
			t.Errorf("%s: %d packets were lost in the test's own queue: counts are wrong", name, n)
		}
	})
	return e, nil
}

// recvTOS asks the kernel to report the TOS byte (IPv4) or traffic class
// (IPv6) of every received datagram.
func recvTOS(conn *net.UDPConn, v6 bool) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("enable tos reporting: %w", serr)
	}
	return nil
}

func (e *endpoint) read() {
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for {
		n, oobn, _, from, err := e.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p := packet{data: bytes.Clone(buf[:n]), from: netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), tos: -1, at: time.Now()}
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				switch {
				case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_TOS && len(m.Data) >= 1:
					p.tos = int(m.Data[0])
				case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_TCLASS && len(m.Data) >= 4:
					p.tos = int(binary.NativeEndian.Uint32(m.Data[:4]))
				}
			}
		}
		select {
		case e.in <- p:
		default:
			e.overflow.Add(1)
		}
	}
}

// party is a media endpoint: an RTP socket on an even port and an RTCP
// socket on the next one.
type party struct {
	name      string
	ns        string
	addr      netip.Addr
	rtp, rtcp *endpoint
}

// newParty binds an even/odd port pair on addr in namespace ns.
func newParty(t *testing.T, ns, name, addr string) *party {
	t.Helper()
	a := ip(addr)
	for range 100 {
		port := 40000 + 2*rand.IntN(10000)
		rtp, err := listenEndpoint(t, ns, name+" RTP", netip.AddrPortFrom(a, uint16(port)))
		if err != nil {
			continue
		}
		rtcp, err := listenEndpoint(t, ns, name+" RTCP", netip.AddrPortFrom(a, uint16(port+1)))
		if err != nil {
			rtp.conn.Close()
			continue
		}
		return &party{name: name, ns: ns, addr: a, rtp: rtp, rtcp: rtcp}
	}
	t.Fatalf("%s: no free even/odd port pair on %s in %s", name, addr, ns)
	return nil
}

// extraSocket binds one more socket for p (a new port for a re-INVITE, or
// the socket a NATed party really sends from).
func (p *party) extraSocket(t *testing.T, label string, port int) *endpoint {
	t.Helper()
	for range 100 {
		if port == 0 {
			port = 40000 + 2*rand.IntN(10000)
		}
		e, err := listenEndpoint(t, p.ns, p.name+" "+label, netip.AddrPortFrom(p.addr, uint16(port)))
		if err == nil {
			return e
		}
		port = 0
	}
	t.Fatalf("%s: no free port for %s", p.name, label)
	return nil
}

// flow is one stream of packets a party sends: RTP with its own SSRC and
// increasing sequence numbers and timestamps, or RTCP sender reports whose
// packet-count field plays the sequence number. Every packet's bytes follow
// from (flow, seq), so a receiver can check that it arrived unmodified.
type flow struct {
	label string
	ssrc  uint32
	rtcp  bool
	next  uint16
}

func newFlow(label string, rtcp bool) *flow {
	return &flow{label: label, ssrc: rand.Uint32(), rtcp: rtcp, next: uint16(rand.IntN(1000))}
}

// packet builds the flow's datagram number seq.
func (f *flow) packet(seq uint16) []byte {
	if f.rtcp {
		return rtcpPacket(f.ssrc, seq, f.label)
	}
	b := make([]byte, 12+rtpPayloadLen)
	b[0] = 0x80 // version 2
	b[1] = rtpPayloadType
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*rtpPayloadLen)
	binary.BigEndian.PutUint32(b[8:], f.ssrc)
	payload := b[12:]
	for i := range payload {
		payload[i] = byte(int(seq) + i)
	}
	// The label in the payload names the flow in failure messages.
	copy(payload, "flow:"+f.label+"\x00")
	return b
}

// rtcpPacket is a compound RTCP packet: a sender report whose packet count
// is seq, then an SDES chunk whose CNAME is the label.
func rtcpPacket(ssrc uint32, seq uint16, label string) []byte {
	sr := make([]byte, 28)
	sr[0] = 0x80
	sr[1] = rtcpSR
	binary.BigEndian.PutUint16(sr[2:], 6)
	binary.BigEndian.PutUint32(sr[4:], ssrc)
	binary.BigEndian.PutUint32(sr[8:], 0xe0000000)                 // NTP seconds
	binary.BigEndian.PutUint32(sr[16:], uint32(seq)*rtpPayloadLen) // RTP timestamp
	binary.BigEndian.PutUint32(sr[20:], uint32(seq))               // sender's packet count
	binary.BigEndian.PutUint32(sr[24:], uint32(seq)*rtpPayloadLen)
	cname := []byte(label)
	if len(cname) > 255 {
		cname = cname[:255]
	}
	chunk := append(binary.BigEndian.AppendUint32(nil, ssrc), 1, byte(len(cname)))
	chunk = append(chunk, cname...)
	chunk = append(chunk, 0) // end of items
	for len(chunk)%4 != 0 {
		chunk = append(chunk, 0)
	}
	sdes := []byte{0x81, 202, 0, 0}
	binary.BigEndian.PutUint16(sdes[2:], uint16(len(chunk)/4))
	return append(sr, append(sdes, chunk...)...)
}

// identify reads the SSRC and sequence number (RTCP: the SR packet count) of
// a packet the harness built.
func identify(b []byte) (ssrc uint32, seq uint16, rtcp, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, 0, false, false
	}
	if b[1] >= 192 && b[1] <= 223 {
		if len(b) < 28 || b[1] != rtcpSR {
			return 0, 0, true, false
		}
		return binary.BigEndian.Uint32(b[4:]), uint16(binary.BigEndian.Uint32(b[20:])), true, true
	}
	return binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint16(b[2:]), false, true
}

// describe names a packet for failure messages.
func describe(b []byte) string {
	ssrc, seq, rtcp, ok := identify(b)
	if !ok {
		return fmt.Sprintf("%d-byte non-harness datagram % x", len(b), b[:min(len(b), 16)])
	}
	label := "?"
	if rtcp {
		if i := bytes.IndexByte(b[28:], 1); i >= 0 && 28+i+1 < len(b) {
			n := int(b[28+i+1])
			if s := b[28+i+2:]; len(s) >= n {
				label = string(s[:n])
			}
		}
		return fmt.Sprintf("RTCP flow %q ssrc %08x count %d", label, ssrc, seq)
	}
	if p := b[12:]; bytes.HasPrefix(p, []byte("flow:")) {
		if end := bytes.IndexByte(p, 0); end > 5 {
			label = string(p[5:end])
		}
	}
	return fmt.Sprintf("RTP flow %q ssrc %08x seq %d pt %d", label, ssrc, seq, b[1]&0x7f)
}

// send sends n packets of f from e to dst and returns the first sequence
// number used.
func (e *endpoint) send(t *testing.T, f *flow, dst netip.AddrPort, n int) uint16 {
	t.Helper()
	first := f.next
	for i := range n {
		if _, err := e.conn.WriteToUDPAddrPort(f.packet(f.next), dst); err != nil {
			t.Fatalf("%s: send %s packet %d to %s: %v", e.name, f.label, i, dst, err)
		}
		f.next++
		time.Sleep(sendGap)
	}
	return first
}

// burst is what one expect call waits for: n packets of a flow with
// consecutive sequence numbers from first, each from src.
type burst struct {
	f     *flow
	first uint16
	n     int
	src   netip.AddrPort
}

func (b burst) String() string {
	return fmt.Sprintf("%d packets of %q (seq %d..%d) from %s", b.n, b.f.label, b.first, b.first+uint16(b.n)-1, b.src)
}

func (b burst) has(seq uint16) bool { return seq-b.first < uint16(b.n) }

// expect waits until every packet of the burst arrived on e, unmodified and
// from the expected source, then checks that nothing else arrives for a
// moment. Packets of the flows in tolerate are allowed (and returned) but not
// required; anything else fails the test. It returns the burst's packets.
func (e *endpoint) expect(t *testing.T, b burst, tolerate ...*flow) (got, tolerated []packet) {
	t.Helper()
	seen := map[uint16]bool{}
	var unexpected []string
	deadline := time.After(expectWithin)
	// A relay that forwards nothing should not cost the full wait per burst.
	idle := time.NewTimer(expectIdle)
	defer idle.Stop()
	judge := func(p packet) {
		ssrc, seq, _, ok := identify(p.data)
		switch {
		case ok && ssrc == b.f.ssrc && b.has(seq):
			switch {
			case seen[seq]:
				unexpected = append(unexpected, "duplicate "+p.String())
			case p.from != b.src:
				unexpected = append(unexpected, fmt.Sprintf("%s (want from %s)", p, b.src))
			case !bytes.Equal(p.data, b.f.packet(seq)):
				unexpected = append(unexpected, "modified "+p.String())
			default:
				seen[seq] = true
				got = append(got, p)
			}
		case ok && slices.ContainsFunc(tolerate, func(f *flow) bool { return f.ssrc == ssrc }):
			tolerated = append(tolerated, p)
		default:
			unexpected = append(unexpected, p.String())
		}
	}
wait:
	for len(seen) < b.n {
		select {
		case p := <-e.in:
			judge(p)
			idle.Reset(expectIdle)
		case <-deadline:
			break wait
		case <-idle.C:
			break wait
		}
	}
	quiet := time.After(settle)
drain:
	for {
		select {
		case p := <-e.in:
			judge(p)
		case <-quiet:
			break drain
		}
	}
	if len(seen) < b.n {
		var missing []uint16
		for i := range b.n {
			if s := b.first + uint16(i); !seen[s] {
				missing = append(missing, s)
			}
		}
		t.Errorf("%s: received %d of %s (waited up to %v, %v after the last packet); missing seq %s", e.name, len(seen), b, expectWithin, expectIdle, seqRanges(missing))
	}
	if len(unexpected) > 0 {
		t.Errorf("%s: %d unexpected packets while waiting for %s: %s", e.name, len(unexpected), b, summarize(unexpected))
	}
	return got, tolerated
}

// expectNothing checks that nothing arrives on e for d.
func (e *endpoint) expectNothing(t *testing.T, d time.Duration, why string) {
	t.Helper()
	got := e.collect(d)
	if len(got) > 0 {
		lines := make([]string, len(got))
		for i, p := range got {
			lines[i] = p.String()
		}
		t.Errorf("%s: %d packets arrived, want none (%s): %s", e.name, len(got), why, summarize(lines))
	}
}

// collect returns everything that arrives on e within d.
func (e *endpoint) collect(d time.Duration) []packet {
	var got []packet
	end := time.After(d)
	for {
		select {
		case p := <-e.in:
			got = append(got, p)
		case <-end:
			return got
		}
	}
}

// summarize keeps failure messages readable when a broken relay sends
// thousands of packets.
func summarize(lines []string) string {
	const show = 8
	if len(lines) <= show {
		return strings.Join(lines, "; ")
	}
	return strings.Join(lines[:show], "; ") + fmt.Sprintf("; ... and %d more", len(lines)-show)
}

// seqRanges prints sequence numbers as compact ranges.
func seqRanges(seqs []uint16) string {
	if len(seqs) == 0 {
		return "none"
	}
	var parts []string
	start, prev := seqs[0], seqs[0]
	flush := func() {
		if start == prev {
			parts = append(parts, fmt.Sprint(start))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", start, prev))
		}
	}
	for _, s := range seqs[1:] {
		if s == prev+1 {
			prev = s
			continue
		}
		flush()
		start, prev = s, s
	}
	flush()
	return strings.Join(parts, ",")
}

// streamer sends one flow continuously, like a phone: one packet every
// interval, from a socket and to a destination that can change mid-stream
// (a re-INVITE).
type streamer struct {
	f     *flow
	every time.Duration
	mu    sync.Mutex
	from  *endpoint
	to    netip.AddrPort
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func startStreamer(f *flow, from *endpoint, to netip.AddrPort, every time.Duration) *streamer {
	s := &streamer{f: f, every: every, from: from, to: to, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *streamer) run() {
	defer close(s.done)
	tick := time.NewTicker(s.every)
	defer tick.Stop()
	for {
		s.mu.Lock()
		_, err := s.from.conn.WriteToUDPAddrPort(s.f.packet(s.f.next), s.to)
		if err != nil && s.err == nil {
			s.err = fmt.Errorf("%s: send %s to %s: %w", s.from.name, s.f.label, s.to, err)
		}
		s.f.next++
		s.mu.Unlock()
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// switchTo moves the stream to another socket and/or destination and
// returns the first sequence number sent after the switch.
func (s *streamer) switchTo(from *endpoint, to netip.AddrPort) uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from, s.to = from, to
	return s.f.next
}

// nextSeq is the sequence number the next packet will carry.
func (s *streamer) nextSeq() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.next
}

// halt stops the stream and returns the sequence number after the last one
// sent, and any send error.
func (s *streamer) halt() (uint16, error) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.next, s.err
}

// seqsOf returns the sequence numbers of f's packets among pkts that came
// from src, counting duplicates.
func seqsOf(pkts []packet, f *flow, src netip.AddrPort) (seqs map[uint16]int, other []packet) {
	seqs = map[uint16]int{}
	for _, p := range pkts {
		ssrc, seq, _, ok := identify(p.data)
		if ok && ssrc == f.ssrc && p.from == src && bytes.Equal(p.data, f.packet(seq)) {
			seqs[seq]++
			continue
		}
		other = append(other, p)
	}
	return seqs, other
}
