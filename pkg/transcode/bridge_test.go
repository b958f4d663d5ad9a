// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"

	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/ports"
	"github.com/relayd/relayd/test/testenv"
)

// The bridge's tests run on real UDP: the two parties are plain sockets on
// loopback, the relay's sockets come from a pkg/ports pool and are attached
// to a real media.Engine, and the bridge's stages sit in the streams'
// configurations the way the session layer puts them there.

func testEngine(t testing.TB, cfg media.Config) *media.Engine {
	t.Helper()
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	e, err := media.NewEngine(cfg)
	if err != nil {
		t.Fatalf("media engine: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func testPool(t testing.TB, cfg PoolConfig) *Pool {
	t.Helper()
	p := NewPool(cfg)
	t.Cleanup(p.Close)
	return p
}

// relayPorts is the loopback port pool of the relay's sockets (ports busy
// elsewhere on the machine are skipped).
func relayPorts(t testing.TB) *ports.Pool {
	t.Helper()
	pp, err := ports.NewPool(netip.MustParseAddr("127.0.0.1"), 46000, 46999)
	if err != nil {
		t.Fatal(err)
	}
	return pp
}

func udpSocket(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		testenv.Unavailable(t, "cannot bind 127.0.0.1: %v", err)
	}
	_ = c.SetReadBuffer(1 << 20)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// party is a phone or a browser: an RTP socket, and an RTCP socket when it
// does not multiplex, collecting what the relay sends it.
type party struct {
	t        testing.TB
	conn     *net.UDPConn // RTP, and RTCP when muxed
	rconn    *net.UDPConn // RTCP; nil when muxed
	relay    netip.AddrPort
	relayRTC netip.AddrPort

	mu       sync.Mutex
	rtp      [][]byte
	rtcpMux  [][]byte // RTCP that came to the RTP socket
	rtcpPort [][]byte // RTCP that came to the RTCP socket
}

func (p *party) start() {
	read := func(c *net.UDPConn, rtcpSocket bool) {
		buf := make([]byte, 4096)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			p.mu.Lock()
			switch {
			case n >= 2 && b[1] >= 192 && b[1] <= 223 && rtcpSocket:
				p.rtcpPort = append(p.rtcpPort, b)
			case n >= 2 && b[1] >= 192 && b[1] <= 223:
				p.rtcpMux = append(p.rtcpMux, b)
			case !rtcpSocket:
				p.rtp = append(p.rtp, b)
			default:
				p.rtcpPort = append(p.rtcpPort, b) // not RTCP: the checks find it
			}
			p.mu.Unlock()
		}
	}
	go read(p.conn, false)
	if p.rconn != nil {
		go read(p.rconn, true)
	}
}

func (p *party) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, p.relay); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func (p *party) sendRTCP(b []byte) {
	p.t.Helper()
	c := p.conn
	if p.rconn != nil {
		c = p.rconn
	}
	if _, err := c.WriteToUDPAddrPort(b, p.relayRTC); err != nil {
		p.t.Fatalf("send RTCP: %v", err)
	}
}

func (p *party) rtcpOnRTPSocket() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.rtcpMux)
}

// rtcpIn is every RTCP packet the party got, on whichever socket.
func (p *party) rtcpIn() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append(append([][]byte(nil), p.rtcpMux...), p.rtcpPort...)
}

func (p *party) rtpIn() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.rtp...)
}

