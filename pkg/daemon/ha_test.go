// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayd/relayd/pkg/cli"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/statestore"
	"github.com/relayd/relayd/test/testenv"
)

// haNode is one relayd of a pair sharing Redis, in this process.
type haNode struct {
	name        string
	ng, cliAddr string
	c           *ngproto.Client
	logs        *syncBuffer
	stop        func()
}

func startHANode(t *testing.T, srv *testenv.Redis, name, addr string, ngPort, cliPort int, extra ...string) *haNode {
	t.Helper()
	n := &haNode{name: name, ng: fmt.Sprintf("127.0.0.1:%d", ngPort), cliAddr: fmt.Sprintf("127.0.0.1:%d", cliPort)}
	args := append([]string{"--config-file=none", "--listen-ng=" + n.ng, "--listen-cli=" + n.cliAddr,
		"--interface=" + addr, "--port-min=42500", "--port-max=42699", "--xdp=off",
		"--redis=" + srv.Addr() + "/4", "--subscribe-keyspace=4", "--node-name=" + name}, extra...)
	n.logs, n.stop = runDaemon(t, args...)
	c, err := ngproto.Dial(n.ng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Timeout, c.Tries = 200*time.Millisecond, 25
	n.c = c
	return n
}

func (n *haNode) do(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	r, err := n.c.Do(context.Background(), req)
	if err != nil || r["result"] != "ok" {
		t.Fatalf("%s: %v: %v %v", n.name, req["command"], r, err)
	}
	return r
}

func (n *haNode) ctl(t *testing.T, cmd string) string {
	t.Helper()
	out, err := cli.Send(n.cliAddr, cmd, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %s: %v", n.name, cmd, err)
	}
	return out
}

var foreignRE = regexp.MustCompile(`Current sessions foreign: (\d+)`)

func (n *haNode) foreign(t *testing.T) string {
	m := foreignRE.FindStringSubmatch(n.ctl(t, "list numsessions"))
	if m == nil {
		return "?"
	}
	return m[1]
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var fingerprintRE = regexp.MustCompile(`a=fingerprint:(\S+ \S+)`)

// An active/standby pair on one Redis database, each relayd following it:
// the standby holds the active's call foreign on the same ports, both write
// the same DTLS fingerprint, media reaching the standby flows at once and
// (active-switchover) makes the call its own, written under its name; the
// old active then holds the call foreign, and the standby serves its
// signalling.
func TestRedisPairTakesOverByMedia(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := startHANode(t, srv, "a", "127.0.0.1", 24310, 24311)
	b := startHANode(t, srv, "b", "127.0.0.2", 24312, 24313, "--active-switchover")
	peerA, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	peerB, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer peerA.Close()
	defer peerB.Close()
	sdpOf := func(c *net.UDPConn) string {
		return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n",
			c.LocalAddr().(*net.UDPAddr).Port)
	}
	offered := a.do(t, map[string]any{"command": "offer", "call-id": "survivor", "from-tag": "fa", "sdp": sdpOf(peerA)})
	answered := a.do(t, map[string]any{"command": "answer", "call-id": "survivor", "from-tag": "fa", "to-tag": "tb",
		"sdp": sdpOf(peerB)})
	toB, toA := relayPort(t, offered["sdp"].(string)), relayPort(t, answered["sdp"].(string))
	if !through(peerA, peerB, toA, "via-a", 2*time.Second) {
		t.Fatal("no media through the active relay")
	}
	eventually(t, "the standby holds the call foreign", 5*time.Second, func() bool { return b.foreign(t) == "1" })
	if a.foreign(t) != "0" {
		t.Errorf("the active holds %s foreign calls", a.foreign(t))
	}

	// One certificate for the pair: a call's a=fingerprint is the same
	// whichever relay writes it.
	webrtcOffer := func(n *haNode, id string) string {
		r := n.do(t, map[string]any{"command": "offer", "call-id": id, "from-tag": "x", "sdp": sdpOf(peerA),
			"transport-protocol": "UDP/TLS/RTP/SAVPF", "ICE": "force"})
		m := fingerprintRE.FindStringSubmatch(r["sdp"].(string))
		if m == nil {
			t.Fatalf("%s: no a=fingerprint in\n%s", n.name, r["sdp"])
		}
		return m[1]
	}
	if fa, fb := webrtcOffer(a, "dtls-a"), webrtcOffer(b, "dtls-b"); fa != fb {
		t.Errorf("fingerprints differ: a %s, b %s", fa, fb)
	}

	// The traffic moves to the standby (as a floating address would move
	// it): forwarded at once, from the same ports, on the endpoints the
	// active had learned; then the call is the standby's.
	bAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}
	got := make(chan bool, 1)
	go func() {
		buf := make([]byte, 1500)
		_ = peerB.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			n, from, err := peerB.ReadFromUDP(buf)
			if err != nil {
				got <- false
				return
			}
			if from.IP.Equal(bAddr.IP) && strings.HasSuffix(string(buf[:n]), "to-standby") {
				got <- true
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		pkt := append([]byte{0x80, 0, 0, byte(i), 0, 0, 0, 1, 0, 0, 0, 7}, "to-standby"...)
		_, _ = peerA.WriteToUDP(pkt, &net.UDPAddr{IP: bAddr.IP, Port: toA})
		time.Sleep(20 * time.Millisecond)
	}
	if !<-got {
		t.Fatalf("no media through the standby\n%s", b.logs.String())
	}

	raw := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 4, Protocol: 2})
	defer raw.Close()
	eventually(t, "the call's record written by the standby", 5*time.Second, func() bool {
		rec, err := raw.Get(context.Background(), "survivor").Bytes()
		if err != nil {
			return false
		}
		cs, err := statestore.Decode(rec)
		return err == nil && cs.Node == "b"
	})
	if !strings.Contains(b.logs.String(), "by=media") {
		t.Errorf("the standby's log does not say media took the call over:\n%s", b.logs.String())
	}
	eventually(t, "the old active holds the call foreign", 5*time.Second, func() bool {
		return strings.Contains(a.ctl(t, "list sessions foreign"), "survivor")
	})
	if !strings.Contains(b.ctl(t, "list sessions own"), "survivor") {
		t.Error("the standby does not list the call as its own")
	}
	// Its signalling now goes to the standby: a re-INVITE keeps the port.
	re := b.do(t, map[string]any{"command": "offer", "call-id": "survivor", "from-tag": "fa", "to-tag": "tb",
		"sdp": sdpOf(peerA)})
	if got := relayPort(t, re["sdp"].(string)); got != toB {
		t.Errorf("re-INVITE through the standby: port %d, was %d", got, toB)
	}
}

