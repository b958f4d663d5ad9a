// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"encoding/binary"
	"fmt"
	"github.com/pion/dtls/v3"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/transcode"
	"github.com/relayd/relayd/pkg/webrtc"
	"github.com/relayd/relayd/test/testenv"
)

const (
	rate       = 8000
	frame      = 160 // samples per 20 ms packet
	packets    = 100 // 2 s of media each way
	browserHz  = 1000.0
	phoneHz    = 440.0
	toneAmp    = 8000.0
	minArrived = 80 // of packets
)

// relay is relayd's session layer and media plane in this process, on
// 127.0.0.1.
type relay struct {
	m   *session.Manager
	eng *media.Engine
}

func newRelay(t *testing.T) *relay {
	t.Helper()
	eng, err := media.NewEngine(media.Config{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	id, err := webrtc.NewKeeper(nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := session.NewManager(session.Config{Logger: log,
		Interfaces: []session.Interface{{Name: "default", Local: netip.MustParseAddr("127.0.0.1")}},
		PortMin:    33000, PortMax: 33999, Timeout: time.Minute, SilentTimeout: time.Hour,
		OfferTimeout: time.Hour, TOS: 184, MaxSessions: -1, Media: eng, Identity: id,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return &relay{m: m, eng: eng}
}

// browser is a pion/webrtc peer configured as a browser on loopback:
// host candidates on lo, no mDNS, PCMU with telephone-event.
type browser struct {
	t     *testing.T
	pc    *pion.PeerConnection
	track *pion.TrackLocalStaticRTP
	rx    *receiver
	conn  chan struct{}
}

func newBrowser(t *testing.T, profiles []dtls.SRTPProtectionProfile, answerRole pion.DTLSRole) *browser {
	t.Helper()
	se := pion.SettingEngine{}
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A phone's SDP declares no a=ssrc: browsers play such a single
	// stream; pion, as an offerer, has to be told to.
	se.SetHandleUndeclaredSSRCWithoutAnswer(true)
	if len(profiles) > 0 {
		se.SetSRTPProtectionProfiles(profiles...)
	}
	if answerRole != pion.DTLSRoleAuto {
		if err := se.SetAnsweringDTLSRole(answerRole); err != nil {
			t.Fatal(err)
		}
	}
	me := &pion.MediaEngine{}
	for _, c := range []pion.RTPCodecParameters{
		{RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0},
		{RTPCodecCapability: pion.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000}, PayloadType: 126},
	} {
		if err := me.RegisterCodec(c, pion.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	api := pion.NewAPI(pion.WithMediaEngine(me), pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	track, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000}, "audio", "browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, pc: pc, track: track, rx: &receiver{}, conn: make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		if s == pion.PeerConnectionStateConnected {
			once.Do(func() { close(b.conn) })
		}
	})
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			b.rx.add(p)
		}
	})
	return b
}

// offer is the browser's offer, complete with its candidates.
func (b *browser) offer() string {
	b.t.Helper()
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	done := pion.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(o); err != nil {
		b.t.Fatal(err)
	}
	<-done
	return b.pc.LocalDescription().SDP
}

func (b *browser) setAnswer(sdp string) {
	b.t.Helper()
	if err := b.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: sdp}); err != nil {
		b.t.Fatalf("browser rejects the relay's answer: %v\n%s", err, sdp)
	}
}

// answer takes the relay's offer and returns the browser's answer.
func (b *browser) answer(offer string) string {
	b.t.Helper()
	if err := b.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: offer}); err != nil {
		b.t.Fatalf("browser rejects the relay's offer: %v\n%s", err, offer)
	}
	a, err := b.pc.CreateAnswer(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	done := pion.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(a); err != nil {
		b.t.Fatal(err)
	}
	<-done
	return b.pc.LocalDescription().SDP
}

func (b *browser) waitConnected() {
	b.t.Helper()
	select {
	case <-b.conn:
	case <-time.After(10 * time.Second):
		b.t.Fatalf("browser never connected (ICE %v, DTLS/peer %v)", b.pc.ICEConnectionState(), b.pc.ConnectionState())
	}
}

