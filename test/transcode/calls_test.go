// SPDX-License-Identifier: Apache-2.0

package transcode_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/daemon"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/sdp"
	"github.com/relayd/relayd/pkg/transcode"
)

// codec is one side's audio codec as its SDP names it.
type codec struct {
	name     string
	rate     int // RTP clock
	channels int
	pt       uint8
	fmtp     string
	pcmRate  int // the rate the test's encoder and decoder run at
	dtmfPT   uint8
	dtmfRate int
}

var (
	opus  = codec{name: "opus", rate: 48000, channels: 2, pt: 111, fmtp: "minptime=10;useinbandfec=1", pcmRate: 48000, dtmfPT: 110, dtmfRate: 48000}
	pcmu  = codec{name: "PCMU", rate: 8000, channels: 1, pt: 0, pcmRate: 8000, dtmfPT: 101, dtmfRate: 8000}
	pcma  = codec{name: "PCMA", rate: 8000, channels: 1, pt: 8, pcmRate: 8000, dtmfPT: 101, dtmfRate: 8000}
	g722  = codec{name: "G722", rate: 8000, channels: 1, pt: 9, pcmRate: 16000, dtmfPT: 101, dtmfRate: 8000}
	ptime = 20 * time.Millisecond
)

func (c codec) sdp(port int) string {
	rm := fmt.Sprintf("a=rtpmap:%d %s/%d", c.pt, c.name, c.rate)
	if c.channels > 1 {
		rm += "/" + strconv.Itoa(c.channels)
	}
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/AVP %d %d\r\n", port, c.pt, c.dtmfPT) + rm + "\r\n"
	if c.fmtp != "" {
		s += fmt.Sprintf("a=fmtp:%d %s\r\n", c.pt, c.fmtp)
	}
	return s + fmt.Sprintf("a=rtpmap:%d telephone-event/%d\r\na=fmtp:%d 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
		c.dtmfPT, c.dtmfRate, c.dtmfPT)
}

func (c codec) format() transcode.Format {
	return transcode.Format{Name: c.name, ClockRate: c.rate, Channels: c.channels, Fmtp: c.fmtp}
}

// party is an RTP phone speaking one codec on a real UDP socket.
type party struct {
	t     *testing.T
	c     codec
	conn  *net.UDPConn
	enc   transcode.Encoder
	dec   transcode.Decoder
	relay *net.UDPAddr

	mu     sync.Mutex
	pcm    []int16 // decoded from the relay, in arrival order
	events []event
	other  map[uint8]int // packets of unexpected payload types
	ssrcs  map[uint32]bool
}

type event struct {
	code     uint8
	end      bool
	marker   bool
	duration uint16
}

