// SPDX-License-Identifier: Apache-2.0

package ha

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	pion "github.com/pion/webrtc/v4"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/webrtc"
)

// The agent is this test binary re-executed inside the peers' namespace
// (flag -ha.agent): it places calls through the floating address, sends
// and receives their media, and writes what it measured to a file when the
// test asks it to stop. The test and the agent talk through files in a
// directory both see.

var agentFlag = flag.String("ha.agent", "", "run as the peers' agent with this config file (test/ha harness)")

// agentConfig is what the test asks of the agent.
type agentConfig struct {
	NG    string // the relays' ng address (the floating one)
	Local string // the agent's address
	Iface string // its interface (for pion's candidates)
	// Plain calls of two plain RTP phones each; WebRTC adds a call between
	// a pion browser (DTLS-SRTP, ICE) and an SDES phone.
	Plain  int
	WebRTC bool
	// Idle calls are set up without media (a load for Redis); Churn
	// replaces that many of them per second while the agent runs.
	Idle  int
	Churn float64
	Dir   string // ready, stop and result files
}

func (c agentConfig) file(name string) string { return filepath.Join(c.Dir, name) }

// streamResult is one direction of one call's media.
type streamResult struct {
	Name     string
	Received int
	// MaxGap is the longest time between two packets after the agent was
	// ready; MaxGapEnd is when the packet ending it arrived.
	MaxGap    time.Duration
	MaxGapEnd time.Time
	Last      time.Time
	Errors    int // packets that did not decrypt
}

// agentResult is what the agent measured.
type agentResult struct {
	Ready   time.Time
	Streams []streamResult
	// BrowserStates are the pion peer connection's states in order.
	BrowserStates []string
	// Live are the idle calls the agent set up and did not delete; Failed
	// the ng requests that failed (every request should succeed).
	Live   []string
	Failed []string
	Errors []string
	// DTLSHandshakes is what the relay serving the WebRTC call at the end
	// counts for it (its query's "DTLS handshakes"), -1 without the call.
	DTLSHandshakes int
}

// runAgent is the agent's main; it returns the exit code.
func runAgent(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 2
	}
	var cfg agentConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 2
	}
	a := &agent{cfg: cfg, local: netip.MustParseAddr(cfg.Local), relay: netip.MustParseAddr(strings.Split(cfg.NG, ":")[0])}
	res := a.run()
	out, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(cfg.file("result.json"), out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		return 1
	}
	return 0
}

type agent struct {
	cfg          agentConfig
	local, relay netip.Addr
	streams      []*stream
	stop         chan struct{}
	wg           sync.WaitGroup
	mu           sync.Mutex
	errs         []string
	failed       []string
	browserState []string
}

func (a *agent) errorf(format string, args ...any) {
	a.mu.Lock()
	a.errs = append(a.errs, fmt.Sprintf(format, args...))
	a.mu.Unlock()
	fmt.Fprintf(os.Stderr, "agent: "+format+"\n", args...)
}

