// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"

	"github.com/relayd/relayd/test/e2e"
)

// Addresses come from the documentation ranges (RFC 5737, RFC 3849) so the
// tests can never collide with a real network. 203.0.113.1 is what the relay
// advertises on its external side: it exists nowhere, as behind a 1:1 NAT.
const (
	relayExt4  = "198.51.100.1"
	relayAdv4  = "203.0.113.1"
	relayInt4  = "192.0.2.1"
	relayExt6  = "2001:db8:1::1"
	relayInt6  = "2001:db8:2::1"
	partyA4    = "198.51.100.10"
	partyA6    = "2001:db8:1::10"
	attacker4  = "198.51.100.66"
	attacker6  = "2001:db8:1::66"
	partyB4    = "192.0.2.10"
	partyB6    = "2001:db8:2::10"
	prefixLen4 = 24
	prefixLen6 = 64

	ngPort  = 2223
	portMin = 30000
	portMax = 30999

	// learningWindow is the relay's endpoint-learning window after every
	// signalling event (reference §3.2).
	learningWindow = 3 * time.Second

	// Interface names live inside the namespaces, so they never clash
	// between runs.
	bridgeIf   = "ext0"
	relayToA   = "va"
	relayToX   = "vx"
	relayIntIf = "int0"
	endpointIf = "eth0"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func ap(addr string, port int) netip.AddrPort {
	return netip.AddrPortFrom(ip(addr), uint16(port))
}

// requireEnvironment checks root and the programs the harness runs before
// anything is created.
func requireEnvironment(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "media tests need root (network namespaces, veth links, a bridge); run with sudo -E")
	}
	if _, err := testenv.IPBinary(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	if os.Getenv("E2E_RELAYD_BIN") == "" {
		if _, err := exec.LookPath("go"); err != nil {
			testenv.Unavailable(t, "go not in PATH to build relayd (%v); set E2E_RELAYD_BIN", err)
		}
	}
}

// topology is four network namespaces. relay has a bridge on the external
// segment (198.51.100.0/24, 2001:db8:1::/64) with a and the attacker x
// attached, and a veth to b on the internal segment (192.0.2.0/24,
// 2001:db8:2::/64). The relay namespace does not forward and the parties have
// only their own subnet, so media can only cross through the relay process.
type topology struct {
	relay, a, b, x string
}

