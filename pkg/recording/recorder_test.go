// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// rtpPacket is an RTP packet: PT 8, the given SSRC and sequence number, and
// a payload that says which packet it is.
func rtpPacket(ssrc uint32, seq uint16, n int) []byte {
	b := make([]byte, 12+n)
	b[0], b[1] = 0x80, 8
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = byte(int(seq) + i)
	}
	return b
}

// rtcpSR is a minimal RTCP sender report from ssrc.
func rtcpSR(ssrc uint32) []byte {
	b := make([]byte, 28)
	b[0], b[1] = 0x80, 200
	binary.BigEndian.PutUint16(b[2:], 6)
	binary.BigEndian.PutUint32(b[4:], ssrc)
	return b
}

func newTestRecorder(t *testing.T, f Format, queue int) *Recorder {
	t.Helper()
	r, err := New(Config{Dir: t.TempDir(), Format: f, QueueBytes: queue})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func waitDone(t *testing.T, rec *Recording) {
	t.Helper()
	select {
	case <-rec.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("recording never finished")
	}
}

// sent is one datagram handed to a recording, as tshark must show it.
type sent struct {
	ns       int64
	src, dst netip.AddrPort
	data     []byte
}

// checkCapture reads file with tshark and compares it packet by packet
// with want: addresses, ports, time, checksums, and the RTP header and
// payload (or the RTCP packet type).
func checkCapture(t *testing.T, file string, want []sent) {
	t.Helper()
	rows := testenv.TSharkFields(t, file,
		[]string{"-o", "rtp.heuristic_rtp:TRUE", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"},
		"frame.time_epoch", "ip.src", "ipv6.src", "udp.srcport", "ip.dst", "ipv6.dst", "udp.dstport",
		"ip.checksum.status", "udp.checksum.status", "rtp.ssrc", "rtp.seq", "rtp.payload", "rtcp.pt", "udp.payload")
	if len(rows) != len(want) {
		t.Fatalf("tshark shows %d packets, want %d", len(rows), len(want))
	}
	for i, r := range rows {
		w := want[i]
		src, dst := r[1]+r[2], r[4]+r[5]
		if src != w.src.Addr().String() || r[3] != strconv.Itoa(int(w.src.Port())) ||
			dst != w.dst.Addr().String() || r[6] != strconv.Itoa(int(w.dst.Port())) {
			t.Errorf("packet %d: %s:%s -> %s:%s, want %v -> %v", i+1, src, r[3], dst, r[6], w.src, w.dst)
		}
		if ts := fmt.Sprintf("%d.%06d", w.ns/1e9, w.ns%1e9/1e3); !strings.HasPrefix(r[0], ts) {
			t.Errorf("packet %d: time %s, want %s", i+1, r[0], ts)
		}
		if (w.src.Addr().Is4() && r[7] != "1") || r[8] != "1" { // 1 = good
			t.Errorf("packet %d: checksum status ip %q udp %q, want good (1)", i+1, r[7], r[8])
		}
		if got, _ := hex.DecodeString(r[13]); string(got) != string(w.data) {
			t.Errorf("packet %d: UDP payload % x, want % x", i+1, got, w.data)
		}
		if w.data[1] == 200 {
			if r[12] != "200" {
				t.Errorf("packet %d: RTCP type %q, want 200", i+1, r[12])
			}
			continue
		}
		ssrc := binary.BigEndian.Uint32(w.data[8:])
		seq := binary.BigEndian.Uint16(w.data[2:])
		if r[9] != fmt.Sprintf("0x%08x", ssrc) || r[10] != strconv.Itoa(int(seq)) ||
			r[11] != hex.EncodeToString(w.data[12:]) {
			t.Errorf("packet %d: RTP ssrc %s seq %s payload %.16s…, want 0x%08x %d %.16s…",
				i+1, r[9], r[10], r[11], ssrc, seq, hex.EncodeToString(w.data[12:]))
		}
	}
}

func readMeta(t *testing.T, rec *Recording) map[string]any {
	t.Helper()
	b, err := os.ReadFile(rec.MetaPath())
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("metadata %s: %v", b, err)
	}
	return m
}

// Both directions of a call, IPv4 and IPv6, in both formats: tshark reads
// back exactly what was queued, with good checksums, and the metadata file
// appears when the recording stops.
func TestRecorderWritesPcap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		party  netip.AddrPort
		relay  netip.AddrPort
	}{
		{"raw-ipv4", FormatRaw, netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")},
		{"eth-ipv4", FormatEth, netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")},
		{"raw-ipv6", FormatRaw, netip.MustParseAddrPort("[2001:db8::10]:4000"), netip.MustParseAddrPort("[2001:db8::1]:30000")},
		{"eth-ipv6", FormatEth, netip.MustParseAddrPort("[2001:db8::10]:4000"), netip.MustParseAddrPort("[2001:db8::1]:30001")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRecorder(t, tc.format, 0)
			rec, err := r.Start("a/b@c d")
			if err != nil {
				t.Fatal(err)
			}
			rec.SetMeta(Meta{CallID: "a/b@c d", Parties: []Party{{Tag: "A", Medias: []Media{{Index: 1, Type: "audio",
				Protocol: "RTP/AVP", Codecs: []Codec{{8, "PCMA/8000"}}, Streams: []Stream{{Relay: tc.relay, Party: tc.party}}}}}}})
			base := time.Date(2026, 5, 4, 3, 2, 1, 123456789, time.UTC).UnixNano()
			var want []sent
			for i := range 40 {
				s := sent{ns: base + int64(i)*20e6, src: tc.party, dst: tc.relay, data: rtpPacket(0x1234, uint16(i), 160+i%2)}
				if i%2 == 1 {
					s.src, s.dst = tc.relay, tc.party
					s.data = rtpPacket(0x5678, uint16(i), 160)
				}
				want = append(want, s)
			}
			want = append(want, sent{ns: base + 1e9, src: tc.party, dst: tc.relay, data: rtcpSR(0x1234)})
			for _, s := range want {
				rec.put(s.ns, s.src, s.dst, s.data)
			}
			rec.Stop("test", false)
			waitDone(t, rec)
			if st := rec.Stats(); st.Packets != uint64(len(want)) || st.Dropped != 0 || st.Failed != 0 {
				t.Errorf("stats %+v, want %d packets written", st, len(want))
			}
			checkCapture(t, rec.Path(), want)
			if strings.Contains(filepath.Base(rec.Path()), "/") || !strings.HasPrefix(filepath.Base(rec.Path()), "a%2Fb%40c%20d-") {
				t.Errorf("file name %q", filepath.Base(rec.Path()))
			}
			m := readMeta(t, rec)
			if m["call-id"] != "a/b@c d" || m["pcap"] != rec.Path() || m["packets"] != float64(len(want)) ||
				m["recording-format"] != tc.format.String() || m["ended-by"] != "test" {
				t.Errorf("metadata %v", m)
			}
			if _, err := os.Stat(filepath.Join(r.Dir(), "tmp", filepath.Base(rec.MetaPath()))); err == nil {
				t.Error("metadata left in tmp/")
			}
		})
	}
}

