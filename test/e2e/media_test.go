// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

const (
	mediaCalls = 10
	// g711aPackets is the RTP packet count of g711a.pcap (236 PCMA packets
	// over 7.05 s); the test re-reads the file and fails if it changed.
	g711aPackets = 236
	// mediaHoldMS keeps each call up until both plays are over: the pcap
	// lasts 7.05 s and the callee starts about a round trip later.
	mediaHoldMS = 8500
)

// TestKamailioMedia places ten concurrent calls through Kamailio and the relay
// while both sipp sides play g711a.pcap, in each network layout, and checks
// on each far end that every packet arrived, from the relay's address on that
// side only, one relay port per call, each port being the one the relay
// advertised in that call's SDP. With two interfaces caller and callee have no
// route to each other, so media that skips the relay cannot arrive at all;
// with one they share a segment, and a packet that skipped the relay arrives
// from the other endpoint's address, which fails the test.
func TestKamailioMedia(t *testing.T) {
	requireEnvironment(t, true)
	if n := pcapPackets(t, g711aPcap); n != g711aPackets {
		t.Fatalf("%s holds %d packets, want %d: update g711aPackets", g711aPcap, n, g711aPackets)
	}
	forEachVariant(t, testMedia)
}

func testMedia(t *testing.T, v variant) {
	dir := testenv.ArtifactDir(t, "E2E_ARTIFACTS")
	tp := newTopology(t, v)
	r := startRelay(t, tp, v, dir)
	startKamailio(t, tp, v, dir)

	callerCap := startCapture(t, tp.caller, dir, "caller")
	calleeCap := startCapture(t, tp.callee, dir, "callee")

	params := sippParams{CalleeAddr: v.calleeAddr, CalleePort: sipPort, Pcap: g711aPcap, HoldMS: mediaHoldMS}
	uas := startSippUAS(t, tp, dir, params, mediaCalls)
	watch := watchCalls(r.ng, 200*time.Millisecond)
	uac := startSippUAC(t, tp, dir, params, mediaCalls)
	uac.wait(t, 45*time.Second)
	watch.stop()
	uas.wait(t, 5*time.Second)
	// Let the last forwarded packets land before the captures stop.
	time.Sleep(300 * time.Millisecond)
	callerCap.interrupt()
	calleeCap.interrupt()
	callerPkts := callerCap.packets(t)
	calleePkts := calleeCap.packets(t)

	if watch.maxCalls != mediaCalls {
		t.Errorf("relay listed at most %d concurrent calls, want %d", watch.maxCalls, mediaCalls)
	}

	checkRelayedMedia(t, v, uac, uas, callerPkts, calleePkts, mediaCalls)

	requireNoCalls(t, r)
	if r.kind == relayRelayd {
		requireKernelForwarding(t, r, 2*mediaCalls*g711aPackets)
	}
}