func (a *agent) run() agentResult {
	a.stop = make(chan struct{})
	ng, err := ngproto.Dial(a.cfg.NG)
	if err != nil {
		return agentResult{Errors: []string{err.Error()}}
	}
	defer ng.Close()
	ng.Timeout, ng.Tries = 500*time.Millisecond, 20
	for i := range a.cfg.Plain {
		if err := a.plainCall(ng, fmt.Sprintf("plain-%d", i)); err != nil {
			a.errorf("plain call %d: %v", i, err)
		}
	}
	var br *browser
	if a.cfg.WebRTC {
		if br, err = a.webrtcCall(ng, "webrtc-sdes"); err != nil {
			a.errorf("webrtc call: %v", err)
		}
	}
	var live []string
	for i := range a.cfg.Idle {
		id := fmt.Sprintf("idle-%d", i)
		if err := a.idleCall(ng, id); err != nil {
			a.errorf("idle call %s: %v", id, err)
			continue
		}
		live = append(live, id)
	}
	// Ready once every stream has carried media.
	deadline := time.Now().Add(15 * time.Second)
	for !a.allFlowing() {
		if time.Now().After(deadline) {
			a.errorf("media never flowed on every stream")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ready := time.Now()
	for _, s := range a.streams {
		s.reset(ready)
	}
	_ = os.WriteFile(a.cfg.file("ready"), []byte(ready.Format(time.RFC3339Nano)), 0o644)

	// Churn idle calls until told to stop.
	next := len(live)
	var tick <-chan time.Time
	if a.cfg.Churn > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / a.cfg.Churn))
		defer t.Stop()
		tick = t.C
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for stopped := false; !stopped; {
		select {
		case <-poll.C:
			if _, err := os.Stat(a.cfg.file("stop")); err == nil {
				stopped = true
			}
		case <-tick:
			id := fmt.Sprintf("idle-%d", next)
			next++
			if err := a.idleCall(ng, id); err != nil {
				a.fail(id, err)
			} else {
				live = append(live, id)
			}
			if len(live) > a.cfg.Idle {
				old := live[0]
				if _, err := a.do(ng, map[string]any{"command": "delete", "call-id": old, "delete delay": 0}); err != nil {
					a.fail(old, err)
				} else {
					live = live[1:]
				}
			}
		}
	}
	res := agentResult{Ready: ready, Live: live, DTLSHandshakes: -1}
	if br != nil {
		if q, err := a.do(ng, map[string]any{"command": "query", "call-id": "webrtc-sdes"}); err != nil {
			a.errorf("query the WebRTC call: %v", err)
		} else {
			res.DTLSHandshakes = sumKey(q, "DTLS handshakes")
		}
	}
	close(a.stop)
	a.wg.Wait()
	for _, s := range a.streams {
		res.Streams = append(res.Streams, s.result())
	}
	if br != nil {
		_ = br.pc.Close()
	}
	a.mu.Lock()
	res.Errors, res.Failed, res.BrowserStates = a.errs, a.failed, a.browserState
	a.mu.Unlock()
	return res
}

func (a *agent) fail(id string, err error) {
	a.mu.Lock()
	a.failed = append(a.failed, fmt.Sprintf("%s: %v", id, err))
	a.mu.Unlock()
}

func (a *agent) do(ng *ngproto.Client, req map[string]any) (map[string]any, error) {
	r, err := ng.Do(context.Background(), req)
	if err != nil {
		return nil, err
	}
	if r["result"] != "ok" {
		return r, fmt.Errorf("%v: %v", r["result"], r["error-reason"])
	}
	return r, nil
}

func (a *agent) allFlowing() bool {
	for _, s := range a.streams {
		if s.count() == 0 {
			return false
		}
	}
	return true
}

// stream records when a direction's packets arrive.
type stream struct {
	name string
	mu   sync.Mutex
	n    int
	errs int
	// since is when measuring began; last the latest arrival; maxGap and
	// maxEnd the longest silence after since and when it ended.
	since, last time.Time
	maxGap      time.Duration
	maxEnd      time.Time
}

func (a *agent) newStream(name string) *stream {
	s := &stream{name: name}
	a.streams = append(a.streams, s)
	return s
}

func (s *stream) arrived(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if !s.since.IsZero() {
		from := s.last
		if from.Before(s.since) {
			from = s.since
		}
		if g := at.Sub(from); g > s.maxGap {
			s.maxGap, s.maxEnd = g, at
		}
	}
	s.last = at
}

func (s *stream) failed() { s.mu.Lock(); s.errs++; s.mu.Unlock() }

func (s *stream) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

func (s *stream) reset(since time.Time) {
	s.mu.Lock()
	s.since, s.n, s.maxGap = since, 0, 0
	s.mu.Unlock()
}

func (s *stream) result() streamResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := streamResult{Name: s.name, Received: s.n, MaxGap: s.maxGap, MaxGapEnd: s.maxEnd, Last: s.last, Errors: s.errs}
	// A stream that stopped for good: its silence lasts until now.
	if g := time.Since(s.last); g > r.MaxGap {
		r.MaxGap, r.MaxGapEnd = g, time.Now()
	}
	return r
}

// phone is a SIP phone's media socket: plain RTP, or SRTP keyed by SDES.
type phone struct {
	a     *agent
	conn  *net.UDPConn
	to    netip.AddrPort // the relay's port, from its SDP
	keys  *webrtc.Keys   // the phone's own SDES key (nil: plain)
	tag   int            // of the relay's offered crypto the phone takes
	tx    *srtp.Context
	rxCtx *srtp.Context
	ssrc  uint32
}