// Pause takes nothing until Resume, into the same file; Discard leaves no
// file behind; a second recording of the same call gets its own file.
func TestRecorderPauseResumeDiscard(t *testing.T) {
	r := newTestRecorder(t, FormatRaw, 0)
	party, relay := netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")
	rec, _ := r.Start("call")
	var want []sent
	put := func(i int, keep bool) {
		s := sent{ns: int64(i) * 1e6, src: party, dst: relay, data: rtpPacket(1, uint16(i), 20)}
		rec.put(s.ns, s.src, s.dst, s.data)
		if keep {
			want = append(want, s)
		}
	}
	for i := range 5 {
		put(i, true)
	}
	rec.Pause()
	for i := 5; i < 10; i++ {
		put(i, false)
	}
	rec.Resume()
	for i := 10; i < 15; i++ {
		put(i, true)
	}
	rec.Stop("stop recording", false)
	waitDone(t, rec)
	checkCapture(t, rec.Path(), want)
	m := readMeta(t, rec)
	if p, _ := m["pauses"].([]any); len(p) != 1 {
		t.Errorf("pauses %v, want one", m["pauses"])
	}

	again, _ := r.Start("call")
	if again.Path() == rec.Path() {
		t.Fatal("second recording of the call reuses the first file")
	}
	again.put(1, party, relay, rtpPacket(1, 1, 20))
	again.Stop("deleted", true)
	waitDone(t, again)
	for _, f := range []string{again.Path(), again.MetaPath()} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s survived a discarded recording", f)
		}
	}
	if s := r.Stats(); s.Started != 2 || s.Finished != 2 || s.Active != 0 {
		t.Errorf("recorder stats %+v", s)
	}
}