// send sends n packets of a browserHz tone, 20 ms apart.
func (b *browser) send(n int) {
	pcm := make([]int16, frame)
	for i := range n {
		transcode.Tone(pcm, browserHz, rate, toneAmp, i*frame)
		payload := make([]byte, frame)
		for j, s := range pcm {
			payload[j] = transcode.UlawEncode(s)
		}
		_ = b.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0,
			SequenceNumber: uint16(i), Timestamp: uint32(i * frame), Marker: i == 0}, Payload: payload})
		time.Sleep(20 * time.Millisecond)
	}
}

// receiver collects RTP and decodes PCMU.
type receiver struct {
	mu      sync.Mutex
	n       int
	samples []int16
	pts     map[uint8]int
}

func (r *receiver) add(p *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if r.pts == nil {
		r.pts = map[uint8]int{}
	}
	r.pts[p.PayloadType]++
	if p.PayloadType != 0 {
		return
	}
	for _, c := range p.Payload {
		r.samples = append(r.samples, transcode.UlawDecode(c))
	}
}

// reset forgets what was received so far.
func (r *receiver) reset() {
	r.mu.Lock()
	r.n, r.samples, r.pts = 0, nil, nil
	r.mu.Unlock()
}

// check requires most packets and the tone of wantHz.
func (r *receiver) check(t *testing.T, who string, wantHz float64) {
	t.Helper()
	r.check2(t, who, wantHz, minArrived)
}

// check2 requires min packets and the tone of wantHz.
func (r *receiver) check2(t *testing.T, who string, wantHz float64, min int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := r.n
		r.mu.Unlock()
		if n >= min || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n < min {
		t.Fatalf("%s received %d packets, want at least %d", who, r.n, min)
	}
	got := transcode.DominantFrequency(r.samples, rate, 200, 2000, 10)
	if got < wantHz*0.97 || got > wantHz*1.03 {
		t.Errorf("%s hears %.0f Hz, want %.0f Hz", who, got, wantHz)
	}
	if rms := transcode.RMS(r.samples); rms < toneAmp/4 {
		t.Errorf("%s hears a level of %.0f RMS, want about %.0f", who, rms, toneAmp/1.41)
	}
}

// phone is a SIP phone's media: plain RTP/AVP PCMU, or SRTP with SDES.
type phone struct {
	t     *testing.T
	conn  *net.UDPConn
	rx    *receiver
	relay netip.AddrPort // where its media goes (from the relay's SDP); mu
	sdes  bool
	keys  webrtc.Keys                  // the phone's own SDES key
	tx    *srtp.Context                // encrypts what the phone sends
	rxCtx atomic.Pointer[srtp.Context] // decrypts what the relay sends it; set while read runs
	crypt *webrtc.Crypto               // the relay's key, from its SDP
	stop  chan struct{}
	wg    sync.WaitGroup
	last  []byte // the latest datagram sent, for replays
	mu    sync.Mutex
	// sending makes a second send wait for the first: both would use the
	// SRTP context and its rollover state.
	sending sync.Mutex
}

// lastSent is a copy of the latest datagram the phone sent.
func (p *phone) lastSent() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]byte(nil), p.last...)
}

// newPhone makes a phone; suite, when not empty, makes it an SDES phone
// offering (or taking) that crypto suite.
func newPhone(t *testing.T, suite string) *phone {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		testenv.Unavailable(t, "cannot bind 127.0.0.1: %v", err)
	}
	p := &phone{t: t, conn: c, rx: &receiver{}, sdes: suite != "", stop: make(chan struct{})}
	if p.sdes {
		s, err := webrtc.SuiteByName(suite)
		if err != nil {
			t.Fatal(err)
		}
		p.keys, _ = webrtc.NewKeys(s)
		p.tx, err = srtp.CreateContext(p.keys.Key, p.keys.Salt, s.Profile)
		if err != nil {
			t.Fatal(err)
		}
	}
	p.wg.Add(1)
	go p.read()
	t.Cleanup(func() {
		close(p.stop)
		_ = c.Close()
		p.wg.Wait()
	})
	return p
}

