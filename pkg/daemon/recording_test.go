// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// relayd with recording-dir records a call Kamailio flags with
// record-call: the pcap file holds both directions, the metadata file
// appears when the call ends, and /metrics counts the packets. The
// incumbent's recording-method=proc is accepted with a warning.
func TestRecordingDaemon(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--config-file=none", "--listen-ng=127.0.0.1:24270", "--port-min=24400",
			"--port-max=24499", "--listen-http=127.0.0.1:24271", "--xdp=off", "--recording-dir=" + dir,
			"--recording-method=proc", "--recording-format=eth"}, logs)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	const addr = "127.0.0.1:24270"
	a, b := udp(t), udp(t)
	sdp := func(c *net.UDPConn) string {
		port := c.LocalAddr().(*net.UDPAddr).Port
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
			"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port)
	}
	off := ng(t, addr, map[string]any{"command": "offer", "call-id": "rec@daemon", "from-tag": "a", "sdp": sdp(a),
		"record-call": "yes", "label": "caller"})
	if off["result"] != "ok" || off["warning"] != nil || off["recordings"] == nil {
		t.Fatalf("offer: %v", off)
	}
	ans := ng(t, addr, map[string]any{"command": "answer", "call-id": "rec@daemon", "from-tag": "a", "to-tag": "b",
		"sdp": sdp(b)})
	toA, toB := mediaPort(t, ans["sdp"].(string)), mediaPort(t, off["sdp"].(string))
	pkt := make([]byte, 172)
	pkt[0], pkt[1] = 0x80, 0
	for i := range 10 {
		pkt[3] = byte(i)
		if _, err := a.WriteToUDP(pkt, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: toA}); err != nil {
			t.Fatal(err)
		}
		_ = b.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := b.ReadFromUDP(make([]byte, 2048)); err != nil {
			t.Fatalf("packet %d not relayed: %v", i, err)
		}
	}
	file := off["recordings"].([]any)[0].(string)
	if !strings.HasPrefix(file, filepath.Join(dir, "pcaps")+"/") {
		t.Errorf("recording file %s is not under %s/pcaps", file, dir)
	}
	del := ng(t, addr, map[string]any{"command": "delete", "call-id": "rec@daemon", "from-tag": "a", "delete delay": 0})
	if rd, _ := del["recording"].(map[string]any); del["result"] != "ok" || rd["state"] != "recording" {
		t.Errorf("delete: %v", del)
	}
	meta := filepath.Join(dir, "metadata", strings.TrimSuffix(filepath.Base(file), ".pcap")+".json")
	waitFor(t, "the metadata file", 3*time.Second, func() bool { _, err := os.Stat(meta); return err == nil })
	resp, err := http.Get("http://127.0.0.1:24271/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`relayd_recording_packets_total{result="written"} 20`,
		`relayd_recording_packets_total{result="dropped"} 0`, `relayd_recordings_total{event="finished"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	stop()
	if !strings.Contains(logs.String(), "recording-method = proc: relayd writes pcap files only") {
		t.Errorf("no warning about recording-method=proc in:\n%s", logs.String())
	}
	rows := testenv.TSharkFields(t, file, nil, "eth.type", "udp.srcport", "udp.dstport")
	if len(rows) != 20 {
		t.Fatalf("tshark reads %d packets, want 20 (10 each way through the relay)", len(rows))
	}
	into, out := 0, 0
	for _, r := range rows {
		if r[0] != "0x0800" {
			t.Errorf("eth.type %s, want 0x0800 (recording-format=eth)", r[0])
		}
		switch {
		case r[2] == strconv.Itoa(toA):
			into++
		case r[1] == strconv.Itoa(toB):
			out++
		}
	}
	if into != 10 || out != 10 {
		t.Errorf("%d packets to the relay's port facing A, %d from its port facing B; want 10 and 10", into, out)
	}
}

func TestRecordingDirErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/nonexistent/spool", file, "relative/spool"} {
		err := Run(context.Background(), []string{"--config-file=none", "--xdp=off", "--listen-ng=127.0.0.1:24272",
			"--recording-dir=" + dir}, &syncBuffer{})
		if err == nil || !strings.Contains(err.Error(), "recording-dir") || !strings.Contains(err.Error(), dir) {
			t.Errorf("recording-dir=%s: %v, want an error naming the key and the path", dir, err)
		}
	}
}

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var mLine = regexp.MustCompile(`m=audio (\d+) `)

func mediaPort(t *testing.T, sdp string) int {
	t.Helper()
	m := mLine.FindStringSubmatch(sdp)
	if m == nil {
		t.Fatalf("no m=audio in %q", sdp)
	}
	p, _ := strconv.Atoi(m[1])
	return p
}