// A writer that cannot keep up never holds a producer back: what does not
// fit is dropped and counted, and everything counted as written is in the
// file.
func TestRecorderOverflowCounted(t *testing.T) {
	r := newTestRecorder(t, FormatRaw, 4096)
	party, relay := netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")
	rec, _ := r.Start("flood")
	// The writer needs the recorder's lock to find the recording: holding
	// it stalls the writer.
	r.mu.Lock()
	var want []sent
	for i := range 100 {
		s := sent{ns: int64(i), src: party, dst: relay, data: rtpPacket(1, uint16(i), 160)}
		before := rec.dropped.Load()
		rec.put(s.ns, s.src, s.dst, s.data)
		if rec.dropped.Load() == before {
			want = append(want, s)
		}
	}
	r.mu.Unlock()
	rec.Stop("test", false)
	waitDone(t, rec)
	st := rec.Stats()
	if st.Dropped == 0 || st.Packets != uint64(len(want)) || st.Packets+st.Dropped != 100 {
		t.Errorf("stats %+v: want drops, and written + dropped = 100 with %d written", st, len(want))
	}
	if rs := r.Stats(); rs.Dropped != st.Dropped {
		t.Errorf("recorder counts %d drops, the recording %d", rs.Dropped, st.Dropped)
	}
	checkCapture(t, rec.Path(), want)
}

// Close finishes what is still running, metadata included.
func TestRecorderCloseFinishes(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := r.Start("running")
	rec.put(1, netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000"), rtpPacket(1, 1, 20))
	r.Close()
	waitDone(t, rec)
	if m := readMeta(t, rec); m["ended-by"] != "shutdown" || m["packets"] != float64(1) {
		t.Errorf("metadata %v", m)
	}
	if _, err := r.Start("late"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestRecorderDirErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("no directory accepted")
	}
	if _, err := New(Config{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing directory accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: f}); err == nil {
		t.Error("a file accepted as directory")
	}
}

func TestFileName(t *testing.T) {
	for in, prefix := range map[string]string{
		"abc-123@host":  "abc-123%40host-",
		"../../etc":     "%2E.%2F..%2Fetc-",
		".hidden":       "%2Ehidden-",
		"a\x00b\nc":     "a%00b%0Ac-",
		"UPPER.lower~_": "UPPER.lower~_-",
	} {
		if got := fileName(in); !strings.HasPrefix(got, prefix) || len(got) != len(prefix)+16 {
			t.Errorf("fileName(%q) = %q, want %q + 16 hex digits", in, got, prefix)
		}
	}
	long := fileName(strings.Repeat("@", 1000))
	if len(long) > maxNameLen+17 || !regexp.MustCompile(`^(%40)+-[0-9a-f]{16}$`).MatchString(long) {
		t.Errorf("long call-id gives %d bytes: %q", len(long), long)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"raw": FormatRaw, "": FormatRaw, "ETH": FormatEth} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("pcapng"); err == nil {
		t.Error("pcapng accepted")
	}
}

// The per-packet copy allocates nothing, whether it queues or drops.
func TestPutAllocatesNothing(t *testing.T) {
	r := newTestRecorder(t, FormatRaw, 4096)
	rec, _ := r.Start("allocs")
	party, relay := netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")
	pkt := rtpPacket(1, 1, 160)
	r.mu.Lock() // stall the writer: most of the runs find the queue full
	n := testing.AllocsPerRun(200, func() { rec.put(1, party, relay, pkt) })
	r.mu.Unlock()
	if n != 0 {
		t.Errorf("put allocates %.1f times", n)
	}
}

// BenchmarkPut is the per-packet cost of a tap: one copy into the queue.
// The writer is held off and the queue emptied without writing every 256
// copies, so every put copies (none is a cheap drop).
func BenchmarkPut(b *testing.B) {
	r, err := New(Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	rec, _ := r.Start("bench")
	party, relay := netip.MustParseAddrPort("192.0.2.10:4000"), netip.MustParseAddrPort("198.51.100.1:30000")
	pkt := rtpPacket(1, 1, 160)
	r.mu.Lock()
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	n := 0
	for b.Loop() {
		rec.put(1, party, relay, pkt)
		if n++; n%256 == 0 {
			rec.q.drain(func(*record) {})
		}
	}
	b.StopTimer()
	r.mu.Unlock()
	if d := rec.Stats().Dropped; d > 0 {
		b.Fatalf("%d copies dropped: the benchmark measured drops", d)
	}
	rec.Stop("bench", true)
	<-rec.Done()
}