// checkRelayedMedia checks, on each side, that the endpoint sent every packet
// of calls plays of g711a.pcap and received every packet of the other side's
// plays from the relay's address on its side only, to the media port its SDP
// named, with payload type 8, from exactly the relay ports advertised to it
// in the calls' SDPs, g711aPackets from each.
func checkRelayedMedia(t *testing.T, v variant, uac, uas *sipp, callerPkts, calleePkts []udpPacket, calls int) {
	t.Helper()
	// The relay port each call was given on each side, from the SDPs the
	// endpoints received.
	callerPorts := advertisedPorts(t, "200 OK at the caller", uac.messages(t), 200, relayExtAddr, calls)
	calleePorts := advertisedPorts(t, "INVITE at the callee", uas.messages(t), 0, v.relayCalleeAddr, calls)

	sides := []struct {
		name     string
		addr     string // the endpoint
		relay    string // the relay's address on its side
		ports    []int  // relay ports advertised to it, one per call
		captured []udpPacket
	}{
		{"caller", callerAddr, relayExtAddr, callerPorts, callerPkts},
		{"callee", v.calleeAddr, v.relayCalleeAddr, calleePorts, calleePkts},
	}
	for _, s := range sides {
		var sent int
		fromRelay := map[int]int{} // relay source port → RTP packets
		// Wrong packets are tallied per reason: a broken relay gets thousands.
		wrong := map[string]*packetTally{}
		for _, p := range s.captured {
			switch {
			case p.src == s.addr:
				sent++
			case p.dst != s.addr:
				tallyPacket(wrong, "neither from nor to the endpoint", p)
			case p.src != s.relay:
				tallyPacket(wrong, fmt.Sprintf("from %s, not from the relay's %s", p.src, s.relay), p)
			case p.dstPort != endpointMediaPort:
				tallyPacket(wrong, fmt.Sprintf("to port %d, not the SDP's %d", p.dstPort, endpointMediaPort), p)
			case p.payloadType != 8:
				tallyPacket(wrong, fmt.Sprintf("with RTP payload type %d, not 8 (PCMA)", p.payloadType), p)
			default:
				fromRelay[p.srcPort]++
			}
		}
		for _, reason := range slices.Sorted(maps.Keys(wrong)) {
			w := wrong[reason]
			t.Errorf("%s: %d packets arrived %s (first: %v)", s.name, w.n, reason, w.first)
		}
		// If sipp could not send, blaming the relay would mislead.
		if want := calls * g711aPackets; sent != want {
			t.Errorf("%s sent %d RTP packets, want %d (%d calls × %d): sipp's play_pcap_audio did not play fully", s.name, sent, want, calls, g711aPackets)
		}
		gotPorts := slices.Sorted(maps.Keys(fromRelay))
		if !slices.Equal(gotPorts, s.ports) {
			t.Errorf("%s: RTP arrived from relay ports %v, want the %d ports advertised to it %v", s.name, gotPorts, len(s.ports), s.ports)
		}
		total := 0
		for port, n := range fromRelay {
			total += n
			if n != g711aPackets {
				t.Errorf("%s: %d RTP packets from relay port %d, want %d (every packet of one play)", s.name, n, port, g711aPackets)
			}
		}
		t.Logf("%s: sent %d RTP packets, received %d from %d relay ports on %s", s.name, sent, total, len(fromRelay), s.relay)
	}
}

// requireKernelForwarding checks that relayd's XDP fast path (on by default)
// carried the bulk of the media: each stream latches on its first packets in
// userspace and is forwarded by the kernel from then on.
func requireKernelForwarding(t *testing.T, r *relay, relayed int) {
	t.Helper()
	stats, err := r.statistics()
	if err != nil {
		t.Fatalf("statistics: %v", err)
	}
	st, _ := stats["statistics"].(map[string]any)
	tot, _ := st["totalstatistics"].(map[string]any)
	kernel, _ := tot["relayedpackets_kernel"].(int64)
	all, _ := tot["relayedpackets"].(int64)
	t.Logf("relayd forwarded %d of %d RTP/RTCP packets in the kernel", kernel, all)
	if kernel < int64(relayed)*8/10 {
		t.Errorf("only %d of %d packets went through the XDP fast path, want at least 80%% of the %d RTP packets", kernel, all, relayed)
	}
}

type packetTally struct {
	n     int
	first udpPacket
}

func tallyPacket(m map[string]*packetTally, reason string, p udpPacket) {
	if w, ok := m[reason]; ok {
		w.n++
		return
	}
	m[reason] = &packetTally{n: 1, first: p}
}

