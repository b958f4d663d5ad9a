// SPDX-License-Identifier: Apache-2.0

package session

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/srtp/v3"

	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/recording"
	"github.com/relayd/relayd/pkg/webrtc"
	"github.com/relayd/relayd/test/testenv"
)

// newRecordingManager runs a manager with a real media engine (on a fake
// clock, with fp as its fast path when not nil) and a recorder writing into
// a temporary directory with queues of queue bytes (0: the default).
func newRecordingManager(t *testing.T, queue int, fp mplane.FastPath) (*Manager, *recording.Recorder) {
	t.Helper()
	rec, err := recording.New(recording.Config{Dir: t.TempDir(), QueueBytes: queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close) // after the manager's: calls end, then the writer stops
	return newRecordingManagerWith(t, rec, fp)
}

// newRecordingManagerWith is newRecordingManager with a given recorder.
func newRecordingManagerWith(t *testing.T, rec *recording.Recorder, fp mplane.FastPath) (*Manager, *recording.Recorder) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	eng, err := mplane.NewEngine(mplane.Config{Workers: 2, Now: clk.now, FastPath: fp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	m, _ := newTestManager(t, func(c *Config) {
		c.Media, c.Now, c.Recorder = eng, clk.now, rec
		c.Interfaces = c.Interfaces[:1]
	})
	return m, rec
}

// rtpFrame is a PCMA RTP packet whose payload says who sent it and which
// packet it is.
func rtpFrame(ssrc uint32, seq uint16, who byte) []byte {
	b := make([]byte, 12+160)
	b[0], b[1] = 0x80, 8
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = who ^ byte(seq) + byte(i)
	}
	return b
}

// rtcpRR is an empty RTCP receiver report from ssrc.
func rtcpRR(ssrc uint32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = 0x80, 201
	binary.BigEndian.PutUint16(b[2:], 1)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	return b
}

func writeTo(t *testing.T, c *net.UDPConn, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// readN reads n datagrams from c (failing after a few seconds without one).
func readN(t *testing.T, c *net.UDPConn, n int) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 2048)
	for len(out) < n {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		k, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("received %d of %d: %v", len(out), n, err)
		}
		out = append(out, slices.Clone(buf[:k]))
	}
	return out
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// relaySockets are the relay's RTP and RTCP sockets facing A and B.
type relaySockets struct{ aRTP, aRTCP, bRTP, bRTCP netip.AddrPort }