func newTopology(t *testing.T) *topology {
	t.Helper()
	// The PID keeps parallel runs apart; the test-name hash keeps this run's
	// tests apart.
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	suffix := fmt.Sprintf("%d-%08x", os.Getpid(), h.Sum32())
	tp := &topology{
		relay: "media-relay-" + suffix,
		a:     "media-a-" + suffix,
		b:     "media-b-" + suffix,
		x:     "media-x-" + suffix,
	}
	for _, ns := range []string{tp.relay, tp.a, tp.b, tp.x} {
		testenv.Run(t, "ip", "netns", "add", ns)
		// Registered before any process starts, so it runs after every
		// process cleanup (cleanups run last-in first-out).
		t.Cleanup(func() {
			if out, err := testenv.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v\n%s", ns, err, out)
			}
		})
		// No duplicate address detection: a tentative IPv6 address cannot
		// be bound, and nothing here can collide. Forwarding off: the "no
		// bypass" claim must not depend on what the host's namespaces
		// inherit.
		err := e2e.DoInNetns(testenv.NSPath(ns), func() error {
			for _, kv := range [][2]string{
				{"/proc/sys/net/ipv6/conf/all/accept_dad", "0"},
				{"/proc/sys/net/ipv6/conf/default/accept_dad", "0"},
				{"/proc/sys/net/ipv4/ip_forward", "0"},
				{"/proc/sys/net/ipv6/conf/all/forwarding", "0"},
			} {
				if err := os.WriteFile(kv[0], []byte(kv[1]+"\n"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("sysctls in %s: %v", ns, err)
		}
	}
	v4 := func(a string) string { return fmt.Sprintf("%s/%d", a, prefixLen4) }
	v6 := func(a string) string { return fmt.Sprintf("%s/%d", a, prefixLen6) }
	steps := [][]string{
		{"ip", "-n", tp.relay, "link", "add", bridgeIf, "type", "bridge", "stp_state", "0"},
		{"ip", "-n", tp.relay, "link", "add", relayToA, "type", "veth", "peer", "name", endpointIf, "netns", tp.a},
		{"ip", "-n", tp.relay, "link", "add", relayToX, "type", "veth", "peer", "name", endpointIf, "netns", tp.x},
		{"ip", "-n", tp.relay, "link", "add", relayIntIf, "type", "veth", "peer", "name", endpointIf, "netns", tp.b},
		{"ip", "-n", tp.relay, "link", "set", relayToA, "master", bridgeIf},
		{"ip", "-n", tp.relay, "link", "set", relayToX, "master", bridgeIf},
		{"ip", "-n", tp.relay, "addr", "add", v4(relayExt4), "dev", bridgeIf},
		{"ip", "-n", tp.relay, "addr", "add", v6(relayExt6), "dev", bridgeIf, "nodad"},
		{"ip", "-n", tp.relay, "addr", "add", v4(relayInt4), "dev", relayIntIf},
		{"ip", "-n", tp.relay, "addr", "add", v6(relayInt6), "dev", relayIntIf, "nodad"},
		{"ip", "-n", tp.a, "addr", "add", v4(partyA4), "dev", endpointIf},
		{"ip", "-n", tp.a, "addr", "add", v6(partyA6), "dev", endpointIf, "nodad"},
		{"ip", "-n", tp.x, "addr", "add", v4(attacker4), "dev", endpointIf},
		{"ip", "-n", tp.x, "addr", "add", v6(attacker6), "dev", endpointIf, "nodad"},
		{"ip", "-n", tp.b, "addr", "add", v4(partyB4), "dev", endpointIf},
		{"ip", "-n", tp.b, "addr", "add", v6(partyB6), "dev", endpointIf, "nodad"},
	}
	for _, l := range []string{bridgeIf, relayToA, relayToX, relayIntIf, "lo"} {
		steps = append(steps, []string{"ip", "-n", tp.relay, "link", "set", l, "up"})
	}
	for _, ns := range []string{tp.a, tp.b, tp.x} {
		steps = append(steps,
			[]string{"ip", "-n", ns, "link", "set", endpointIf, "up"},
			[]string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		testenv.Run(t, s...)
	}
	return tp
}

// relayd is the relay under test in the relay namespace, with an ng client
// whose socket lives in that namespace too.
type relayd struct {
	proc *testenv.Process
	mu   sync.Mutex // the ng client is not safe for concurrent use
	ng   *e2e.NGClient
}

// relaydArgs are the options every instance gets; tests append their
// timeouts.
func relaydArgs() []string {
	return []string{
		"--config-file=none",
		"--interface=external/" + relayExt4 + "!" + relayAdv4,
		"--interface=internal/" + relayInt4,
		"--interface=external/" + relayExt6,
		"--interface=internal/" + relayInt6,
		fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngPort),
		fmt.Sprintf("--port-min=%d", portMin),
		fmt.Sprintf("--port-max=%d", portMax),
		"--delete-delay=0",
		"--log-level=7",
	}
}

// rtpengineBin is the incumbent, which MEDIA_RELAY=rtpengine runs instead of
// relayd to cross-check the harness against the reference behaviour.
const rtpengineBin = "/usr/bin/rtpengine"

// incumbentUnderTest reports whether MEDIA_RELAY selects the incumbent.
func incumbentUnderTest(t *testing.T) bool {
	t.Helper()
	switch v := os.Getenv("MEDIA_RELAY"); v {
	case "", "relayd":
		return false
	case "rtpengine":
		if _, err := os.Stat(rtpengineBin); err != nil {
			testenv.Unavailable(t, "MEDIA_RELAY=rtpengine but %v; install rtpengine-daemon", err)
		}
		return true
	default:
		t.Fatalf("MEDIA_RELAY=%q: want relayd (default) or rtpengine", v)
		return false
	}
}

func startRelayd(t *testing.T, tp *topology, dir string, extra ...string) *relayd {
	t.Helper()
	args := append(relaydArgs(), extra...)
	var bin string
	if incumbentUnderTest(t) {
		// Userspace only, logs to our file; heuristic learning and TOS 184
		// are relayd's defaults but not necessarily the incumbent's.
		bin = rtpengineBin
		args = append(args, "--foreground", "--table=-1", "--log-stderr", "--endpoint-learning=heuristic", "--tos=184")
	} else {
		bin = testenv.RelaydBinary(t, dir)
	}
	// Last, so that they win: e.g. another --endpoint-learning.
	args = append(args, strings.Fields(os.Getenv("MEDIA_RELAY_ARGS"))...)
	logPath := filepath.Join(dir, "relayd.log")
	p := testenv.StartProcess(t, tp.relay, filepath.Base(bin), logPath, append([]string{bin}, args...)...)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if p.Exited() {
			t.Logf("relayd exited: %v", p.Err())
		}
		t.Logf("--- relayd log %s, last lines:\n%s", logPath, testenv.Tail(readFile(logPath), 60))
	})
	conn, err := e2e.ListenUDPInNetns(testenv.NSPath(tp.relay), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("ng client socket: %v", err)
	}
	r := &relayd{proc: p, ng: e2e.NewNGClient(conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ngPort}, 500*time.Millisecond, 3)}
	t.Cleanup(func() { r.ng.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p.Exited() {
			t.Fatalf("relayd exited during startup: %v\n%s", p.Err(), testenv.Tail(readFile(logPath), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := r.ng.Ping(ctx)
		cancel()
		if err == nil {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayd did not answer an ng ping within 15s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// do sends one ng request; a reply with result "error" is an error.
func (r *relayd) do(req map[string]any) (map[string]any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.ng.Call(ctx, req)
}

// must sends one ng request and stops the test if it fails.
func (r *relayd) must(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	reply, err := r.do(req)
	if err != nil {
		t.Fatalf("ng %v: %v\nreply: %v", req["command"], err, reply)
	}
	return reply
}

func (r *relayd) list(t *testing.T) []string {
	t.Helper()
	reply := r.must(t, map[string]any{"command": "list", "limit": 1000})
	calls, err := e2e.ListCalls(reply)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return calls
}

func (r *relayd) query(t *testing.T, callID string) map[string]any {
	t.Helper()
	return r.must(t, map[string]any{"command": "query", "call-id": callID})
}

func (r *relayd) statistics(t *testing.T) map[string]any {
	t.Helper()
	return r.must(t, map[string]any{"command": "statistics"})
}

// logOffset is the current size of the relay's log, to show on failure only
// what one subtest caused.
func (r *relayd) logOffset() int64 {
	fi, err := os.Stat(r.proc.LogPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (r *relayd) logSince(off int64) string {
	data := readFile(r.proc.LogPath)
	if int64(len(data)) < off {
		return data
	}
	return data[off:]
}

// watchSubtest makes a subtest print the relay's log lines written while it
// ran if it fails, and fail if the relay died under it.
func (r *relayd) watchSubtest(t *testing.T) {
	t.Helper()
	off := r.logOffset()
	t.Cleanup(func() {
		if r.proc.Exited() {
			t.Errorf("relayd exited during this scenario: %v", r.proc.Err())
		}
		if t.Failed() {
			t.Logf("--- relayd log during %s:\n%s", t.Name(), testenv.Tail(r.logSince(off), 150))
		}
	})
}

// socketsBound lists the UDP ports bound in the relay process's network
// namespace (IPv4 and IPv6), from /proc/PID/net/udp{,6}.
func (r *relayd) socketsBound(t *testing.T) map[int]bool {
	t.Helper()
	ports := map[int]bool{}
	for _, f := range []string{"udp", "udp6"} {
		path := fmt.Sprintf("/proc/%d/net/%s", r.proc.Pid(), f)
		fh, err := os.Open(path)
		if err != nil {
			t.Fatalf("read relay sockets: %v", err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 || fields[0] == "sl" {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
				ports[int(p)] = true
			}
		}
		fh.Close()
	}
	return ports
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(%v)", err)
	}
	return string(data)
}