// waitRTP waits until the party has n RTP packets.
func (p *party) waitRTP(n int) [][]byte {
	p.t.Helper()
	waitUntil(p.t, "RTP at the party", func() bool { return len(p.rtpIn()) >= n })
	return p.rtpIn()
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// bridgeCall is one transcoded call: a bridge, its two parties and the
// relay streams facing them.
type bridgeCall struct {
	b       *Bridge
	parties [2]*party
	rtp     [2]*media.Stream
	rtcp    [2]*media.Stream // == rtp when the side multiplexes
}

// newBridgeCall attaches the relay's sockets (one per side when mux[i],
// else RTP and RTCP), makes the bridge over them and configures the streams
// with its stages, as the session layer does.
func newBridgeCall(t testing.TB, e *media.Engine, pool *Pool, pp *ports.Pool, cfg BridgeConfig, mux [2]bool) *bridgeCall {
	t.Helper()
	return attachCall(t, e, pool, pp, cfg, mux, true)
}

// attachCall is newBridgeCall; with listen false nobody reads the parties'
// sockets (the kernel drops what overflows them), so that the test process
// allocates nothing per packet besides what it measures.
func attachCall(t testing.TB, e *media.Engine, pool *Pool, pp *ports.Pool, cfg BridgeConfig, mux [2]bool, listen bool) *bridgeCall {
	t.Helper()
	g := e.NewGroup()
	c := &bridgeCall{}
	for i := range 2 {
		n := 2
		if mux[i] {
			n = 1
		}
		alloc, err := pp.Allocate(n)
		if err != nil {
			t.Fatalf("relay ports: %v", err)
		}
		var ss []*media.Stream
		for j := range n {
			alloc.HandOver(j)
			s, err := e.Attach(g, media.Socket{FD: alloc.Sockets[j].FD, Local: alloc.Sockets[j].Local}, alloc.SocketClosed)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Detach)
			ss = append(ss, s)
		}
		c.rtp[i], c.rtcp[i] = ss[0], ss[n-1]
		p := &party{t: t, conn: udpSocket(t), relay: c.rtp[i].LocalAddr(), relayRTC: c.rtcp[i].LocalAddr()}
		if !mux[i] {
			p.rconn = udpSocket(t)
			cfg.Sides[i].RTCP = c.rtcp[i]
		}
		if listen {
			p.start()
		}
		c.parties[i] = p
		cfg.Sides[i].RTP = c.rtp[i]
	}
	b, err := pool.NewBridge(cfg)
	if err != nil {
		t.Fatalf("NewBridge: %v", err)
	}
	t.Cleanup(b.Close)
	c.b = b
	for i := range 2 {
		o := 1 - i
		p := c.parties[i]
		c.rtp[i].Configure(media.StreamConfig{Sink: c.rtp[o], Peer: addrOf(p.conn),
			Stages: []media.Stage{b.RTPStage(i)}})
		if !mux[i] {
			c.rtcp[i].Configure(media.StreamConfig{Sink: c.rtcp[o], Peer: addrOf(p.rconn), RTCP: true,
				Stages: []media.Stage{b.RTCPStage(i)}})
		}
	}
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func leg(f Format) Leg { return Leg{Format: f, PT: staticPT(f)} }

// pace calls fn(i) for i < n every interval, against absolute deadlines.
func pace(n int, interval time.Duration, fn func(i int)) {
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		fn(i)
	}
}

// decodeAt decodes the audio packets (payload type pt) of one received
// stream with a fresh decoder of f at rate, after checking they are one RTP
// stream: one SSRC, consecutive sequence numbers, timestamps step apart.
func decodeAt(t *testing.T, pkts [][]byte, f Format, rate int, step uint32) []int16 {
	t.Helper()
	r := newReceiver(t, f, rate)
	r.take(pkts)
	var audio []rxPacket
	for i, p := range r.pkts {
		if i > 0 && (p.ssrc != r.pkts[0].ssrc || p.seq != r.pkts[i-1].seq+1) {
			t.Fatalf("packet %d: ssrc %#x seq %d after %#x/%d", i, p.ssrc, p.seq, r.pkts[0].ssrc, r.pkts[i-1].seq)
		}
		if p.pt == r.pt {
			audio = append(audio, p)
		}
	}
	for i := 1; i < len(audio); i++ {
		if audio[i].ts-audio[i-1].ts != step {
			t.Fatalf("audio packet %d: timestamp step %d, want %d", i, audio[i].ts-audio[i-1].ts, step)
		}
	}
	return r.pcm
}

// A 1 kHz tone sent by each party reaches the other in its codec, through
// real sockets, the media engine, the stages and the pool: both ways at
// once.
func TestBridgeTone(t *testing.T) {
	e := testEngine(t, media.Config{})
	pool := testPool(t, PoolConfig{Workers: 1})
	pp := relayPorts(t)
	const freq, amp = 1000.0, 8000.0
	for _, pr := range [][2]Format{{fPCMU, fPCMA}, {fG722, fPCMU}, {fOpus, fPCMU}} {
		a, b := pr[0], pr[1]
		t.Run(a.Name+"⇄"+b.Name, func(t *testing.T) {
			if hasOpus(a, b) {
				needOpus(t)
			}
			call := newBridgeCall(t, e, pool, pp, BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(a)}, {Leg: leg(b)}},
				CallID: "tone-" + a.Name}, [2]bool{true, true})
			fs := [2]Format{a, b}
			var pkts [2][][]byte
			for i, f := range fs {
				s := newSender(t, f, "", 20, sourceRate(f))
				s.ssrc = 0x1000 + uint32(i)
				pkts[i] = s.audio(tone(sourceRate(f), freq, sourceRate(f), amp))
			}
			pace(50, 2*time.Millisecond, func(i int) {
				call.parties[0].send(pkts[0][i])
				call.parties[1].send(pkts[1][i])
			})
			for to := range 2 {
				f := fs[to]
				got := call.parties[to].waitRTP(50)
				c, _ := NewRegistry().Lookup(f)
				rate := sourceRate(f)
				pcm := decodeAt(t, got, f, rate, uint32(c.ClockRate/50))
				checkTone(t, fs[1-to].Name+"→"+f.Name, pcm[rate/10:], rate, freq, amp/math.Sqrt2, 1)
			}
			st := call.b.Stats()
			for i, ss := range st.Sides {
				c, _ := NewRegistry().Lookup(fs[i])
				name := Format{Name: c.Name, ClockRate: c.ClockRate, Channels: c.Channels}.String()
				if ss.In != 50 || ss.Out != 50 || ss.Errors.Total() != 0 || ss.CodecReceived != name || ss.CodecSent != name {
					t.Errorf("side %d: %+v", i, ss)
				}
			}
			// Nothing was forwarded as it came: every packet a party got
			// is in its own codec's payload type.
			for i := range 2 {
				for _, p := range call.parties[i].rtpIn() {
					if p[1]&0x7f != staticPT(fs[i]) {
						t.Fatalf("party %d got payload type %d", i, p[1]&0x7f)
					}
				}
			}
		})
	}
}