// Redis not answering at start stops it, naming the key and the way out;
// with no-redis-required relayd starts and says so.
func TestRedisRequired(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	args := []string{"--config-file=none", "--xdp=off", "--listen-ng=127.0.0.1:24320", "--redis=" + dead + "/1",
		"--port-min=42700", "--port-max=42799"}
	err = Run(context.Background(), args, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), "no-redis-required") {
		t.Fatalf("start without Redis: %v", err)
	}
	logs, stop := runDaemon(t, append(args, "--no-redis-required")...)
	c, err := ngproto.Dial("127.0.0.1:24320")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Timeout, c.Tries = 200*time.Millisecond, 25
	r, err := c.Do(context.Background(), map[string]any{"command": "offer", "call-id": "x", "from-tag": "a",
		"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"})
	if err != nil || r["result"] != "ok" {
		t.Fatalf("offer with Redis down: %v %v", r, err)
	}
	stop()
	if !strings.Contains(logs.String(), "Redis does not answer") {
		t.Errorf("no warning in the log:\n%s", logs.String())
	}
}

// A relay of a group restarted (an upgrade) takes its own calls back from
// Redis as its own, not as foreign: the records carry its node-name.
func TestRedisRestartKeepsOwnCalls(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := startHANode(t, srv, "a", "127.0.0.1", 24330, 24331)
	peer, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer peer.Close()
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\n",
		peer.LocalAddr().(*net.UDPAddr).Port)
	offered := a.do(t, map[string]any{"command": "offer", "call-id": "upgrade", "from-tag": "fa", "sdp": sdp})
	a.do(t, map[string]any{"command": "answer", "call-id": "upgrade", "from-tag": "fa", "to-tag": "tb", "sdp": sdp})
	a.stop()
	a2 := startHANode(t, srv, "a", "127.0.0.1", 24330, 24331)
	eventually(t, "the call back", 5*time.Second, func() bool {
		out, err := cli.Send(a2.cliAddr, "list sessions own", time.Second)
		return err == nil && strings.Contains(out, "upgrade")
	})
	if !strings.Contains(a2.logs.String(), "restored=1 foreign=0") {
		t.Errorf("restart log:\n%s", a2.logs.String())
	}
	// The same ports: a re-INVITE gets the port the first offer got.
	re := a2.do(t, map[string]any{"command": "offer", "call-id": "upgrade", "from-tag": "fa", "to-tag": "tb", "sdp": sdp})
	if got, want := relayPort(t, re["sdp"].(string)), relayPort(t, offered["sdp"].(string)); got != want {
		t.Errorf("port %d after the restart, was %d", got, want)
	}
}
