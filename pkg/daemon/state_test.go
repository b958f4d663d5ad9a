// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/sdp"
)

// runDaemon runs relayd until stop is called; stop waits for it to exit.
func runDaemon(t *testing.T, args ...string) (logs *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, args, logs) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return logs, stop
}

// relayPort reads the port relayd put in an SDP.
func relayPort(t *testing.T, body string) int {
	t.Helper()
	d, err := sdp.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return d.Media[0].Port
}

// through sends from one peer to the relay port and reports whether the
// other peer got it within wait.
func through(from, to *net.UDPConn, relay int, payload string, wait time.Duration) bool {
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relay}
	buf := make([]byte, 1500)
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		// An RTP-looking packet: version 2, PT 0.
		pkt := append([]byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7}, payload...)
		_, _ = from.WriteToUDP(pkt, dst)
		_ = to.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		for {
			n, _, err := to.ReadFromUDP(buf)
			if err != nil {
				break
			}
			if strings.HasSuffix(string(buf[:n]), payload) {
				return true
			}
		}
	}
	return false
}

// A relayd with a state-dir hands its calls to the next one: the call is
// there after the restart on the same ports, media flows again, the
// proxy's retransmission of an answered offer gets the same reply, and a
// delete ends the call for good.
func TestRestartKeepsCalls(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	const ngAddr = "127.0.0.1:24296"
	args := []string{"--config-file=none", "--listen-ng=" + ngAddr, "--interface=127.0.0.1",
		"--port-min=42300", "--port-max=42399", "--xdp=off", "--state-dir=" + state}
	peerA, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peerA.Close()
	peerB, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peerB.Close()
	sdpOf := func(c *net.UDPConn) string {
		port := c.LocalAddr().(*net.UDPAddr).Port
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(port) + " RTP/AVP 0\r\n"
	}

	_, stop := runDaemon(t, args...)
	c, err := ngproto.Dial(ngAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout, c.Tries = 200*time.Millisecond, 25
	ctx := context.Background()
	offer := map[string]any{"command": "offer", "call-id": "survivor", "from-tag": "a", "sdp": sdpOf(peerA)}
	offered, err := c.DoCookie(ctx, "cookie-offer", offer)
	if err != nil || offered["result"] != "ok" {
		t.Fatalf("offer: %v %v", offered, err)
	}
	answered, err := c.Do(ctx, map[string]any{"command": "answer", "call-id": "survivor", "from-tag": "a",
		"to-tag": "b", "sdp": sdpOf(peerB)})
	if err != nil || answered["result"] != "ok" {
		t.Fatalf("answer: %v %v", answered, err)
	}
	toB, toA := relayPort(t, offered["sdp"].(string)), relayPort(t, answered["sdp"].(string))
	if !through(peerA, peerB, toA, "before-ab", 2*time.Second) || !through(peerB, peerA, toB, "before-ba", 2*time.Second) {
		t.Fatal("no media through the relay before the restart")
	}

	stop()
	for _, f := range []string{identityFile, repliesFile} {
		if _, err := os.Stat(filepath.Join(state, f)); err != nil {
			t.Errorf("after the stop: %v", err)
		}
	}
	calls, _ := filepath.Glob(filepath.Join(state, "*.call"))
	if len(calls) != 1 {
		t.Fatalf("%d call records after the stop, want 1", len(calls))
	}

	logs, _ := runDaemon(t, args...)
	// The first media after the restart needs no signalling at all.
	if !through(peerA, peerB, toA, "after-ab", 2*time.Second) || !through(peerB, peerA, toB, "after-ba", 2*time.Second) {
		t.Fatalf("no media through the relay after the restart:\n%s", logs.String())
	}
	again, err := c.DoCookie(ctx, "cookie-offer", offer)
	if err != nil || again["sdp"] != offered["sdp"] {
		t.Errorf("retransmitted offer after the restart: %v %v, want the reply the old relayd gave", again, err)
	}
	q, err := c.Do(ctx, map[string]any{"command": "query", "call-id": "survivor"})
	if err != nil || q["result"] != "ok" {
		t.Fatalf("query after the restart: %v %v", q, err)
	}
	if !strings.Contains(logs.String(), "calls restored") || !strings.Contains(logs.String(), "restored=1") {
		t.Errorf("no restore line in the log:\n%s", logs.String())
	}
	del, err := c.Do(ctx, map[string]any{"command": "delete", "call-id": "survivor", "delete delay": 0})
	if err != nil || del["result"] != "ok" {
		t.Fatalf("delete: %v %v", del, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		calls, _ = filepath.Glob(filepath.Join(state, "*.call"))
		if len(calls) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted call's record is still there: %v", calls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A state-dir that cannot be used stops startup with the key named.
func TestBadStateDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), []string{"--config-file=none", "--xdp=off", "--listen-ng=127.0.0.1:24295",
		"--state-dir=" + f}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "state-dir") {
		t.Fatalf("got %v, want an error naming state-dir", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// Every packet the old relayd forwarded is in the call's counters after a
// restart: the last write of the calls' state comes after the media plane
// stopped, not while it still forwards.
func TestRestartCountsEveryPacket(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	const ngAddr = "127.0.0.1:24297"
	args := []string{"--config-file=none", "--listen-ng=" + ngAddr, "--interface=127.0.0.1",
		"--port-min=42400", "--port-max=42499", "--xdp=off", "--state-dir=" + state}
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	peerA, peerB := listen(), listen()
	sdpOf := func(c *net.UDPConn) string {
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0\r\n"
	}
	_, stop := runDaemon(t, args...)
	c, err := ngproto.Dial(ngAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout, c.Tries = 200*time.Millisecond, 25
	ctx := context.Background()
	if r, err := c.Do(ctx, map[string]any{"command": "offer", "call-id": "counted", "from-tag": "a", "sdp": sdpOf(peerA)}); err != nil || r["result"] != "ok" {
		t.Fatalf("offer: %v %v", r, err)
	}
	answered, err := c.Do(ctx, map[string]any{"command": "answer", "call-id": "counted", "from-tag": "a",
		"to-tag": "b", "sdp": sdpOf(peerB)})
	if err != nil || answered["result"] != "ok" {
		t.Fatalf("answer: %v %v", answered, err)
	}
	toA := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayPort(t, answered["sdp"].(string))}

	// A sends a packet every millisecond across the restart; B counts.
	var sent, received int
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_ = peerB.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := peerB.ReadFromUDP(buf); err != nil {
				return
			}
			received++
		}
	}()
	sendFor := func(d time.Duration) {
		pkt := []byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7, 'x'}
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if _, err := peerA.WriteToUDP(pkt, toA); err == nil {
				sent++
			}
		}
	}
	sendFor(300 * time.Millisecond)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	sendFor(300 * time.Millisecond)
	<-stopped
	runDaemon(t, args...)
	if r, err := c.Do(ctx, map[string]any{"command": "ping"}); err != nil || r["result"] != "pong" {
		t.Fatalf("ping after the restart: %v %v", r, err)
	}
	sendFor(300 * time.Millisecond)
	<-done // B heard nothing for a second: everything forwarded has arrived
	del, err := c.Do(ctx, map[string]any{"command": "delete", "call-id": "counted", "delete delay": 0})
	if err != nil || del["result"] != "ok" {
		t.Fatalf("delete: %v %v", del, err)
	}
	totals, _ := del["totals"].(map[string]any)
	rtp, _ := totals["RTP"].(map[string]any)
	counted, _ := rtp["packets"].(int64)
	t.Logf("A sent %d packets, B received %d, the relay counted %d", sent, received, counted)
	if counted < int64(received) || counted > int64(sent) {
		t.Errorf("the relay counted %d RTP packets; B received %d of the %d A sent", counted, received, sent)
	}
}