// rxPackets parses what a party received.
func rxPackets(t *testing.T, pkts [][]byte) []rxPacket {
	t.Helper()
	var out []rxPacket
	for _, b := range pkts {
		h, ok := parseRTP(b)
		if !ok {
			t.Fatalf("bad RTP % x", b)
		}
		out = append(out, rxPacket{marker: h.marker, pt: h.pt, seq: h.seq, ts: h.ts, ssrc: h.ssrc, payload: h.payload})
	}
	return out
}

// A browser's digit (telephone-event/48000 with Opus) reaches the SIP phone
// as telephone-event/8000 with durations divided by 6, and the phone's
// digit reaches the browser multiplied by 6.
func TestBridgeDTMF(t *testing.T) {
	needOpus(t)
	e := testEngine(t, media.Config{})
	pool := testPool(t, PoolConfig{Workers: 1})
	browser := Leg{Format: fOpus, PT: 111, Events: &EventFormat{PT: 110}}
	phone := Leg{Format: fPCMU, PT: 0, Events: &EventFormat{PT: 101, Fmtp: "0-16"}}
	call := newBridgeCall(t, e, pool, relayPorts(t), BridgeConfig{Sides: [2]BridgeSide{{Leg: browser}, {Leg: phone}}},
		[2]bool{true, false})
	type dir struct {
		f                 Format
		evPT, outPT       uint8
		clock, outStep    int
		outAudio, outRate uint32
	}
	dirs := [2]dir{
		{fOpus, 110, 101, 48000, 160, 160, 8000},
		{fPCMU, 101, 110, 8000, 960, 960, 48000},
	}
	var streams [2][][]byte
	for i, d := range dirs {
		s := newSender(t, d.f, "", 20, sourceRate(d.f))
		s.ssrc += uint32(i)
		sig := tone(sourceRate(d.f), 440, sourceRate(d.f), 8000)
		pkts := s.audio(sig[:len(sig)/5]) // 200 ms
		pkts = append(pkts, browserDigit(s, d.evPT, 1, d.clock)...)
		pkts = append(pkts, s.audio(sig[:len(sig)/5])...)
		streams[i] = pkts
	}
	pace(len(streams[0]), 2*time.Millisecond, func(i int) {
		call.parties[0].send(streams[0][i])
		call.parties[1].send(streams[1][i])
	})
	for i, d := range dirs {
		to := call.parties[1-i]
		// 10 audio, 7 event packets, then 10 audio again.
		got := rxPackets(t, to.waitRTP(27))
		start := got[0].ts + 10*d.outAudio
		checkDigit(t, got, d.outPT, 1, start, uint16(d.outStep))
	}
	st := call.b.Stats()
	for i, ss := range st.Sides {
		if ss.Events != 1 || ss.Transcoder.EventPackets != 7 {
			t.Errorf("side %d: events %d, event packets %d", i, ss.Events, ss.Transcoder.EventPackets)
		}
	}
}

// With DetectDTMF, in-band digits from a party without telephone-event
// reach the other party, which has it, as events.
func TestBridgeDetectDTMF(t *testing.T) {
	e := testEngine(t, media.Config{})
	pool := testPool(t, PoolConfig{Workers: 1})
	phoneA := Leg{Format: fPCMA, PT: 8}
	phoneB := Leg{Format: fPCMU, PT: 0, Events: &EventFormat{PT: 101}}
	call := newBridgeCall(t, e, pool, relayPorts(t), BridgeConfig{Sides: [2]BridgeSide{{Leg: phoneA}, {Leg: phoneB}},
		DetectDTMF: true}, [2]bool{true, true})
	s := newSender(t, fPCMA, "", 20, 8000)
	pkts := s.audio(dtmfSignal(t, 8000, "15#", 100, 100, 10))
	pace(len(pkts), 2*time.Millisecond, func(i int) { call.parties[0].send(pkts[i]) })
	var digits []byte
	waitUntil(t, "three digits", func() bool {
		digits = digits[:0]
		ends := 0
		for _, p := range call.parties[1].rtpIn() {
			h, _ := parseRTP(p)
			if h.pt != 101 {
				continue
			}
			ev, err := ParseEvent(h.payload)
			if err != nil {
				t.Fatal(err)
			}
			if h.marker {
				digits = append(digits, DigitOf(ev.Code))
			}
			if ev.End {
				ends++
			}
		}
		return ends == 9
	})
	if string(digits) != "15#" {
		t.Errorf("digits %q, want 15#", digits)
	}
	if st := call.b.Stats(); st.Sides[0].Events != 3 || st.Sides[1].Events != 0 {
		t.Errorf("events: %d, %d", st.Sides[0].Events, st.Sides[1].Events)
	}
}