func (a *agent) newPhone(suite string) (*phone, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a.local.AsSlice()})
	if err != nil {
		return nil, err
	}
	p := &phone{a: a, conn: c, ssrc: uint32(c.LocalAddr().(*net.UDPAddr).Port) << 8}
	if suite != "" {
		s, err := webrtc.SuiteByName(suite)
		if err != nil {
			return nil, err
		}
		k, err := webrtc.NewKeys(s)
		if err != nil {
			return nil, err
		}
		p.keys = &k
		if p.tx, err = srtp.CreateContext(k.Key, k.Salt, s.Profile); err != nil {
			return nil, err
		}
	}
	go func() { <-a.stop; _ = c.Close() }()
	return p, nil
}

func (p *phone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *phone) sdp() string {
	proto, crypto := "RTP/AVP", ""
	if p.keys != nil {
		proto = "RTP/SAVP"
		tag := max(p.tag, 1)
		crypto = "a=crypto:" + webrtc.FormatCrypto(webrtc.Crypto{Tag: tag, Keys: *p.keys}, false) + "\r\n"
	}
	return fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d %s 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n%s", p.a.local, p.a.local, p.port(), proto, crypto)
}

// takeSDP reads where to send (and, with SDES, the relay's key).
func (p *phone) takeSDP(sdp string) error {
	port := 0
	var relayKey *webrtc.Crypto
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "m=audio ") {
			_, _ = fmt.Sscanf(l, "m=audio %d", &port)
		}
		if v, ok := strings.CutPrefix(l, "a=crypto:"); ok && p.keys != nil && relayKey == nil {
			c, err := webrtc.ParseCrypto(v)
			if err == nil && c.Keys.Suite == p.keys.Suite {
				relayKey = &c
			}
		}
	}
	if port == 0 {
		return fmt.Errorf("no m=audio in\n%s", sdp)
	}
	p.to = netip.AddrPortFrom(p.a.relay, uint16(port))
	if p.keys != nil {
		if relayKey == nil {
			return fmt.Errorf("no a=crypto of %s in\n%s", p.keys.Suite.Name, sdp)
		}
		p.tag = relayKey.Tag
		var err error
		if p.rxCtx, err = srtp.CreateContext(relayKey.Keys.Key, relayKey.Keys.Salt, relayKey.Keys.Suite.Profile); err != nil {
			return err
		}
	}
	return nil
}

// run sends 50 packets a second and records what arrives, until stop.
func (p *phone) run(rx *stream) {
	p.a.wg.Add(2)
	go func() {
		defer p.a.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := p.conn.Read(buf)
			if err != nil {
				return
			}
			b := buf[:n]
			if p.rxCtx != nil {
				if b[1] >= 192 && b[1] <= 223 {
					continue // SRTCP
				}
				if b, err = p.rxCtx.DecryptRTP(nil, b, nil); err != nil {
					rx.failed()
					continue
				}
			}
			rx.arrived(time.Now())
		}
	}()
	go func() {
		defer p.a.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-p.a.stop:
				return
			case <-t.C:
			}
			b := make([]byte, 12, 12+160+16)
			b[0], b[1] = 0x80, 0
			binary.BigEndian.PutUint16(b[2:], uint16(seq))
			binary.BigEndian.PutUint32(b[4:], uint32(seq*160))
			binary.BigEndian.PutUint32(b[8:], p.ssrc)
			b = append(b, make([]byte, 160)...)
			if p.tx != nil {
				var err error
				if b, err = p.tx.EncryptRTP(nil, b, nil); err != nil {
					continue
				}
			}
			_, _ = p.conn.WriteToUDPAddrPort(b, p.to)
		}
	}()
}