func sockets(t *testing.T, m *Manager, id string) relaySockets {
	t.Helper()
	info, err := m.Query(id, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var s relaySockets
	for _, tag := range info.Tags {
		st := tag.Medias[0].Streams
		switch tag.Tag {
		case "A":
			s.aRTP, s.aRTCP = st[0].Local, st[len(st)-1].Local
		case "B":
			s.bRTP, s.bRTCP = st[0].Local, st[len(st)-1].Local
		}
	}
	return s
}

// capture is a pcap file as tshark decodes it: the datagrams of each
// direction (source -> destination) in order.
type capture map[[2]netip.AddrPort][][]byte

func readCapture(t *testing.T, file string) capture {
	t.Helper()
	rows := testenv.TSharkFields(t, file, []string{"-o", "rtp.heuristic_rtp:TRUE"},
		"ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload", "rtp.seq", "rtp.payload", "rtcp.pt")
	c := capture{}
	for i, r := range rows {
		sp, _ := strconv.Atoi(r[1])
		dp, _ := strconv.Atoi(r[3])
		src := netip.AddrPortFrom(netip.MustParseAddr(r[0]), uint16(sp))
		dst := netip.AddrPortFrom(netip.MustParseAddr(r[2]), uint16(dp))
		data, err := hex.DecodeString(r[4])
		if err != nil {
			t.Fatalf("packet %d: udp.payload %q", i+1, r[4])
		}
		// tshark's RTP and RTCP dissectors agree with the bytes.
		switch {
		case r[7] != "":
			if r[7] != strconv.Itoa(int(data[1])) {
				t.Errorf("packet %d: tshark's RTCP type %s, datagram says %d", i+1, r[7], data[1])
			}
		case r[5] != strconv.Itoa(int(binary.BigEndian.Uint16(data[2:]))) || r[6] != hex.EncodeToString(data[12:]):
			t.Errorf("packet %d: tshark's RTP seq %s payload %.16s… disagree with the datagram", i+1, r[5], r[6])
		}
		k := [2]netip.AddrPort{src, dst}
		c[k] = append(c[k], data)
	}
	return c
}

// expect checks that the direction src -> dst holds exactly want.
func (c capture) expect(t *testing.T, what string, src, dst netip.AddrPort, want [][]byte) {
	t.Helper()
	got := c[[2]netip.AddrPort{src, dst}]
	if len(got) != len(want) {
		t.Errorf("%s (%v -> %v): %d packets in the recording, want %d", what, src, dst, len(got), len(want))
		return
	}
	for i := range want {
		if string(got[i]) != string(want[i]) {
			t.Errorf("%s: packet %d is % x…, sent % x…", what, i+1, got[i][:16], want[i][:16])
			return
		}
	}
}

func (c capture) total() int {
	n := 0
	for _, l := range c {
		n += len(l)
	}
	return n
}

// finished waits for the metadata file of the recording in file and reads it.
func finished(t *testing.T, file string) map[string]any {
	t.Helper()
	meta := filepath.Join(filepath.Dir(filepath.Dir(file)), "metadata", strings.TrimSuffix(filepath.Base(file), ".pcap")+".json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(meta)
		if err == nil {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("%s: %v", meta, err)
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata %s never appeared: %v", meta, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func recordingOf(t *testing.T, m *Manager, id string) *RecordingInfo {
	t.Helper()
	info, err := m.Query(id, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return info.Recording
}

func deleteNow(t *testing.T, m *Manager, id string) {
	t.Helper()
	zero := 0
	if _, err := m.Delete(DeleteRequest{CallID: id, Options: Options{DeleteDelay: &zero}}); err != nil {
		t.Fatal(err)
	}
}

// A call recorded from its offer (record-call=yes): both directions of RTP
// and RTCP, party -> relay and relay -> party, with the real addresses and
// the bytes sent; the metadata file names the parties, codecs and sockets.
func TestRecordCall(t *testing.T) {
	m, rec := newRecordingManager(t, 0, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	out, err := m.OfferOutcome(Signal{CallID: "rec-1", FromTag: "A", SDP: a.sdp(),
		Options: Options{RecordCall: "yes", Label: "caller", Metadata: "customer=42"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) > 0 || len(out.Recordings) != 1 {
		t.Fatalf("offer: warnings %q, recordings %q", out.Warnings, out.Recordings)
	}
	if _, err := m.Answer(Signal{CallID: "rec-1", FromTag: "A", ToTag: "B", SDP: b.sdp()}); err != nil {
		t.Fatal(err)
	}
	s := sockets(t, m, "rec-1")
	var aSent, bSent, aRTCP [][]byte
	for i := range 20 {
		p := rtpFrame(0xaaaa, uint16(i), 'A')
		aSent = append(aSent, p)
		writeTo(t, a.rtp, s.aRTP, p)
	}
	gotB := readN(t, b.rtp, 20)
	for i := range 15 {
		p := rtpFrame(0xbbbb, uint16(100+i), 'B')
		bSent = append(bSent, p)
		writeTo(t, b.rtp, s.bRTP, p)
	}
	gotA := readN(t, a.rtp, 15)
	for range 3 {
		p := rtcpRR(0xaaaa)
		aRTCP = append(aRTCP, p)
		writeTo(t, a.rtcp, s.aRTCP, p)
	}
	readN(t, b.rtcp, 3)
	if slices.CompareFunc(gotB, aSent, func(x, y []byte) int { return strings.Compare(string(x), string(y)) }) != 0 ||
		slices.CompareFunc(gotA, bSent, func(x, y []byte) int { return strings.Compare(string(x), string(y)) }) != 0 {
		t.Fatal("the parties did not get what was sent")
	}
	ri := recordingOf(t, m, "rec-1")
	if ri == nil || ri.State != "recording" || ri.File != out.Recordings[0] {
		t.Fatalf("query: recording %+v", ri)
	}
	deleteNow(t, m, "rec-1")
	meta := finished(t, ri.File)

	c := readCapture(t, ri.File)
	c.expect(t, "A -> relay", addrOf(a.rtp), s.aRTP, aSent)
	c.expect(t, "relay -> B", s.bRTP, addrOf(b.rtp), aSent)
	c.expect(t, "B -> relay", addrOf(b.rtp), s.bRTP, bSent)
	c.expect(t, "relay -> A", s.aRTP, addrOf(a.rtp), bSent)
	c.expect(t, "A -> relay RTCP", addrOf(a.rtcp), s.aRTCP, aRTCP)
	c.expect(t, "relay -> B RTCP", s.bRTCP, addrOf(b.rtcp), aRTCP)
	if n := c.total(); n != 2*(20+15+3) {
		t.Errorf("%d packets in the recording, want %d", n, 2*(20+15+3))
	}

	if meta["call-id"] != "rec-1" || meta["metadata"] != "customer=42" || meta["packets"] != float64(76) ||
		meta["dropped"] != float64(0) || meta["ended-by"] != "call ended: deleted" {
		t.Errorf("metadata %v", meta)
	}
	parties, _ := meta["parties"].([]any)
	if len(parties) != 2 {
		t.Fatalf("metadata parties %v", meta["parties"])
	}
	pa := parties[0].(map[string]any)
	media := pa["medias"].([]any)[0].(map[string]any)
	codecs := fmt.Sprint(media["codecs"])
	streams := fmt.Sprint(media["streams"])
	if pa["tag"] != "A" || pa["label"] != "caller" || pa["in-dialogue-with"] != "B" ||
		codecs != "[map[name:PCMA/8000 payload-type:8]]" ||
		!strings.Contains(streams, s.aRTP.String()) || !strings.Contains(streams, addrOf(a.rtp).String()) {
		t.Errorf("metadata of A: %v, codecs %s, streams %s", pa, codecs, streams)
	}
	if st := rec.Stats(); st.Active != 0 || st.Finished != 1 || st.Packets != 76 {
		t.Errorf("recorder stats %+v", st)
	}
}

// An SDES leg is recorded as plain RTP both ways: what the phone encrypted
// appears decrypted, and what the relay encrypts towards it appears as the
// plain packet it was before protection.
func TestRecordSRTPLegPlain(t *testing.T) {
	m, _ := newRecordingManager(t, 0, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	suite, err := webrtc.SuiteByName("AES_CM_128_HMAC_SHA1_80")
	if err != nil {
		t.Fatal(err)
	}
	aKeys, _ := webrtc.NewKeys(suite)
	aTx, err := srtp.CreateContext(aKeys.Key, aKeys.Salt, suite.Profile)
	if err != nil {
		t.Fatal(err)
	}
	aAddr := addrOf(a.rtp)
	offer := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/SAVP 8\r\na=rtpmap:8 PCMA/8000\r\na=crypto:%s\r\n", aAddr.Port(),
		webrtc.FormatCrypto(webrtc.Crypto{Tag: 1, Keys: aKeys}, false))
	if _, err := m.Offer(Signal{CallID: "srtp", FromTag: "A", SDP: []byte(offer),
		Options: Options{RecordCall: "on", TransportProtocol: "RTP/AVP"}}); err != nil {
		t.Fatal(err)
	}
	answer, err := m.Answer(Signal{CallID: "srtp", FromTag: "A", ToTag: "B", SDP: b.sdp()})
	if err != nil {
		t.Fatal(err)
	}
	var relayKey *webrtc.Crypto
	for _, l := range strings.Split(string(answer), "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=crypto:"); ok {
			c, err := webrtc.ParseCrypto(v)
			if err != nil {
				t.Fatal(err)
			}
			relayKey = &c
		}
	}
	if relayKey == nil || !strings.Contains(string(answer), "RTP/SAVP") {
		t.Fatalf("answer to the SDES party:\n%s", answer)
	}
	aRx, err := srtp.CreateContext(relayKey.Keys.Key, relayKey.Keys.Salt, relayKey.Keys.Suite.Profile)
	if err != nil {
		t.Fatal(err)
	}
	s := sockets(t, m, "srtp")
	var aPlain, bSent [][]byte
	for i := range 10 {
		p := rtpFrame(0x5eca, uint16(i), 'S')
		aPlain = append(aPlain, p)
		enc, err := aTx.EncryptRTP(nil, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		writeTo(t, a.rtp, s.aRTP, enc)
	}
	for i, got := range readN(t, b.rtp, 10) {
		if string(got) != string(aPlain[i]) {
			t.Fatalf("B got packet %d as % x…", i, got[:16])
		}
	}
	for i := range 10 {
		p := rtpFrame(0x9999, uint16(i), 'P')
		bSent = append(bSent, p)
		writeTo(t, b.rtp, s.bRTP, p)
	}
	for i, got := range readN(t, a.rtp, 10) {
		if string(got) == string(bSent[i]) {
			t.Fatal("the SDES party got plain RTP")
		}
		dec, err := aRx.DecryptRTP(nil, got, nil)
		if err != nil || string(dec) != string(bSent[i]) {
			t.Fatalf("A cannot decrypt packet %d: %v", i, err)
		}
	}
	file := recordingOf(t, m, "srtp").File
	deleteNow(t, m, "srtp")
	finished(t, file)
	c := readCapture(t, file)
	c.expect(t, "A -> relay (SRTP on the wire)", aAddr, s.aRTP, aPlain)
	c.expect(t, "relay -> B", s.bRTP, addrOf(b.rtp), aPlain)
	c.expect(t, "B -> relay", addrOf(b.rtp), s.bRTP, bSent)
	c.expect(t, "relay -> A (SRTP on the wire)", s.aRTP, aAddr, bSent)
}

// start, pause, resume and stop recording by command: paused and stopped
// stretches are forwarded but not recorded, a resumed recording goes on in
// the same file, and a new start after a stop makes a new file.
func TestRecordingCommands(t *testing.T) {
	m, _ := newRecordingManager(t, 0, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "cmd", a, b, Options{})
	if recordingOf(t, m, "cmd") != nil {
		t.Fatal("recording without record-call")
	}
	s := sockets(t, m, "cmd")
	seq := uint16(0)
	burst := func(n int) [][]byte {
		var sent [][]byte
		for range n {
			p := rtpFrame(0xaaaa, seq, 'A')
			seq++
			sent = append(sent, p)
			writeTo(t, a.rtp, s.aRTP, p)
		}
		readN(t, b.rtp, n) // forwarded whatever the recording does
		return sent
	}
	req := RecordingRequest{CallID: "cmd", FromTag: "A", ToTag: "B"}
	must := func(w []string, err error) {
		t.Helper()
		if err != nil || len(w) > 0 {
			t.Fatalf("command: %v %q", err, w)
		}
	}
	burst(5) // before: not recorded
	must(m.StartRecording(req))
	first := recordingOf(t, m, "cmd").File
	want := burst(7)
	must(m.PauseRecording(req))
	if ri := recordingOf(t, m, "cmd"); ri.State != "paused" {
		t.Errorf("after pause: %+v", ri)
	}
	burst(6) // paused: not recorded
	must(m.StartRecording(req))
	if ri := recordingOf(t, m, "cmd"); ri.State != "recording" || ri.File != first {
		t.Errorf("after resume: %+v, want the first file %s", ri, first)
	}
	want = append(want, burst(4)...)
	must(m.StopRecording(req))
	if ri := recordingOf(t, m, "cmd"); ri != nil {
		t.Errorf("after stop: %+v", ri)
	}
	burst(3) // stopped: not recorded
	meta := finished(t, first)
	c := readCapture(t, first)
	c.expect(t, "A -> relay", addrOf(a.rtp), s.aRTP, want)
	c.expect(t, "relay -> B", s.bRTP, addrOf(b.rtp), want)
	if p, _ := meta["pauses"].([]any); len(p) != 1 || meta["ended-by"] != "stop recording" {
		t.Errorf("metadata pauses %v, ended-by %v", meta["pauses"], meta["ended-by"])
	}

	// Recording again: a file of its own, ended by the call's end.
	must(m.StartRecording(req))
	second := recordingOf(t, m, "cmd").File
	if second == first {
		t.Fatal("the second recording reuses the first file")
	}
	again := burst(2)
	// record-call=off in a re-offer stops it too.
	if _, err := m.Offer(Signal{CallID: "cmd", FromTag: "A", ToTag: "B", SDP: a.sdp(), Options: Options{RecordCall: "off"}}); err != nil {
		t.Fatal(err)
	}
	if recordingOf(t, m, "cmd") != nil {
		t.Error("record-call=off left the recording running")
	}
	finished(t, second)
	c = readCapture(t, second)
	c.expect(t, "A -> relay, second recording", addrOf(a.rtp), s.aRTP, again)

	// Unknown calls are refused.
	if _, err := m.StartRecording(RecordingRequest{CallID: "nope"}); err != ErrUnknownCall {
		t.Errorf("start recording of an unknown call: %v", err)
	}
}

// delete with discard-recording leaves no file.
func TestRecordingDiscarded(t *testing.T) {
	m, rec := newRecordingManager(t, 0, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "discard", a, b, Options{Flags: Flags{RecordCall: true}})
	s := sockets(t, m, "discard")
	writeTo(t, a.rtp, s.aRTP, rtpFrame(1, 1, 'A'))
	readN(t, b.rtp, 1)
	file := recordingOf(t, m, "discard").File
	zero := 0
	if _, err := m.Delete(DeleteRequest{CallID: "discard", Options: Options{DeleteDelay: &zero,
		Flags: Flags{DiscardRecording: true}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(file)
		if rec.Stats().Finished == 1 && err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discarded recording: finished %d, pcap file still there: %v", rec.Stats().Finished, err == nil)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(file)), "metadata")); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(file)), "metadata", "*")); len(m) != 0 {
		t.Errorf("a discarded recording left metadata %v", m)
	}
}

// Without recording-dir, record-call and the commands are answered with a
// warning, and nothing is recorded.
func TestRecordingOffWarns(t *testing.T) {
	m, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	out, err := m.OfferOutcome(Signal{CallID: "off", FromTag: "A", SDP: a.sdp(), Options: Options{RecordCall: "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "record-call (recording-dir is not set)") ||
		len(out.Recordings) > 0 {
		t.Errorf("offer warnings %q, recordings %q", out.Warnings, out.Recordings)
	}
	if _, err := m.Answer(Signal{CallID: "off", FromTag: "A", ToTag: "B", SDP: b.sdp()}); err != nil {
		t.Fatal(err)
	}
	w, err := m.StartRecording(RecordingRequest{CallID: "off"})
	if err != nil || len(w) != 1 || w[0] != recordingOff {
		t.Errorf("start recording without recording-dir: %q, %v", w, err)
	}
	// With recording on, record-call draws no warning.
	m2, _ := newRecordingManager(t, 0, nil)
	out, err = m2.OfferOutcome(Signal{CallID: "on", FromTag: "A", SDP: a.sdp(), Options: Options{RecordCall: "yes"}})
	if err != nil || len(out.Warnings) > 0 {
		t.Errorf("offer with recording on: %q, %v", out.Warnings, err)
	}
}

// A flood that overflows a recording's queue is counted as dropped copies,
// and every packet is still forwarded; what was counted as written is in the
// file.
func TestRecordingFloodDropsCopiesNotPackets(t *testing.T) {
	m, _ := newRecordingManager(t, 4096, nil) // a queue of 4 KiB: ~17 packets
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "flood", a, b, Options{RecordCall: "yes"})
	s := sockets(t, m, "flood")
	const rounds, per = 20, 100
	for r := range rounds {
		for i := range per {
			writeTo(t, a.rtp, s.aRTP, rtpFrame(1, uint16(r*per+i), 'F'))
		}
		readN(t, b.rtp, per) // forwarding is unaffected: all of them arrive
	}
	ri := recordingOf(t, m, "flood")
	deleteNow(t, m, "flood")
	meta := finished(t, ri.File)
	written, dropped := meta["packets"].(float64), meta["dropped"].(float64)
	t.Logf("%d datagrams forwarded: %v copies written, %v dropped", rounds*per, written, dropped)
	if dropped == 0 {
		t.Error("a 4 KiB queue took bursts of 100 packets without a drop")
	}
	if written+dropped != 2*rounds*per { // each packet is copied coming in and going out
		t.Errorf("written %v + dropped %v, want %d copies", written, dropped, 2*rounds*per)
	}
	if n := readCapture(t, ri.File).total(); float64(n) != written {
		t.Errorf("%d packets in the file, %v counted as written", n, written)
	}
	st := m.Statistics().Recording
	if st == nil || float64(st.Dropped) != dropped || float64(st.Packets) != written {
		t.Errorf("statistics: %+v", st)
	}
}

// fakeFastPath accepts every rule and forwards nothing: what it shows is
// where the offloader wants each stream.
type fakeFastPath struct {
	mu    sync.Mutex
	rules map[netip.AddrPort]bool
}

func (f *fakeFastPath) Offload(r mplane.OffloadRule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[r.Local] = true
	return nil
}

func (f *fakeFastPath) Withdraw(local netip.AddrPort) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, local)
	return nil
}

func (f *fakeFastPath) Counters(netip.AddrPort) (mplane.KernelCounters, bool) {
	return mplane.KernelCounters{}, false
}
func (f *fakeFastPath) Release(netip.AddrPort) {}

// A kernel-forwarded call that starts recording comes back to userspace
// (still latched: no learning window reopens), and goes back to the kernel
// when the recording stops, without a packet to latch it again.
func TestRecordingLeavesAndReturnsToKernel(t *testing.T) {
	fp := &fakeFastPath{rules: map[netip.AddrPort]bool{}}
	m, _ := newRecordingManager(t, 0, fp)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "kernel", a, b, Options{})
	s := sockets(t, m, "kernel")
	writeTo(t, a.rtp, s.aRTP, rtpFrame(1, 1, 'A'))
	writeTo(t, b.rtp, s.bRTP, rtpFrame(2, 1, 'B'))
	readN(t, a.rtp, 1)
	readN(t, b.rtp, 1)
	flags := func() (aFlags, bFlags []string) {
		info, err := m.Query("kernel", "", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range info.Tags {
			if tag.Tag == "A" {
				aFlags = tag.Medias[0].Streams[0].Flags
			} else {
				bFlags = tag.Medias[0].Streams[0].Flags
			}
		}
		return aFlags, bFlags
	}
	waitKernel := func(what string, want bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			fa, fb := flags()
			if slices.Contains(fa, "kernelized") == want && slices.Contains(fb, "kernelized") == want {
				if !slices.Contains(fa, "confirmed") || !slices.Contains(fb, "confirmed") {
					t.Fatalf("%s: streams unlatched: %v %v", what, fa, fb)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: flags %v %v, want kernelized=%v", what, fa, fb, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitKernel("latched", true)
	req := RecordingRequest{CallID: "kernel"}
	if _, err := m.StartRecording(req); err != nil {
		t.Fatal(err)
	}
	waitKernel("recording", false)
	// The packets reach userspace and the recording while it runs.
	writeTo(t, a.rtp, s.aRTP, rtpFrame(1, 2, 'A'))
	readN(t, b.rtp, 1)
	if _, err := m.PauseRecording(req); err != nil {
		t.Fatal(err)
	}
	waitKernel("paused", true)
	if _, err := m.StartRecording(req); err != nil {
		t.Fatal(err)
	}
	waitKernel("resumed", false)
	file := recordingOf(t, m, "kernel").File
	if _, err := m.StopRecording(req); err != nil {
		t.Fatal(err)
	}
	waitKernel("stopped", true)
	meta := finished(t, file)
	if meta["packets"] != float64(2) {
		t.Errorf("recorded %v packets, want 2 (A -> relay -> B)", meta["packets"])
	}
}

// stageNamed is a do-nothing stage a test can find again.
type stageNamed string

func (stageNamed) Kernel() bool                         { return true }
func (stageNamed) Handle(*mplane.Packet) mplane.Verdict { return mplane.Continue }

// The ingress tap sees what the party sent (first among the Stages, after
// the Handlers), the egress tap what goes to the party (right before SRTP
// protection); the stored configuration is not touched.
func TestTapPlacement(t *testing.T) {
	m, _ := newRecordingManager(t, 0, nil)
	c := newCall(m, "placement")
	rec, err := m.cfg.Recorder.Start("placement")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Stop("test", true)
	c.rec = rec
	protect := webrtc.NewProtect(&webrtc.Counters{})
	base := mplane.StreamConfig{Stages: []mplane.Stage{stageNamed("transform")},
		Egress: []mplane.Stage{stageNamed("egress"), protect}}
	got := c.tapped(base)
	if len(got.Stages) != 2 || got.Stages[0] != rec.Ingress() || got.Stages[1] != stageNamed("transform") {
		t.Errorf("stages %v", got.Stages)
	}
	if len(got.Egress) != 3 || got.Egress[0] != stageNamed("egress") || got.Egress[1] != rec.Egress() ||
		got.Egress[2] != mplane.Stage(protect) {
		t.Errorf("egress %v", got.Egress)
	}
	if len(base.Stages) != 1 || len(base.Egress) != 2 || base.Egress[1] != mplane.Stage(protect) {
		t.Error("tapped changed the stored configuration")
	}
	plain := c.tapped(mplane.StreamConfig{})
	if len(plain.Egress) != 1 || plain.Egress[0] != rec.Egress() {
		t.Errorf("plain egress %v", plain.Egress)
	}
	rec.Pause()
	if p := c.tapped(base); len(p.Stages) != 1 || len(p.Egress) != 2 {
		t.Error("a paused recording still taps")
	}
}

// A relay that restores a recorded call (as after a restart with
// state-dir) records on, in a new file, with the endpoints still latched; a
// paused recording stays paused.
func TestRecordingSurvivesRestore(t *testing.T) {
	for _, paused := range []bool{false, true} {
		t.Run(fmt.Sprintf("paused=%v", paused), func(t *testing.T) {
			m, rec := newRecordingManager(t, 0, nil)
			a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
			setupCall(t, m, "restored", a, b, Options{RecordCall: "yes", Metadata: "kept"})
			s := sockets(t, m, "restored")
			writeTo(t, a.rtp, s.aRTP, rtpFrame(1, 1, 'A'))
			readN(t, b.rtp, 1)
			if paused {
				if _, err := m.PauseRecording(RecordingRequest{CallID: "restored"}); err != nil {
					t.Fatal(err)
				}
			}
			first := recordingOf(t, m, "restored").File
			cs, ok := m.Snapshot("restored")
			if !ok {
				t.Fatal("no state")
			}
			raw, err := json.Marshal(cs)
			if err != nil {
				t.Fatal(err)
			}
			// The old relay hands over: its calls are not ended, its
			// sockets close, and its recorder finishes the file on its own.
			m.HandOver()
			m.Close()
			_ = m.cfg.Media.(*mplane.Engine).Close()
			rec.Close()
			meta := finished(t, first)
			if parties, _ := meta["parties"].([]any); meta["ended-by"] != "shutdown" || len(parties) != 2 {
				t.Errorf("old relay's recording: ended by %v, parties %v", meta["ended-by"], meta["parties"])
			}
			m2, _ := newRecordingManager(t, 0, nil)
			var back CallState
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if err := m2.Restore(back); err != nil {
				t.Fatalf("restore: %v\n%s", err, raw)
			}
			ri := recordingOf(t, m2, "restored")
			want := map[bool]string{false: "recording", true: "paused"}[paused]
			if ri == nil || ri.State != want || ri.File == first {
				t.Fatalf("restored recording %+v, want %s in a new file", ri, want)
			}
			var sent [][]byte
			for i := range 5 {
				p := rtpFrame(1, uint16(10+i), 'A')
				sent = append(sent, p)
				writeTo(t, a.rtp, s.aRTP, p)
			}
			readN(t, b.rtp, 5)
			if paused {
				sent = nil
			}
			deleteNow(t, m2, "restored")
			meta = finished(t, ri.File)
			if meta["metadata"] != "kept" {
				t.Errorf("metadata %v", meta["metadata"])
			}
			readCapture(t, ri.File).expect(t, "A -> relay after the restore", addrOf(a.rtp), s.aRTP, sent)
		})
	}
}