// fakeClock is the pool's clock in the RTCP tests: it moves only when the
// test says so, which makes every time-derived field exact.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// parseCompound parses a relay RTCP packet with pion/rtcp, which the test
// trusts to read RFC 3550 independently of the code under test.
func parseCompound(t *testing.T, b []byte) (*rtcp.SenderReport, *rtcp.ReceiverReport, *rtcp.SourceDescription) {
	t.Helper()
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatalf("relay RTCP does not parse: %v (% x)", err, b)
	}
	var sr *rtcp.SenderReport
	var rr *rtcp.ReceiverReport
	var sdes *rtcp.SourceDescription
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			sr = p
		case *rtcp.ReceiverReport:
			rr = p
		case *rtcp.SourceDescription:
			sdes = p
		default:
			t.Fatalf("unexpected RTCP %T", p)
		}
	}
	if (sr == nil) == (rr == nil) || sdes == nil {
		t.Fatalf("compound packet: sr %v rr %v sdes %v", sr != nil, rr != nil, sdes != nil)
	}
	return sr, rr, sdes
}

// Each party gets RTCP from the relay about the streams of its own leg (an
// SR with the relay's sender info, a report block on what it sends with
// its LSR/DLSR, a CNAME), on its RTCP socket or multiplexed; no RTCP of
// either party ever reaches the other; what a party reports on the relay's
// stream (loss, jitter, round trip) shows in the bridge's stats.
func TestBridgeRTCP(t *testing.T) {
	e := testEngine(t, media.Config{})
	clk := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	pool := testPool(t, PoolConfig{Workers: 1, Now: clk.Now})
	fs := [2]Format{fPCMU, fG722}
	call := newBridgeCall(t, e, pool, relayPorts(t),
		BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fs[0])}, {Leg: leg(fs[1])}}}, [2]bool{true, false})
	ssrcs := [2]uint32{0xa1a1a1a1, 0xb2b2b2b2}
	var pkts [2][][]byte
	for i, f := range fs {
		s := newSender(t, f, "", 20, sourceRate(f))
		s.ssrc = ssrcs[i]
		pkts[i] = s.audio(tone(sourceRate(f), 1000, sourceRate(f), 8000))
	}
	pkts[0] = append(pkts[0][:10], pkts[0][11:]...) // party 0 loses one packet
	// Real time: the jitter the relay measures is that of the sockets.
	pace(50, 20*time.Millisecond, func(i int) {
		if i < len(pkts[0]) {
			call.parties[0].send(pkts[0][i])
		}
		call.parties[1].send(pkts[1][i])
	})
	var got [2][][]byte
	for i := range 2 {
		got[i] = call.parties[i].waitRTP(50) // party 1 gets the lost packet concealed
	}

	// Each party's SR: consumed by the bridge, never forwarded.
	partyNTP := [2]uint64{0x1122334455667788, 0x99aabbccddeeff00}
	for i := range 2 {
		raw, err := rtcp.Marshal([]rtcp.Packet{
			&rtcp.SenderReport{SSRC: ssrcs[i], NTPTime: partyNTP[i], RTPTime: 1, PacketCount: 50, OctetCount: 8000},
			&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: ssrcs[i],
				Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "party"}}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		call.parties[i].sendRTCP(raw)
	}
	waitUntil(t, "the parties' SRs read", func() bool {
		st := call.b.Stats()
		return st.Sides[0].RTCPIn == 1 && st.Sides[1].RTCPIn == 1
	})
	time.Sleep(2 * maxSleep)
	for i := range 2 {
		if n := len(call.parties[i].rtcpIn()); n != 0 {
			t.Fatalf("party %d got %d RTCP packets before any report was due", i, n)
		}
	}

	// Past the first report's time: each party gets one.
	clk.advance(2 * time.Second)
	wantNTP := ntpTime(clk.Now().UnixNano())
	for i := range 2 {
		p := call.parties[i]
		waitUntil(t, "RTCP at the party", func() bool { return len(p.rtcpIn()) >= 1 })
		if i == 1 && p.rtcpOnRTPSocket() != 0 {
			t.Errorf("party 1 (no rtcp-mux) got RTCP on its RTP socket")
		}
		sr, _, sdes := parseCompound(t, p.rtcpIn()[0])
		if sr == nil {
			t.Fatalf("party %d: no SR", i)
		}
		rx := rxPackets(t, got[i])
		var octets uint32
		for _, r := range rx {
			octets += uint32(len(r.payload))
		}
		last := rx[len(rx)-1]
		c, _ := NewRegistry().Lookup(fs[i])
		if sr.SSRC != last.ssrc || sr.NTPTime != wantNTP || sr.PacketCount != uint32(len(rx)) ||
			sr.OctetCount != octets || sr.RTPTime != last.ts+uint32(2*c.ClockRate) {
			t.Errorf("party %d: SR %+v; want ssrc %#x ntp %#x packets %d octets %d rtp %d",
				i, sr, last.ssrc, wantNTP, len(rx), octets, last.ts+uint32(2*c.ClockRate))
		}
		if len(sr.Reports) != 1 {
			t.Fatalf("party %d: %d report blocks", i, len(sr.Reports))
		}
		rb := sr.Reports[0]
		t.Logf("party %d: SR ssrc %#x ntp %#x rtp %d packets %d octets %d; block %+v; CNAME %q", i, sr.SSRC,
			sr.NTPTime, sr.RTPTime, sr.PacketCount, sr.OctetCount, rb, sdes.Chunks[0].Items[0].Text)
		sent, _ := parseRTP(pkts[i][len(pkts[i])-1])
		wantLost, wantFraction := uint32(0), uint8(0)
		if i == 0 {
			wantLost, wantFraction = 1, 256/50
		}
		if rb.SSRC != ssrcs[i] || rb.LastSequenceNumber != uint32(sent.seq) || rb.TotalLost != wantLost ||
			rb.FractionLost != wantFraction || rb.LastSenderReport != uint32(partyNTP[i]>>16) || rb.Delay != 2*65536 {
			t.Errorf("party %d: report block %+v; want ssrc %#x ext seq %d lost %d fraction %d lsr %#x dlsr %d",
				i, rb, ssrcs[i], sent.seq, wantLost, wantFraction, uint32(partyNTP[i]>>16), 2*65536)
		}
		// 20 ms pacing over loopback: a few ms at most, even loaded.
		if jms := float64(rb.Jitter) * 1000 / float64(c.ClockRate); jms > 40 {
			t.Errorf("party %d: jitter %.1f ms", i, jms)
		}
		if len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != sr.SSRC || len(sdes.Chunks[0].Items) != 1 ||
			sdes.Chunks[0].Items[0].Type != rtcp.SDESCNAME || len(sdes.Chunks[0].Items[0].Text) < 8 {
			t.Errorf("party %d: SDES %+v", i, sdes)
		}
	}

	// Party 0 reports on the relay's stream: its RR names the relay's SR;
	// it arrives 0.5 s after that SR with 0.25 s of DLSR, so the round
	// trip is 0.25 s.
	relaySR, _, _ := parseCompound(t, call.parties[0].rtcpIn()[0])
	clk.advance(500 * time.Millisecond)
	rr, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: ssrcs[0], Reports: []rtcp.ReceptionReport{{
		SSRC: relaySR.SSRC, FractionLost: 12, TotalLost: 3, LastSequenceNumber: 5, Jitter: 80,
		LastSenderReport: uint32(relaySR.NTPTime >> 16), Delay: 65536 / 4,
	}}}})
	call.parties[0].sendRTCP(rr)
	waitUntil(t, "the party's RR read", func() bool { return call.b.Stats().Sides[0].RTCPIn == 2 })
	rep := call.b.Stats().Sides[0].Report
	t.Logf("party 0 reported: %+v", rep)
	if math.Abs(rep.RTTMs-250) > 0.01 || rep.FractionLost != 12.0/256 || rep.CumulativeLost != 3 ||
		rep.JitterMs != 10 || !rep.At.Equal(clk.Now()) {
		t.Errorf("party 0's report: %+v", rep)
	}

	// Every RTCP packet a party got is the relay's own, about its leg.
	for i := range 2 {
		for _, b := range call.parties[i].rtcpIn() {
			sr, rr, sdes := parseCompound(t, b)
			ssrc := sdes.Chunks[0].Source
			if sr != nil && sr.SSRC != ssrc || rr != nil && rr.SSRC != ssrc || ssrc == ssrcs[0] || ssrc == ssrcs[1] {
				t.Errorf("party %d got RTCP of another source: % x", i, b)
			}
		}
	}
	st := call.b.Stats()
	for i, ss := range st.Sides {
		if ss.RTCPOut < 1 || ss.Errors.Total() != 0 {
			t.Errorf("side %d: %+v", i, ss)
		}
	}
	if st.Sides[0].Lost != 1 || st.Sides[0].Concealed != 1 {
		t.Errorf("side 0: lost %d concealed %d", st.Sides[0].Lost, st.Sides[0].Concealed)
	}
}

