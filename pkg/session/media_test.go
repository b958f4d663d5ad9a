// SPDX-License-Identifier: Apache-2.0

package session

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	mplane "github.com/relayd/relayd/pkg/media"
)

// party is one call party's RTP and RTCP sockets on loopback.
type party struct {
	t         *testing.T
	rtp, rtcp *net.UDPConn
	seq       uint16
}

func newParty(t *testing.T, ip string) *party {
	t.Helper()
	p := &party{t: t}
	for {
		rtp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 1 || port == 65535 {
			rtp.Close()
			continue
		}
		rtcp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: port + 1})
		if err != nil {
			rtp.Close()
			continue
		}
		p.rtp, p.rtcp = rtp, rtcp
		break
	}
	t.Cleanup(func() { p.rtp.Close(); p.rtcp.Close() })
	return p
}

func (p *party) sdp() []byte {
	a := p.rtp.LocalAddr().(*net.UDPAddr)
	return []byte(fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n", a.IP, a.IP, a.Port))
}

func (p *party) holdSDP() []byte {
	a := p.rtp.LocalAddr().(*net.UDPAddr)
	return []byte(fmt.Sprintf("v=0\r\no=- 1 2 IN IP4 %s\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio %d RTP/AVP 8\r\na=sendonly\r\n", a.IP, a.Port))
}

func (p *party) send(to netip.AddrPort, n int) {
	p.t.Helper()
	pkt := make([]byte, 172)
	for i := 0; i < n; i++ {
		p.seq++
		pkt[0], pkt[1] = 0x80, 8
		binary.BigEndian.PutUint16(pkt[2:], p.seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(p.seq)*160)
		binary.BigEndian.PutUint32(pkt[8:], 0x1234)
		if _, err := p.rtp.WriteToUDPAddrPort(pkt, to); err != nil {
			p.t.Fatal(err)
		}
	}
}

// recv counts the RTP packets arriving within d, and checks they come from want.
func (p *party) recv(d time.Duration, want netip.AddrPort) int {
	p.t.Helper()
	buf := make([]byte, 2048)
	n := 0
	deadline := time.Now().Add(d)
	for {
		p.rtp.SetReadDeadline(deadline)
		_, from, err := p.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return n
		}
		if from != want {
			p.t.Errorf("packet from %v, want the relay's %v", from, want)
		}
		n++
	}
}