func newParty(t *testing.T, c codec) *party {
	t.Helper()
	reg := transcode.NewRegistry()
	cd, err := reg.Lookup(c.format())
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.Available(); err != nil {
		// make test sets RELAYD_WANT_OPUS when it found libopus: then
		// a build without Opus is a failure, not a reason to skip.
		if os.Getenv("RELAYD_WANT_OPUS") != "" || !errors.Is(err, transcode.ErrCodecUnavailable) {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Skipf("%s unavailable in this build: %v", c.name, err)
	}
	enc, err := cd.NewEncoder(transcode.Params{}, c.pcmRate, transcode.EncoderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cd.NewDecoder(transcode.Params{}, c.pcmRate)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &party{t: t, c: c, conn: conn, enc: enc, dec: dec, other: map[uint8]int{}, ssrcs: map[uint32]bool{}}
	go p.receive()
	return p
}

func (p *party) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

func (p *party) receive() {
	buf := make([]byte, 1500)
	pcm := make([]int16, 5760)
	for {
		n, err := p.conn.Read(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if n < 12 || b[0]>>6 != 2 || b[1]&0x7f >= 72 && b[1]&0x7f <= 95 {
			continue // RTCP: the relay's own reports on a transcoded leg
		}
		pt := b[1] & 0x7f
		p.mu.Lock()
		p.ssrcs[binary.BigEndian.Uint32(b[8:])] = true
		switch pt {
		case p.c.pt:
			if k, err := p.dec.Decode(b[12:], pcm); err == nil {
				p.pcm = append(p.pcm, pcm[:k]...)
			}
		case p.c.dtmfPT:
			if len(b) >= 16 {
				p.events = append(p.events, event{code: b[12], end: b[13]&0x80 != 0, marker: b[1]&0x80 != 0,
					duration: binary.BigEndian.Uint16(b[14:])})
			}
		default:
			p.other[pt]++
		}
		p.mu.Unlock()
	}
}

// sendTone sends n packets of a tone at hz, paced at ptime.
func (p *party) sendTone(hz float64, n int) {
	frame := p.c.pcmRate * int(ptime/time.Millisecond) / 1000
	tsStep := uint32(p.c.rate * int(ptime/time.Millisecond) / 1000)
	pcm := make([]int16, frame)
	out := make([]byte, 1500)
	next := time.Now()
	for i := range n {
		transcode.Tone(pcm, hz, p.c.pcmRate, 8000, i*frame)
		k, err := p.enc.Encode(pcm, out[12:])
		if err != nil {
			p.t.Error(err)
			return
		}
		hdr := out[:12]
		hdr[0], hdr[1] = 0x80, p.c.pt
		binary.BigEndian.PutUint16(hdr[2:], uint16(1000+i))
		binary.BigEndian.PutUint32(hdr[4:], 5000+uint32(i)*tsStep)
		binary.BigEndian.PutUint32(hdr[8:], 0xabc0000+uint32(p.c.pt))
		if _, err := p.conn.WriteToUDP(out[:12+k], p.relay); err != nil {
			p.t.Error(err)
			return
		}
		next = next.Add(ptime)
		time.Sleep(time.Until(next))
	}
}

// sendDigit sends one RFC 4733 digit of 100 ms on p's own event clock: a
// packet every 20 ms, the last one three times with the end bit.
func (p *party) sendDigit(code uint8, seq0 uint16, ts uint32) {
	step := p.c.dtmfRate / 50
	for i := 1; i <= 5; i++ {
		end := i == 5
		reps := 1
		if end {
			reps = 3
		}
		for range reps {
			b := make([]byte, 16)
			b[0], b[1] = 0x80, p.c.dtmfPT
			if i == 1 {
				b[1] |= 0x80
			}
			binary.BigEndian.PutUint16(b[2:], seq0)
			seq0++
			binary.BigEndian.PutUint32(b[4:], ts)
			binary.BigEndian.PutUint32(b[8:], 0xabc0000+uint32(p.c.pt))
			b[12] = code
			b[13] = 10 // volume
			if end {
				b[13] |= 0x80
			}
			binary.BigEndian.PutUint16(b[14:], uint16(i*step))
			_, _ = p.conn.WriteToUDP(b, p.relay)
		}
		time.Sleep(ptime)
	}
}

func (p *party) heard() ([]int16, []event, map[uint8]int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	others := map[uint8]int{}
	for k, v := range p.other {
		others[k] = v
	}
	return append([]int16(nil), p.pcm...), append([]event(nil), p.events...), others, len(p.ssrcs)
}

// checkTone measures what p heard from the second half on (the codecs'
// delay and the first packets' concealment left out).
func checkTone(t *testing.T, who string, p *party, hz float64) {
	t.Helper()
	pcm, _, others, _ := p.heard()
	if len(others) > 0 {
		t.Errorf("%s got packets of payload types it never negotiated: %v", who, others)
	}
	want := p.c.pcmRate // at least a second of audio
	if len(pcm) < want {
		t.Fatalf("%s decoded %d samples, want ≥ %d", who, len(pcm), want)
	}
	tail := pcm[len(pcm)/2:]
	got := transcode.DominantFrequency(tail, p.c.pcmRate, 200, 3000, 5)
	rms := transcode.RMS(tail)
	if math.Abs(got-hz) > 10 {
		t.Errorf("%s hears %.0f Hz, want %.0f", who, got, hz)
	}
	// 8000 peak is 5657 RMS; every pair here keeps the level within 2 dB.
	if rms < 4500 || rms > 7100 {
		t.Errorf("%s hears the tone at %.0f RMS, want about 5657", who, rms)
	}
}

type relayd struct {
	ng *ngproto.Client
}

func startRelayd(t *testing.T, ngPort, portMin int) *relayd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := "127.0.0.1:" + strconv.Itoa(ngPort)
	go func() {
		done <- daemon.Run(ctx, []string{"--config-file=none", "--listen-ng=" + addr, "--interface=127.0.0.1",
			"--port-min=" + strconv.Itoa(portMin), "--port-max=" + strconv.Itoa(portMin+99), "--xdp=off",
			"--log-level=4"}, os.Stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relayd: %v", err)
		}
	})
	c, err := ngproto.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Timeout, c.Tries = 200*time.Millisecond, 25
	return &relayd{ng: c}
}

func (r *relayd) do(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	reply, err := r.ng.Do(context.Background(), req)
	if err != nil || reply["result"] != "ok" {
		t.Fatalf("%v: %v %v", req["command"], reply, err)
	}
	return reply
}

// mediaOf reads the port and formats of the first m= of an SDP.
func mediaOf(t *testing.T, body string) (int, []string, *sdp.Media) {
	t.Helper()
	d, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatalf("relay's SDP: %v\n%s", err, body)
	}
	m := d.Media[0]
	return m.Port, m.Formats, m
}