// junk is deterministic garbage.
func junk(r *lcg, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.next() >> 24)
	}
	return b
}

// Garbage of every kind from one party is refused and counted; the bridge
// goes on transcoding what is good, and another call on the same worker
// never notices.
func TestBridgeHostile(t *testing.T) {
	e := testEngine(t, media.Config{MaxPacketSize: 4096})
	pool := testPool(t, PoolConfig{Workers: 1})
	pp := relayPorts(t)
	formats := []Format{fG722}
	if opusBuilt {
		formats = append(formats, fOpus)
	}
	for _, hf := range formats {
		t.Run(hf.Name, func(t *testing.T) {
			bad := Leg{Format: hf, PT: staticPT(hf), Events: &EventFormat{PT: 101}, CN: &CNFormat{PT: 13}}
			hostile := newBridgeCall(t, e, pool, pp, BridgeConfig{Sides: [2]BridgeSide{{Leg: bad}, {Leg: leg(fPCMU)}}},
				[2]bool{true, false})
			calm := newBridgeCall(t, e, pool, pp, BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fPCMU)}, {Leg: leg(fPCMA)}}},
				[2]bool{true, true})
			if hostile.b.w != calm.b.w {
				t.Fatal("the two calls are not on one worker")
			}
			hs := newSender(t, hf, "", 20, sourceRate(hf))
			hsig := tone(2*sourceRate(hf), 1000, sourceRate(hf), 8000)
			cs := newSender(t, fPCMU, "", 20, 8000)
			cpkts := cs.audio(tone(16000, 1000, 8000, 8000))
			rnd := lcg(3)
			hp := hostile.parties[0]
			f := hs.frame()
			pace(100, 2*time.Millisecond, func(i int) {
				calm.parties[0].send(cpkts[i])
				p := hs.audio(hsig[i*f : (i+1)*f])[0]
				hp.send(p)
				if i >= 70 {
					return // the last 600 ms are clean
				}
				switch i % 10 {
				case 1: // garbage in the audio payload type
					hp.send(hs.rtp(hs.pt, false, hs.ts, junk(&rnd, 1+int(rnd.next()%400))))
				case 2: // not RTP: random bytes, truncated headers
					hp.send(append([]byte{0x40}, junk(&rnd, int(rnd.next()%50))...))
					hp.send(p[:min(len(p), 11)])
				case 3: // an unknown payload type, an empty payload, a short event
					hp.send(hs.rtp(77, false, hs.ts, junk(&rnd, 10)))
					hp.send(hs.rtp(hs.pt, false, hs.ts, nil))
					hp.send(hs.rtp(101, false, hs.ts, junk(&rnd, 3)))
				case 4: // timestamp jumps both ways, a new SSRC, a sequence jump
					hs.ts += 1 << 30
				case 5:
					hs.ts -= 1 << 29
					hs.ssrc++
				case 6:
					hs.seq += 20000
				case 7: // longer than a queue slot; longer than 120 ms of audio
					hp.send(hs.rtp(hs.pt, false, hs.ts, junk(&rnd, 3000)))
					hp.send(hs.rtp(hs.pt, false, hs.ts, junk(&rnd, 1900)))
				case 8: // RTCP whose second packet overruns; RTP on an RTCP port
					sr := make([]byte, 28+8)
					sr[0], sr[1], sr[3] = 0x80, 200, 6
					sr[28], sr[29], sr[31] = 0x80, 202, 40
					hp.sendRTCP(sr)
					hostile.parties[1].sendRTCP(cpkts[0])
				}
			})
			// The calm call is untouched.
			got := calm.parties[1].waitRTP(100)
			pcm := decodeAt(t, got, fPCMA, 8000, 160)
			checkTone(t, "calm call", pcm[800:], 8000, 1000, 8000/math.Sqrt2, 1)
			if st := calm.b.Stats(); st.Sides[0].Errors.Total() != 0 || st.Sides[1].Out != 100 {
				t.Errorf("calm call: %+v", st.Sides)
			}
			// The hostile call counted each kind, and its clean tail came out
			// as a tone.
			var st BridgeStats
			waitUntil(t, "hostile packets counted", func() bool {
				st = hostile.b.Stats()
				// 100 good packets, and per ten: a garbage payload, three
				// refused ones and an over-long one (the rest never reach
				// the worker).
				return st.Sides[0].In >= 100+7*5
			})
			errs := st.Sides[0].Errors
			if errs.NotMedia != 14 || errs.UnknownPT != 7 || errs.Malformed < 14 ||
				errs.Oversize != 7 || errs.BadRTCP != 7 || st.Sides[1].Errors.NotMedia != 7 ||
				st.Sides[0].Transcoder.SSRCChanges != 7 || st.Sides[0].Transcoder.Resyncs == 0 {
				t.Errorf("hostile side: %+v; errors %v", st.Sides[0].Transcoder, errs.ByReason())
			}
			if hf.Name == "opus" && errs.Undecodable == 0 {
				t.Errorf("no garbage Opus refused: %v", errs.ByReason())
			}
			hout := hostile.parties[1].rtpIn()
			var tail []byte
			for _, b := range hout[len(hout)-20:] {
				h, _ := parseRTP(b)
				tail = append(tail, h.payload...)
			}
			pcm = make([]int16, len(tail))
			for i, c := range tail {
				pcm[i] = UlawDecode(c)
			}
			if got := DominantFrequency(pcm[80:], 8000, 200, 3000, 10); math.Abs(got-1000) > 20 {
				t.Errorf("hostile call's clean tail: %.0f Hz", got)
			}
			ps := pool.Stats()
			if ps.Errors.Oversize < 7 || ps.Errors.NotMedia < 14 || ps.PacketsIn < 200 {
				t.Errorf("pool stats %+v", ps)
			}
		})
	}
}