// advertisedPorts returns, per call, the relay port in the SDP of the
// received message (INVITE CSeq 1 when status is 0, else that response to
// it), checking the address on the way.
func advertisedPorts(t *testing.T, what string, msgs []SIPMessage, status int, relayAddr string, calls int) []int {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		n, method := m.CSeq()
		if !m.Received || m.StatusCode() != status || n != 1 || method != "INVITE" {
			continue
		}
		callID, _ := m.Header("Call-ID")
		if _, dup := seen[callID]; dup {
			continue // retransmission
		}
		_, audio := audioOf(t, what, m)
		if audio.Connection != relayAddr {
			t.Errorf("%s (%s): c= %s, want %s", what, callID, audio.Connection, relayAddr)
		}
		seen[callID] = audio.Port
	}
	if len(seen) != calls {
		t.Fatalf("%s: found %d calls in the trace, want %d", what, len(seen), calls)
	}
	ports := make([]int, 0, len(seen))
	for _, p := range seen {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// capture is dumpcap recording UDP other than SIP on an endpoint's veth,
// both directions, so the test can compare what the endpoint sent with what
// reached it.
type capture struct {
	name string
	proc *testenv.Process
	file string
	log  string

	interrupted bool
}

func startCapture(t *testing.T, ns, dir, name string) *capture {
	t.Helper()
	c := &capture{
		name: name,
		file: filepath.Join(dir, name+".pcap"),
		log:  filepath.Join(dir, name+"-dumpcap.log"),
	}
	c.proc = startProcess(t, ns, "dumpcap "+name, c.log,
		"dumpcap", "-i", endpointIf, "-f", fmt.Sprintf("udp and not port %d", sipPort), "-P", "-w", c.file)
	waitUntil(t, 10*time.Second, "dumpcap to capture in the "+name+" namespace", func() (bool, error) {
		if c.proc.Exited() {
			return false, fmt.Errorf("dumpcap exited: %v", c.proc.Err())
		}
		data, _ := os.ReadFile(c.log)
		return bytes.Contains(data, []byte("Capturing on")), nil
	})
	return c
}

// dumpcapDrops matches dumpcap's exit summary.
var dumpcapDrops = regexp.MustCompile(`Packets received/dropped on interface '[^']*': (\d+)/(\d+)`)

// interrupt asks dumpcap to stop; SIGINT makes it flush the file and print
// its summary.
// Only once: a second SIGINT could cut the flush short.
func (c *capture) interrupt() {
	if !c.interrupted && !c.proc.Exited() {
		_ = syscall.Kill(c.proc.Pid(), syscall.SIGINT)
	}
	c.interrupted = true
}

// packets waits for dumpcap to finish, checks it dropped nothing and returns
// the captured packets.
func (c *capture) packets(t *testing.T) []udpPacket {
	t.Helper()
	c.interrupt()
	if err := c.proc.Wait(10 * time.Second); err != nil {
		t.Fatalf("%s capture: %v", c.name, err)
	}
	data, err := os.ReadFile(c.log)
	if err != nil {
		t.Fatal(err)
	}
	m := dumpcapDrops.FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s capture: no received/dropped summary in dumpcap's output", c.name)
	}
	if string(m[2]) != "0" {
		t.Fatalf("%s capture dropped %s packets: the counts below would be wrong", c.name, m[2])
	}
	return readCapture(t, c.file)
}

// udpPacket is one captured datagram as tshark decodes it.
type udpPacket struct {
	src, dst         string
	srcPort, dstPort int
	payloadType      int // -1 when not RTP
}

func (p udpPacket) String() string {
	return fmt.Sprintf("%s:%d → %s:%d pt %d", p.src, p.srcPort, p.dst, p.dstPort, p.payloadType)
}

// readCapture decodes a capture with tshark, treating the endpoints' media
// port as RTP.
func readCapture(t *testing.T, file string) []udpPacket {
	t.Helper()
	cmd := exec.Command("tshark", "-n", "-r", file,
		"-d", fmt.Sprintf("udp.port==%d,rtp", endpointMediaPort),
		"-T", "fields", "-E", "separator=,",
		"-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport", "-e", "rtp.p_type")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", file, err, stderr.Bytes())
	}
	var pkts []udpPacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 5 {
			t.Fatalf("tshark line %q: want 5 fields", line)
		}
		p := udpPacket{src: f[0], dst: f[2], payloadType: -1}
		var errs [3]error
		p.srcPort, errs[0] = strconv.Atoi(f[1])
		p.dstPort, errs[1] = strconv.Atoi(f[3])
		if f[4] != "" {
			p.payloadType, errs[2] = strconv.Atoi(f[4])
		}
		for _, err := range errs {
			if err != nil {
				t.Fatalf("tshark line %q: %v", line, err)
			}
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// pcapPackets counts the packets of a capture file.
func pcapPackets(t *testing.T, file string) int {
	t.Helper()
	out, err := exec.Command("tshark", "-n", "-r", file, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	return len(strings.Fields(string(out)))
}