// plainCall is two plain RTP phones calling each other through the relay.
func (a *agent) plainCall(ng *ngproto.Client, id string) error {
	ca, err := a.newPhone("")
	if err != nil {
		return err
	}
	cb, err := a.newPhone("")
	if err != nil {
		return err
	}
	off, err := a.do(ng, map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": ca.sdp()})
	if err != nil {
		return err
	}
	ans, err := a.do(ng, map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": cb.sdp()})
	if err != nil {
		return err
	}
	if err := cb.takeSDP(off["sdp"].(string)); err != nil {
		return err
	}
	if err := ca.takeSDP(ans["sdp"].(string)); err != nil {
		return err
	}
	ca.run(a.newStream(id + " b->a"))
	cb.run(a.newStream(id + " a->b"))
	return nil
}

// idleCall is a call set up and left without media.
func (a *agent) idleCall(ng *ngproto.Client, id string) error {
	sdp := func(port int) string {
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n", a.local, a.local, port)
	}
	if _, err := a.do(ng, map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": sdp(40000)}); err != nil {
		return err
	}
	_, err := a.do(ng, map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": sdp(40002)})
	return err
}

// browser is a pion/webrtc peer as a browser: ICE on the agent's interface,
// DTLS-SRTP, PCMU.
type browser struct {
	pc    *pion.PeerConnection
	track *pion.TrackLocalStaticRTP
	conn  chan struct{}
}

func (a *agent) newBrowser(rx *stream) (*browser, error) {
	se := pion.SettingEngine{}
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == a.cfg.Iface })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetHandleUndeclaredSSRCWithoutAnswer(true)
	me := &pion.MediaEngine{}
	if err := me.RegisterCodec(pion.RTPCodecParameters{RTPCodecCapability: pion.RTPCodecCapability{
		MimeType: pion.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0}, pion.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	api := pion.NewAPI(pion.WithMediaEngine(me), pion.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, err
	}
	track, err := pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000}, "audio", "browser")
	if err != nil {
		return nil, err
	}
	if _, err := pc.AddTrack(track); err != nil {
		return nil, err
	}
	b := &browser{pc: pc, track: track, conn: make(chan struct{})}
	var once sync.Once
	pc.OnConnectionStateChange(func(s pion.PeerConnectionState) {
		a.mu.Lock()
		a.browserState = append(a.browserState, time.Now().Format("15:04:05.000")+" "+s.String())
		a.mu.Unlock()
		if s == pion.PeerConnectionStateConnected {
			once.Do(func() { close(b.conn) })
		}
	})
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			rx.arrived(time.Now())
		}
	})
	return b, nil
}

func (b *browser) send(a *agent) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for seq := 0; ; seq++ {
			select {
			case <-a.stop:
				return
			case <-t.C:
			}
			_ = b.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0,
				SequenceNumber: uint16(seq), Timestamp: uint32(seq * 160)}, Payload: make([]byte, 160)})
		}
	}()
}

// webrtcCall is a browser calling an SDES phone: the relay does DTLS-SRTP
// and ICE towards the browser, SDES towards the phone.
func (a *agent) webrtcCall(ng *ngproto.Client, id string) (*browser, error) {
	br, err := a.newBrowser(a.newStream(id + " phone->browser"))
	if err != nil {
		return nil, err
	}
	ph, err := a.newPhone("AES_CM_128_HMAC_SHA1_80")
	if err != nil {
		return nil, err
	}
	o, err := br.pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := pion.GatheringCompletePromise(br.pc)
	if err := br.pc.SetLocalDescription(o); err != nil {
		return nil, err
	}
	<-gathered
	off, err := a.do(ng, map[string]any{"command": "offer", "call-id": id, "from-tag": "browser",
		"sdp": br.pc.LocalDescription().SDP, "ICE": "remove", "rtcp-mux": []any{"demux"}, "transport-protocol": "RTP/SAVP"})
	if err != nil {
		return nil, err
	}
	if err := ph.takeSDP(off["sdp"].(string)); err != nil {
		return nil, err
	}
	ans, err := a.do(ng, map[string]any{"command": "answer", "call-id": id, "from-tag": "browser", "to-tag": "phone",
		"sdp": ph.sdp(), "ICE": "force", "DTLS": "passive", "rtcp-mux": []any{"offer", "require"},
		"SDES": []any{"off"}, "flags": []any{"generate-mid"}})
	if err != nil {
		return nil, err
	}
	if err := br.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: ans["sdp"].(string)}); err != nil {
		return nil, fmt.Errorf("browser rejects the relay's answer: %w\n%s", err, ans["sdp"])
	}
	select {
	case <-br.conn:
	case <-time.After(10 * time.Second):
		return nil, errors.New("browser never connected")
	}
	br.send(a)
	ph.run(a.newStream(id + " browser->phone"))
	return br, nil
}

// sumKey adds up every integer under key in a decoded ng reply.
func sumKey(v any, key string) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == key {
				if i, ok := e.(int64); ok {
					n += int(i)
				}
				continue
			}
			n += sumKey(e, key)
		}
	case []any:
		for _, e := range x {
			n += sumKey(e, key)
		}
	}
	return n
}