// Closing a bridge while both parties send, with Stats read all along: no
// race, the stages drop from then on, the pool's other bridges go on, and
// a pool closed under traffic leaves its bridges inert.
func TestBridgeCloseWhileFlowing(t *testing.T) {
	e := testEngine(t, media.Config{Workers: 2})
	pool := NewPool(PoolConfig{Workers: 2})
	defer pool.Close()
	pp := relayPorts(t)
	mk := func() *bridgeCall {
		return newBridgeCall(t, e, pool, pp, BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fPCMU)}, {Leg: leg(fG722)}}},
			[2]bool{true, false})
	}
	a, other := mk(), mk()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, c := range []*bridgeCall{a, other} {
		for i, f := range []Format{fPCMU, fG722} {
			pkts := newSender(t, f, "", 20, sourceRate(f)).audio(tone(sourceRate(f)*10, 440, sourceRate(f), 8000))
			wg.Go(func() {
				for j := 0; !stop.Load(); j++ {
					c.parties[i].send(pkts[j%len(pkts)])
					if j%5 == 0 {
						c.parties[i].sendRTCP([]byte{0x80, 201, 0, 1, 1, 2, 3, 4})
					}
					time.Sleep(200 * time.Microsecond)
				}
			})
		}
	}
	wg.Go(func() {
		for !stop.Load() {
			_ = a.b.Stats()
			_ = pool.Stats()
			time.Sleep(100 * time.Microsecond)
		}
	})
	waitUntil(t, "traffic through the bridge", func() bool { return a.b.Stats().Sides[1].Out > 100 })
	var closers sync.WaitGroup
	for range 3 {
		closers.Go(a.b.Close)
	}
	closers.Wait()
	if !a.b.Stats().Closed {
		t.Fatal("not closed")
	}
	// The worker drops the bridge's state without anyone waiting for it.
	waitUntil(t, "the worker drops the state", func() bool { return a.b.work.Load() == nil })
	before := a.b.Stats()
	dropped := a.rtp[0].Stats().Dropped
	time.Sleep(100 * time.Millisecond)
	after := a.b.Stats()
	if after.Sides[0].In != before.Sides[0].In || after.Sides[1].Out != before.Sides[1].Out {
		t.Errorf("closed bridge still transcodes: %+v → %+v", before.Sides, after.Sides)
	}
	if a.rtp[0].Stats().Dropped <= dropped {
		t.Error("the closed bridge's stage does not drop")
	}
	if after.Sides[0].Transcoder.In == 0 {
		t.Error("a closed bridge's transcoder counters are gone")
	}
	o1 := other.b.Stats().Sides[1].Out
	waitUntil(t, "the other bridge goes on", func() bool { return other.b.Stats().Sides[1].Out > o1+50 })
	if got := pool.Stats().Bridges; got != 1 {
		t.Errorf("pool has %d open bridges, want 1", got)
	}

	pool.Close() // under traffic
	o2 := other.b.Stats().Sides[1].Out
	time.Sleep(50 * time.Millisecond)
	if other.b.Stats().Sides[1].Out != o2 {
		t.Error("a bridge of a closed pool still transcodes")
	}
	stop.Store(true)
	wg.Wait()
	other.b.Close()
	if _, err := pool.NewBridge(BridgeConfig{}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("NewBridge after Close: %v", err)
	}
}