// Calls through the relayd daemon for each pair the issue names: the
// caller speaks only its codec, the callee only its own, the relay is told
// to offer the callee's codec and mask the caller's, and each side hears
// the other's tone, decoded by its own codec, at the right frequency and
// level; the caller's digit arrives as a telephone-event on the callee's
// clock.
func TestTranscodedCalls(t *testing.T) {
	pairs := []struct {
		caller, callee codec
	}{
		{opus, pcmu}, {opus, pcma}, {g722, pcmu}, {pcmu, pcma},
	}
	r := startRelayd(t, 24301, 43000)
	for i, pr := range pairs {
		t.Run(pr.caller.name+"-"+pr.callee.name, func(t *testing.T) {
			a, b := newParty(t, pr.caller), newParty(t, pr.callee)
			callID := fmt.Sprintf("tc-%d", i)
			offer := r.do(t, map[string]any{"command": "offer", "call-id": callID, "from-tag": "caller",
				"sdp": pr.caller.sdp(a.port()), "codec": map[string]any{"transcode": []any{pr.callee.name},
					"mask": []any{pr.caller.name}}})
			bPort, bFormats, bm := mediaOf(t, offer["sdp"].(string))
			if rm, ok := bm.RTPMaps[mustPT(t, bFormats[0])]; !ok || !strings.EqualFold(rm.Encoding, pr.callee.name) {
				t.Fatalf("callee offered %v (%v), want %s first", bFormats, bm.RTPMaps, pr.callee.name)
			}
			answer := r.do(t, map[string]any{"command": "answer", "call-id": callID, "from-tag": "caller",
				"to-tag": "callee", "sdp": pr.callee.sdp(b.port())})
			aPort, aFormats, am := mediaOf(t, answer["sdp"].(string))
			if rm, ok := am.RTPMaps[pr.caller.pt]; aFormats[0] != strconv.Itoa(int(pr.caller.pt)) || !ok ||
				!strings.EqualFold(rm.Encoding, pr.caller.name) {
				t.Fatalf("caller answered %v (%v), want its own %s", aFormats, am.RTPMaps, pr.caller.name)
			}
			a.relay = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: aPort}
			b.relay = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: bPort}

			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); a.sendTone(1000, 75) }()
			go func() { defer wg.Done(); b.sendTone(440, 75) }()
			wg.Wait()
			a.sendDigit(5, 2000, 5000+75*uint32(pr.caller.rate/50))
			time.Sleep(200 * time.Millisecond)

			checkTone(t, "callee", b, 1000)
			checkTone(t, "caller", a, 440)
			_, evs, _, _ := b.heard()
			if len(evs) < 5 {
				t.Fatalf("callee got %d telephone-event packets, want the digit's 5 and its end repeats", len(evs))
			}
			if evs[0].code != 5 || !evs[0].marker {
				t.Errorf("first event packet %+v, want digit 5 with the marker", evs[0])
			}
			last := evs[len(evs)-1]
			// 100 ms on the callee's event clock.
			if want := uint16(pr.callee.dtmfRate / 10); !last.end || last.duration != want {
				t.Errorf("last event packet %+v, want the end bit and duration %d", last, want)
			}

			q := r.do(t, map[string]any{"command": "query", "call-id": callID})
			if !strings.Contains(fmt.Sprint(q["tags"]), "transcoding") {
				t.Errorf("query does not show the media transcoded: %v", q["tags"])
			}
			r.do(t, map[string]any{"command": "delete", "call-id": callID, "delete delay": 0})
		})
	}
	st := r.do(t, map[string]any{"command": "statistics"})
	if !strings.Contains(fmt.Sprint(st), "transcodedmedia:0") {
		t.Logf("statistics after every call ended: %v", st["statistics"])
	}
}

func mustPT(t *testing.T, s string) uint8 {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return uint8(n)
}