// newMediaManager runs a manager with a real media engine, both on one
// fake clock: packet times, learning windows and timeouts move only when the
// test advances it.
func newMediaManager(t *testing.T, mod func(*Config)) (*Manager, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	eng, err := mplane.NewEngine(mplane.Config{Workers: 2, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	m, _ := newTestManager(t, func(c *Config) {
		c.Media = eng
		c.Now = clk.now
		c.Interfaces = c.Interfaces[:1]
		if mod != nil {
			mod(c)
		}
	})
	return m, clk
}

// relayPorts returns the relay's RTP socket facing each party.
func relayPorts(t *testing.T, m *Manager, id string) (facingA, facingB netip.AddrPort) {
	t.Helper()
	info, err := m.Query(id, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range info.Tags {
		switch tag.Tag {
		case "A":
			facingA = tag.Medias[0].Streams[0].Local
		case "B":
			facingB = tag.Medias[0].Streams[0].Local
		}
	}
	return facingA, facingB
}

func setupCall(t *testing.T, m *Manager, id string, a, b *party, o Options) {
	t.Helper()
	if _, err := m.Offer(Signal{CallID: id, FromTag: "A", SDP: a.sdp(), Options: o}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Answer(Signal{CallID: id, FromTag: "A", ToTag: "B", SDP: b.sdp()}); err != nil {
		t.Fatal(err)
	}
}

func TestMediaFlowsThroughCall(t *testing.T) {
	m, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "media", a, b, Options{})
	// toA is the relay socket A talks to (advertised in the answer), toB the
	// one B talks to (advertised in the offer).
	toA, toB := relayPorts(t, m, "media")
	a.send(toA, 20)
	if got := b.recv(500*time.Millisecond, toB); got != 20 {
		t.Errorf("B received %d of 20", got)
	}
	b.send(toB, 15)
	if got := a.recv(500*time.Millisecond, toA); got != 15 {
		t.Errorf("A received %d of 15", got)
	}
	info, _ := m.Query("media", "", "")
	for _, tag := range info.Tags {
		st := tag.Medias[0].Streams[0]
		want := map[string]uint64{"A": 20, "B": 15}[tag.Tag]
		if st.In.Packets != want || st.In.Bytes != want*172 {
			t.Errorf("tag %s stream stats %+v, want %d packets in", tag.Tag, st.In, want)
		}
		if len(st.SSRCs) != 1 || st.SSRCs[0].SSRC != 0x1234 {
			t.Errorf("tag %s SSRCs %+v", tag.Tag, st.SSRCs)
		}
	}
	if info.RTP.Packets != 35 {
		t.Errorf("totals RTP %+v, want 35 packets", info.RTP)
	}
	zero := 0
	if _, err := m.Delete(DeleteRequest{CallID: "media", Options: Options{DeleteDelay: &zero}}); err != nil {
		t.Fatal(err)
	}
	s := m.Statistics()
	if s.RelayedPackets != 35 || s.OneWayStreams != 0 || s.ZeroWayStreams != 0 {
		t.Errorf("statistics after the call: %+v", s)
	}
	// The sockets are gone: nothing is relayed any more.
	a.send(toA, 5)
	if got := b.recv(200*time.Millisecond, toB); got != 0 {
		t.Errorf("deleted call still relays: %d packets", got)
	}
}

// A call with media lives, one without dies by timeout, a held one by
// silent-timeout; the engine stamps packets with the manager's clock, so
// time moves only when the test says.
func TestMediaTimeouts(t *testing.T) {
	m, clk := newMediaManager(t, func(c *Config) {
		c.Timeout, c.SilentTimeout, c.FinalTimeout = time.Second, 2*time.Second, 0
	})
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "live", a, b, Options{})
	setupCall(t, m, "dead", newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1"), Options{})
	held := newParty(t, "127.0.0.1")
	setupCall(t, m, "held", held, newParty(t, "127.0.0.1"), Options{})
	if _, err := m.Offer(Signal{CallID: "held", FromTag: "A", ToTag: "B", SDP: held.holdSDP()}); err != nil {
		t.Fatal(err)
	}
	toA, _ := relayPorts(t, m, "live")
	for i := range 16 {
		a.send(toA, 1)
		waitReceived(t, m, "live", uint64(i+1))
		clk.add(100 * time.Millisecond)
		m.Expire()
	}
	if got := m.List(0); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"held", "live"}) {
		t.Fatalf("after 1.6 s: %v, want [live held] (dead timed out)", got)
	}
	for range 19 {
		clk.add(100 * time.Millisecond)
		m.Expire()
	}
	if got := m.List(0); len(got) != 0 {
		t.Errorf("after 3.5 s: %v, want no calls", got)
	}
	s := m.Statistics()
	if s.Timeout != 2 || s.SilentTimeout != 1 || s.RelayedPackets < 16 {
		t.Errorf("timeouts %d, silent %d, relayed %d: want 2, 1 and >= 16", s.Timeout, s.SilentTimeout, s.RelayedPackets)
	}
}

// waitReceived waits until the call's sockets have received n packets.
func waitReceived(t *testing.T, m *Manager, id string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := m.lookup(id)
		if c == nil {
			t.Fatalf("call %s gone", id)
		}
		c.mu.Lock()
		got := c.liveCounters().packets
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s received %d packets, want %d", id, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMediaTOS(t *testing.T) {
	m, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	tos := 0x28
	setupCall(t, m, "tos", a, b, Options{TOS: &tos})
	c := m.lookup("tos")
	c.mu.Lock()
	got := c.tos
	c.mu.Unlock()
	if got != 0x28 {
		t.Errorf("call TOS %d, want %d", got, 0x28)
	}
}

// WebRTC→SIP style: A multiplexes RTCP (rtcp-mux, demux requested), B does
// not. A's RTCP sent on its one port reaches B's RTCP port from the relay's
// RTCP socket; B's RTCP reaches A on A's one port.
func TestMediaRTCPDemux(t *testing.T) {
	m, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	muxSDP := append(a.sdp(), []byte("a=rtcp-mux\r\n")...)
	if _, err := m.Offer(Signal{CallID: "demux", FromTag: "A", SDP: muxSDP, Options: Options{RTCPMux: []string{"demux"}}}); err != nil {
		t.Fatal(err)
	}
	ans, err := m.Answer(Signal{CallID: "demux", FromTag: "A", ToTag: "B", SDP: b.sdp()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ans), "a=rtcp-mux\r\n") {
		t.Fatalf("answer to the muxing party lacks rtcp-mux:\n%s", ans)
	}
	info, _ := m.Query("demux", "", "")
	var toA, toBRTCP netip.AddrPort
	for _, tag := range info.Tags {
		switch tag.Tag {
		case "A":
			toA = tag.Medias[0].Streams[0].Local
		case "B":
			toBRTCP = tag.Medias[0].Streams[1].Local
		}
	}
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0x12, 0x34} // RTCP RR, no report blocks
	if _, err := a.rtp.WriteToUDPAddrPort(rr, toA); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	b.rtcp.SetReadDeadline(time.Now().Add(time.Second))
	n, from, err := b.rtcp.ReadFromUDPAddrPort(buf)
	if err != nil || from != toBRTCP || string(buf[:n]) != string(rr) {
		t.Fatalf("B's RTCP port got %x from %v (%v), want the RR from %v", buf[:n], from, err, toBRTCP)
	}
	back := []byte{0x80, 201, 0, 1, 0, 0, 0x56, 0x78}
	if _, err := b.rtcp.WriteToUDPAddrPort(back, toBRTCP); err != nil {
		t.Fatal(err)
	}
	a.rtp.SetReadDeadline(time.Now().Add(time.Second))
	n, from, err = a.rtp.ReadFromUDPAddrPort(buf)
	if err != nil || from != toA || string(buf[:n]) != string(back) {
		t.Fatalf("A's one port got %x from %v (%v), want B's RR from %v", buf[:n], from, err, toA)
	}
}