// A full queue drops and counts instead of waiting.
func TestBridgeQueueFull(t *testing.T) {
	e := testEngine(t, media.Config{})
	pool := newPool(PoolConfig{Workers: 1, QueueLen: 3}) // 4 slots; no worker takes yet
	defer pool.Close()
	call := newBridgeCall(t, e, pool, relayPorts(t), BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fPCMU)}, {Leg: leg(fPCMA)}}},
		[2]bool{true, true})
	pkts := newSender(t, fPCMU, "", 20, 8000).audio(tone(8000, 1000, 8000, 8000))
	st := call.b.RTPStage(0)
	if st.Kernel() {
		t.Error("a transcoding stage lets the kernel forward")
	}
	var verdicts []media.Verdict
	for i := range 6 {
		p := &media.Packet{Data: pkts[i], Kind: media.KindRTP, NowNs: time.Now().UnixNano()}
		verdicts = append(verdicts, st.Handle(p))
	}
	want := []media.Verdict{media.Consume, media.Consume, media.Consume, media.Consume, media.Drop, media.Drop}
	for i := range want {
		if verdicts[i] != want[i] {
			t.Fatalf("verdicts %v, want %v", verdicts, want)
		}
	}
	if s := pool.Stats(); s.Drops != 2 || s.Errors.QueueFull != 2 {
		t.Errorf("pool stats %+v", s)
	}
	pool.start()
	got := call.parties[1].waitRTP(4)
	if len(got) != 4 {
		t.Errorf("%d packets out of the 4 queued", len(got))
	}
	// Other kinds: STUN and DTLS go on, anything else is dropped.
	for _, tc := range []struct {
		kind media.Kind
		want media.Verdict
	}{{media.KindSTUN, media.Continue}, {media.KindDTLS, media.Continue}, {media.KindOther, media.Drop}} {
		if v := st.Handle(&media.Packet{Data: []byte{1, 2, 3}, Kind: tc.kind}); v != tc.want {
			t.Errorf("%v: %v, want %v", tc.kind, v, tc.want)
		}
		if v := call.b.RTCPStage(0).Handle(&media.Packet{Data: []byte{1, 2, 3}, Kind: tc.kind}); v != tc.want {
			t.Errorf("RTCP stage, %v: %v, want %v", tc.kind, v, tc.want)
		}
	}
	if v := call.b.RTCPStage(0).Handle(&media.Packet{Data: pkts[7], Kind: media.KindRTP}); v != media.Drop {
		t.Errorf("RTP on the RTCP stage: %v", v)
	}
}