func (p *phone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// sdp is the phone's offer or answer.
func (p *phone) sdp() string {
	proto, crypto := "RTP/AVP", ""
	if p.sdes {
		proto = "RTP/SAVP"
		tag := 1
		if p.crypt != nil {
			tag = p.crypt.Tag // answering: the tag of the suite taken from the offer
		}
		crypto = "a=crypto:" + webrtc.FormatCrypto(webrtc.Crypto{Tag: tag, Keys: p.keys}, false) + "\r\n"
	}
	return fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d %s 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=sendrecv\r\n%s", p.port(), proto, crypto)
}

// takeSDP reads where to send from the relay's SDP (and its SDES key).
func (p *phone) takeSDP(sdp string) {
	p.t.Helper()
	var port int
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "m=audio ") {
			fmt.Sscanf(l, "m=audio %d", &port)
			if p.sdes != strings.Contains(l, "RTP/SAVP") {
				p.t.Fatalf("relay's SDP to the phone is %q, the phone speaks SDES=%v\n%s", l, p.sdes, sdp)
			}
		}
		bad := []string{"a=ice-", "a=candidate", "a=extmap", "a=ssrc", "a=msid", "a=mid", "a=rtcp-fb", "a=group"}
		if !p.sdes {
			// An SRTP offer may carry DTLS besides SDES, as the
			// incumbent's does; a plain one must not.
			bad = append(bad, "a=fingerprint", "a=setup", "a=crypto")
		}
		for _, b := range bad {
			if strings.HasPrefix(l, b) {
				p.t.Errorf("browser attribute %q leaked to the SIP phone", l)
			}
		}
		if v, ok := strings.CutPrefix(l, "a=crypto:"); ok && p.sdes {
			c, err := webrtc.ParseCrypto(v)
			if err != nil {
				p.t.Fatalf("relay's a=crypto %q: %v", v, err)
			}
			if c.Keys.Suite == p.keys.Suite && p.crypt == nil {
				p.crypt = &c
			}
		}
	}
	// A re-INVITE moves it while the sender runs.
	p.mu.Lock()
	p.relay = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	p.mu.Unlock()
	if p.sdes {
		if p.crypt == nil {
			p.t.Fatalf("no a=crypto in the relay's SDP to an SDES phone:\n%s", sdp)
		}
		ctx, err := srtp.CreateContext(p.crypt.Keys.Key, p.crypt.Keys.Salt, p.crypt.Keys.Suite.Profile)
		if err != nil {
			p.t.Fatal(err)
		}
		p.rxCtx.Store(ctx)
	}
}

func (p *phone) read() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if p.sdes {
			ctx := p.rxCtx.Load()
			if ctx == nil || b[1] >= 192 && b[1] <= 223 {
				continue
			}
			if b, err = ctx.DecryptRTP(nil, b, nil); err != nil {
				continue
			}
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(b) == nil {
			p.rx.add(&pkt)
		}
	}
}

// send sends n packets of a phoneHz tone.
func (p *phone) send(n int) {
	p.sending.Lock()
	defer p.sending.Unlock()
	pcm := make([]int16, frame)
	for i := range n {
		transcode.Tone(pcm, phoneHz, rate, toneAmp, i*frame)
		b := make([]byte, 12, 12+frame+16)
		b[0], b[1] = 0x80, 0
		binary.BigEndian.PutUint16(b[2:], uint16(i))
		binary.BigEndian.PutUint32(b[4:], uint32(i*frame))
		binary.BigEndian.PutUint32(b[8:], 0x5151)
		for _, s := range pcm {
			b = append(b, transcode.UlawEncode(s))
		}
		if p.sdes {
			var err error
			if b, err = p.tx.EncryptRTP(nil, b, nil); err != nil {
				p.t.Error(err)
				return
			}
		}
		p.mu.Lock()
		dst := p.relay
		p.last = b
		p.mu.Unlock()
		_, _ = p.conn.WriteToUDPAddrPort(b, dst)
		time.Sleep(20 * time.Millisecond)
	}
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitFor polls cond until it holds, or fails the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