// NewBridge says what is wrong with a configuration.
func TestNewBridgeErrors(t *testing.T) {
	e := testEngine(t, media.Config{})
	pool := testPool(t, PoolConfig{Workers: 1})
	pp := relayPorts(t)
	alloc, err := pp.Allocate(1)
	if err != nil {
		t.Fatal(err)
	}
	alloc.HandOver(0)
	s, err := e.Attach(e.NewGroup(), media.Socket{FD: alloc.Sockets[0].FD, Local: alloc.Sockets[0].Local}, alloc.SocketClosed)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Detach()
	side := func(f Format) BridgeSide { return BridgeSide{Leg: leg(f), RTP: s} }
	for _, tc := range []struct {
		name string
		cfg  BridgeConfig
		is   error
		text string
	}{
		{"no stream", BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fPCMU)}, side(fPCMA)}}, ErrBadConfig, "side 0"},
		{"unknown codec", BridgeConfig{Sides: [2]BridgeSide{side(Format{Name: "G729", ClockRate: 8000}), side(fPCMA)}},
			ErrUnknownCodec, "G729"},
		{"bad ptime", BridgeConfig{Sides: [2]BridgeSide{side(fPCMU), {Leg: Leg{Format: fPCMA, PT: 8, PTime: 7}, RTP: s}}},
			ErrBadParams, "7 ms"},
	} {
		if _, err := pool.NewBridge(tc.cfg); !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	_, err = pool.NewBridge(BridgeConfig{Sides: [2]BridgeSide{side(fOpus), side(fPCMU)}})
	if opusBuilt != (err == nil) {
		t.Errorf("Opus bridge with opusBuilt=%v: %v", opusBuilt, err)
	}
	if !opusBuilt && (!errors.Is(err, ErrCodecUnavailable) || !strings.Contains(err.Error(), "opus")) {
		t.Errorf("no Opus: %v", err)
	}
	if got := pool.Stats().Bridges; got != 0 && !opusBuilt || got != 1 && opusBuilt {
		t.Errorf("%d bridges open", got)
	}
}

// A pool whose worker never runs dry (a sender far faster than the codec)
// closes without working through its backlog: what is queued is
// discarded.
func TestPoolCloseUnderOverload(t *testing.T) {
	e := testEngine(t, media.Config{})
	pool := NewPool(PoolConfig{Workers: 1, QueueLen: 1024})
	call := attachCall(t, e, pool, relayPorts(t), BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(fPCMU)}, {Leg: leg(fG722)}}},
		[2]bool{true, true}, false)
	pkts := newSender(t, fPCMU, "", 20, 8000).audio(tone(8000, 440, 8000, 8000))
	st := call.b.RTPStage(0)
	var stop atomic.Bool
	var accepted atomic.Uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			p := pkts[i%len(pkts)]
			binary.BigEndian.PutUint16(p[2:], uint16(i))
			binary.BigEndian.PutUint32(p[4:], uint32(i*160))
			if st.Handle(&media.Packet{Data: p, Kind: media.KindRTP}) == media.Consume {
				accepted.Add(1)
			}
		}
	})
	waitUntil(t, "an overloaded queue", func() bool { return pool.Stats().Drops > 1000 })
	pool.Close()
	stop.Store(true)
	wg.Wait()
	// The queue held about 1024 packets (20 ms of G.722 encoding) when
	// Close came; the worker stopped after the one in hand.
	if in := pool.Stats().PacketsIn; in+500 > accepted.Load() {
		t.Errorf("%d packets transcoded of %d accepted: Close worked through the backlog", in, accepted.Load())
	}
}
