// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// Addresses come from the documentation ranges (RFC 5737) so the harness can
// never collide with a real network.
const (
	callerAddr   = "198.51.100.10"
	relayExtAddr = "198.51.100.1"
	relayIntAddr = "192.0.2.1"
	// The callee sits on the internal segment with two relay interfaces,
	// and next to the caller on the external one with a single interface.
	calleeIntAddr = "192.0.2.10"
	calleeExtAddr = "198.51.100.20"
	netmaskBits   = 24

	sipPort = 5060
	ngPort  = 2223
	// endpointMediaPort is what both sipp instances advertise (-mp).
	endpointMediaPort = 6000
	relayPortMin      = 30000
	relayPortMax      = 30999

	rtpengineBin = "/usr/bin/rtpengine"
	g711aPcap    = "/usr/share/sip-tester/g711a.pcap"

	// Link names live inside the namespaces, so they never clash between
	// runs.
	relayExtIf    = "ext0"
	relayIntIf    = "int0"
	relayBridge   = "br0"
	relayCalleeIf = "ext1" // the callee's bridge port with a single interface
	endpointIf    = "eth0"
)

// variant is one of the network layouts every Kamailio test runs in, as a
// subtest of its own.
type variant struct {
	name string
	// twoInterfaces: caller and callee on separate segments, the relay on
	// both with named interfaces, and the production direction flags.
	// Otherwise all three share one segment and the relay has one
	// unnamed interface.
	twoInterfaces bool
	// calleeAddr is the callee's own address; relayCalleeAddr is the
	// relay's address on the callee's side, which the callee's SDP must
	// name.
	calleeAddr, relayCalleeAddr string
}

// variants are the layouts of the issue: plain, and the production one.
func variants() []variant {
	return []variant{
		{name: "single-interface", calleeAddr: calleeExtAddr, relayCalleeAddr: relayExtAddr},
		{name: "two-interfaces", twoInterfaces: true, calleeAddr: calleeIntAddr, relayCalleeAddr: relayIntAddr},
	}
}

// relayInterfaces are the relay's --interface values.
func (v variant) relayInterfaces() []string {
	if v.twoInterfaces {
		return []string{"external/" + relayExtAddr, "internal/" + relayIntAddr}
	}
	return []string{relayExtAddr}
}

// kamailioParams: Kamailio listens on each relay address and, with two
// interfaces, adds the production direction flags.
func (v variant) kamailioParams(modulesDir string) kamailioParams {
	p := kamailioParams{
		ModulesDir:   modulesDir,
		RelayExtAddr: relayExtAddr,
		CalleeAddr:   v.calleeAddr,
		SIPPort:      sipPort,
		NGPort:       ngPort,
	}
	if v.twoInterfaces {
		p.RelayIntAddr = relayIntAddr
		p.Directions = true
	}
	return p
}

// forEachVariant runs test once per layout, one after the other: the media
// test counts every packet, and two of them at once would compete for CPU.
func forEachVariant(t *testing.T, test func(t *testing.T, v variant)) {
	t.Helper()
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) { test(t, v) })
	}
}

type relayKind string

const (
	relayRelayd    relayKind = "relayd"
	relayRtpengine relayKind = "rtpengine"
)

func relayUnderTest(t *testing.T) relayKind {
	t.Helper()
	switch v := os.Getenv("E2E_RELAY"); v {
	case "", string(relayRelayd):
		return relayRelayd
	case string(relayRtpengine):
		return relayRtpengine
	default:
		t.Fatalf("E2E_RELAY=%q: want %q (default) or %q", v, relayRelayd, relayRtpengine)
		return ""
	}
}

// requireEnvironment checks root and the external programs before anything
// is created.
func requireEnvironment(t *testing.T, media bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "end-to-end tests need root (network namespaces, raw sockets for sipp's play_pcap_audio); run with sudo")
	}
	// kamailio and ip live in sbin, which a user's PATH kept by `sudo -E`
	// may lack.
	path := os.Getenv("PATH")
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if !slices.Contains(filepath.SplitList(path), dir) {
			path += string(filepath.ListSeparator) + dir
		}
	}
	t.Setenv("PATH", path)
	bins := []string{"ip", "unshare", "kamailio", "sipp"}
	if media {
		bins = append(bins, "dumpcap", "tshark")
	}
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			testenv.Unavailable(t, "%s not found (%v); install the packages in scripts/test-deps.txt", b, err)
		}
	}
	if _, err := kamailioModulesDir(); err != nil {
		testenv.Unavailable(t, "%v; install the kamailio package", err)
	}
	switch relayUnderTest(t) {
	case relayRtpengine:
		if _, err := os.Stat(rtpengineBin); err != nil {
			testenv.Unavailable(t, "E2E_RELAY=rtpengine but %v; install rtpengine-daemon", err)
		}
	case relayRelayd:
		if os.Getenv("E2E_RELAYD_BIN") == "" {
			if _, err := exec.LookPath("go"); err != nil {
				testenv.Unavailable(t, "go not in PATH to build relayd (%v); set E2E_RELAYD_BIN", err)
			}
		}
	}
	if media {
		if _, err := os.Stat(g711aPcap); err != nil {
			testenv.Unavailable(t, "%v; install sip-tester", err)
		}
	}
}

// kamailioModulesDir finds the module directory holding rtpengine.so, which
// is multiarch on Debian; E2E_KAMAILIO_MODULES overrides.
func kamailioModulesDir() (string, error) {
	candidates := []string{os.Getenv("E2E_KAMAILIO_MODULES")}
	if candidates[0] == "" {
		candidates, _ = filepath.Glob("/usr/lib/*/kamailio/modules")
		candidates = append(candidates, "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules")
	}
	for _, dir := range candidates {
		if _, err := os.Stat(filepath.Join(dir, "rtpengine.so")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("kamailio's rtpengine.so not found in %v", candidates)
}

// showOnFailure prints the tail of a log file if the test has failed by the
// time cleanup runs.
func showOnFailure(t *testing.T, label, path string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return // e.g. sipp writes no error file when nothing went wrong
		}
		if err != nil {
			t.Logf("--- %s (%s): %v", label, path, err)
			return
		}
		t.Logf("--- %s (%s), last lines:\n%s", label, path, testenv.Tail(string(data), 80))
	})
}

// waitUntil polls cond every 100 ms until it reports true, returns an error
// (fatal) or the timeout passes (fatal).
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// topology is three network namespaces: caller, relay (Kamailio and the
// relay process), callee. With two interfaces caller and callee each have
// only their own segment and the relay namespace does not forward, so media
// can only flow through the relay process. With one interface all three share
// a bridge in the relay namespace, so caller and callee can reach each other
// directly and only the source addresses tell relayed media from a bypass.
type topology struct {
	caller, relay, callee string
}

func newTopology(t *testing.T, v variant) *topology {
	t.Helper()
	// PID keeps parallel runs apart; the test-name hash keeps this run's
	// tests apart without package-level state.
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	suffix := fmt.Sprintf("%d-%08x", os.Getpid(), h.Sum32())
	tp := &topology{
		caller: "e2e-caller-" + suffix,
		relay:  "e2e-relay-" + suffix,
		callee: "e2e-callee-" + suffix,
	}
	for _, ns := range []string{tp.caller, tp.relay, tp.callee} {
		testenv.Run(t, "ip", "netns", "add", ns)
		// Registered before any process starts, so it runs after every
		// process cleanup (cleanups run last-in first-out).
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v\n%s", ns, err, out)
			}
		})
	}
	cidr := func(addr string) string { return fmt.Sprintf("%s/%d", addr, netmaskBits) }
	// The relay namespace's end of the callee's veth.
	calleePort := relayIntIf
	if !v.twoInterfaces {
		calleePort = relayCalleeIf
	}
	steps := [][]string{
		{"ip", "-n", tp.relay, "link", "add", relayExtIf, "type", "veth", "peer", "name", endpointIf, "netns", tp.caller},
		{"ip", "-n", tp.relay, "link", "add", calleePort, "type", "veth", "peer", "name", endpointIf, "netns", tp.callee},
		{"ip", "-n", tp.caller, "addr", "add", cidr(callerAddr), "dev", endpointIf},
		{"ip", "-n", tp.callee, "addr", "add", cidr(v.calleeAddr), "dev", endpointIf},
	}
	if v.twoInterfaces {
		steps = append(steps,
			[]string{"ip", "-n", tp.relay, "addr", "add", cidr(relayExtAddr), "dev", relayExtIf},
			[]string{"ip", "-n", tp.relay, "addr", "add", cidr(relayIntAddr), "dev", relayIntIf},
		)
	} else {
		// The relay's address is on the bridge, whose ports are the two
		// endpoints' veths: one segment, as if all three shared a switch.
		// Without STP, ports forward as soon as they are up.
		steps = append(steps,
			[]string{"ip", "-n", tp.relay, "link", "add", relayBridge, "type", "bridge", "stp_state", "0"},
			[]string{"ip", "-n", tp.relay, "link", "set", relayExtIf, "master", relayBridge},
			[]string{"ip", "-n", tp.relay, "link", "set", relayCalleeIf, "master", relayBridge},
			[]string{"ip", "-n", tp.relay, "addr", "add", cidr(relayExtAddr), "dev", relayBridge},
			[]string{"ip", "-n", tp.relay, "link", "set", relayBridge, "up"},
		)
	}
	steps = append(steps,
		[]string{"ip", "-n", tp.relay, "link", "set", relayExtIf, "up"},
		[]string{"ip", "-n", tp.relay, "link", "set", calleePort, "up"},
		[]string{"ip", "-n", tp.caller, "link", "set", endpointIf, "up"},
		[]string{"ip", "-n", tp.callee, "link", "set", endpointIf, "up"},
	)
	for _, ns := range []string{tp.caller, tp.relay, tp.callee} {
		steps = append(steps, []string{"ip", "-n", ns, "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		testenv.Run(t, s...)
	}
	// A new namespace normally starts with forwarding off, but a host can
	// make namespaces inherit its settings: force it, or the two-interface
	// "no bypass" claim would depend on the host. (Bridging does not need
	// it.)
	err := DoInNetns(testenv.NSPath(tp.relay), func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
	})
	if err != nil {
		t.Fatalf("disable forwarding in %s: %v", tp.relay, err)
	}
	tp.checkDirectPath(t, v)
	return tp
}

// checkDirectPath sends one datagram from the caller straight to the callee
// and requires it to arrive with one interface and to be lost with two, so
// each layout is known to be what the tests' claims rest on.
func (tp *topology) checkDirectPath(t *testing.T, v variant) {
	t.Helper()
	rx, err := ListenUDPInNetns(testenv.NSPath(tp.callee), &net.UDPAddr{IP: net.ParseIP(v.calleeAddr)})
	if err != nil {
		t.Fatalf("direct-path probe: %v", err)
	}
	defer rx.Close()
	tx, err := ListenUDPInNetns(testenv.NSPath(tp.caller), &net.UDPAddr{IP: net.ParseIP(callerAddr)})
	if err != nil {
		t.Fatalf("direct-path probe: %v", err)
	}
	defer tx.Close()
	probe := []byte("e2e direct-path probe")
	// A send error (no route) is the two-interface layout working as meant.
	_, sendErr := tx.WriteToUDP(probe, rx.LocalAddr().(*net.UDPAddr))
	arrived := false
	if sendErr == nil {
		// The first datagram waits for ARP; a second is not needed.
		if err := rx.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, from, err := rx.ReadFromUDP(buf)
		arrived = err == nil && bytes.Equal(buf[:n], probe) && from.IP.Equal(net.ParseIP(callerAddr))
	}
	switch {
	case v.twoInterfaces && arrived:
		t.Fatalf("caller %s reached callee %s without the relay: the two-interface layout must not allow it", callerAddr, v.calleeAddr)
	case !v.twoInterfaces && !arrived:
		t.Fatalf("caller %s could not reach callee %s directly (send: %v): the single-interface layout must allow it", callerAddr, v.calleeAddr, sendErr)
	}
}

func startProcess(t *testing.T, ns, name, logPath string, argv ...string) *testenv.Process {
	t.Helper()
	p := testenv.StartProcess(t, ns, name, logPath, argv...)
	showOnFailure(t, name+" output", logPath)
	return p
}

// relay is the relay under test, running in the relay namespace, and an ng
// client whose socket lives in that namespace too.
type relay struct {
	kind relayKind
	proc *testenv.Process
	ng   *NGClient
}

func startRelay(t *testing.T, tp *topology, v variant, dir string) *relay {
	t.Helper()
	return startRelayWith(t, tp, v, dir, nil)
}

// startRelayWith starts the relay with extra options after the common ones
// (later options win, for both relays).
func startRelayWith(t *testing.T, tp *topology, v variant, dir string, extra []string) *relay {
	t.Helper()
	return startRelayAs(t, tp, v, dir, string(relayUnderTest(t)), extra)
}

// startRelayAs is startRelayWith with the output in dir/name.log (a relay
// started again keeps its first run's log).
func startRelayAs(t *testing.T, tp *topology, v variant, dir, name string, extra []string) *relay {
	t.Helper()
	kind := relayUnderTest(t)
	// The same long options serve both relays: relayd accepts the
	// incumbent's configuration keys.
	args := []string{"--config-file=none", "--foreground"}
	for _, ifa := range v.relayInterfaces() {
		args = append(args, "--interface="+ifa)
	}
	args = append(args,
		fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngPort),
		fmt.Sprintf("--port-min=%d", relayPortMin),
		fmt.Sprintf("--port-max=%d", relayPortMax),
		"--delete-delay=0",
		"--timeout=60",
		"--log-level=6",
	)
	args = append(args, extra...)
	var bin string
	switch kind {
	case relayRtpengine:
		bin = rtpengineBin
		// Userspace forwarding only (no kernel module), logs to our file.
		args = append(args, "--table=-1", "--log-stderr")
	case relayRelayd:
		bin = testenv.RelaydBinary(t, dir)
	}
	logPath := filepath.Join(dir, name+".log")
	p := startProcess(t, tp.relay, name, logPath, append([]string{bin}, args...)...)

	conn, err := ListenUDPInNetns(testenv.NSPath(tp.relay), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("ng client socket: %v", err)
	}
	ng := NewNGClient(conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ngPort}, 500*time.Millisecond, 3)
	t.Cleanup(func() { ng.Close() })
	waitUntil(t, 15*time.Second, string(kind)+" to answer an ng ping", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("%s exited: %v", kind, p.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		return ng.Ping(ctx) == nil, nil
	})
	return &relay{kind: kind, proc: p, ng: ng}
}

// list and statistics are one-shot ng exchanges with their own deadline.
func (r *relay) list() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return r.ng.List(ctx)
}

func (r *relay) statistics() (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return r.ng.Statistics(ctx)
}

// startKamailio writes the proxy config, checks it, starts Kamailio in the
// relay namespace and waits until it answers OPTIONS from the caller side.
func startKamailio(t *testing.T, tp *topology, v variant, dir string) *testenv.Process {
	t.Helper()
	return startKamailioWith(t, tp, v, dir, nil)
}

// startKamailioWith lets a test change the proxy's parameters.
func startKamailioWith(t *testing.T, tp *topology, v variant, dir string, mod func(*kamailioParams)) *testenv.Process {
	t.Helper()
	modules, err := kamailioModulesDir()
	if err != nil {
		t.Fatal(err)
	}
	params := v.kamailioParams(modules)
	if mod != nil {
		mod(&params)
	}
	cfg, err := kamailioConfig(params)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "kamailio.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	runDir := filepath.Join(dir, "kamailio-run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// -c inside the namespace: the listen addresses only exist there.
	check := exec.Command("ip", "netns", "exec", tp.relay, "kamailio", "-c", "-f", cfgPath, "-L", modules, "-Y", runDir)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("kamailio -c %s: %v\n%s", cfgPath, err, out)
	}
	// -DD: fork the workers but keep the main process in the foreground; -E:
	// log to stderr. Kamailio runs as PID 1 of its own PID namespace: if the
	// test binary dies, the parent-death signal reaches unshare, unshare's
	// reaches Kamailio's main process, and the kernel then kills every worker
	// with it. Parent-death signals alone would orphan the workers.
	p := startProcess(t, tp.relay, "kamailio", filepath.Join(dir, "kamailio.log"),
		"unshare", "--pid", "--kill-child=SIGKILL",
		"kamailio", "-f", cfgPath, "-L", modules, "-Y", runDir, "-w", runDir, "-DD", "-E", "-m", "64", "-M", "8")

	conn, err := ListenUDPInNetns(testenv.NSPath(tp.caller), &net.UDPAddr{IP: net.ParseIP(callerAddr)})
	if err != nil {
		t.Fatalf("SIP probe socket: %v", err)
	}
	defer conn.Close()
	server := &net.UDPAddr{IP: net.ParseIP(relayExtAddr), Port: sipPort}
	probe := 0
	waitUntil(t, 15*time.Second, "kamailio to answer OPTIONS", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("kamailio exited: %v", p.Err())
		}
		probe++
		ok, err := sipOptionsPing(conn, server, probe)
		if err != nil {
			return false, err
		}
		return ok, nil
	})
	return p
}

// sipOptionsPing sends one OPTIONS and reports whether a 200 came back
// within 300 ms.
func sipOptionsPing(conn *net.UDPConn, server *net.UDPAddr, n int) (bool, error) {
	local := conn.LocalAddr().(*net.UDPAddr)
	msg := fmt.Sprintf("OPTIONS sip:%s:%d SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-e2e-probe-%d;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=e2e-probe\r\n"+
		"To: <sip:%s:%d>\r\n"+
		"Call-ID: e2e-probe-%d@%s\r\n"+
		"CSeq: %d OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n",
		server.IP, server.Port, local.IP, local.Port, n, local.IP, server.IP, server.Port, n, local.IP, n)
	if _, err := conn.WriteToUDP([]byte(msg), server); err != nil {
		return false, fmt.Errorf("send OPTIONS: %w", err)
	}
	buf := make([]byte, 4096)
	if err := conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		return false, err
	}
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("receive OPTIONS reply: %w", err)
		}
		if bytes.HasPrefix(buf[:n], []byte("SIP/2.0 200 ")) {
			return true, nil
		}
	}
}

// sipp is one sipp instance running a scenario written by the test, with
// its message trace kept for assertions.
type sipp struct {
	name    string
	proc    *testenv.Process
	msgLog  string
	errLog  string
	started time.Time
}

func startSipp(t *testing.T, ns, dir, name, scenario string, args ...string) *sipp {
	t.Helper()
	sf := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(sf, []byte(scenario), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &sipp{
		name:   name,
		msgLog: filepath.Join(dir, name+"-messages.log"),
		errLog: filepath.Join(dir, name+"-errors.log"),
	}
	argv := append([]string{
		"sipp", "-sf", sf, "-nostdin",
		"-trace_msg", "-message_file", s.msgLog,
		"-trace_err", "-error_file", s.errLog,
		"-timeout", "60", "-timeout_error",
	}, args...)
	s.proc = startProcess(t, ns, name, filepath.Join(dir, name+".out"), argv...)
	s.started = time.Now()
	showOnFailure(t, name+" unexpected messages", s.errLog)
	showOnFailure(t, name+" message trace", s.msgLog)
	return s
}

// startSippUAS starts the callee at p.CalleeAddr and waits until it listens.
func startSippUAS(t *testing.T, tp *topology, dir string, p sippParams, calls int) *sipp {
	t.Helper()
	scenario, err := uasScenario(p)
	if err != nil {
		t.Fatal(err)
	}
	uas := startSipp(t, tp.callee, dir, "callee", scenario,
		"-i", p.CalleeAddr, "-p", strconv.Itoa(sipPort),
		"-mi", p.CalleeAddr, "-mp", strconv.Itoa(endpointMediaPort),
		"-m", strconv.Itoa(calls))
	uas.waitBound(t, sipPort)
	return uas
}

// startSippUAC starts the caller, which places calls at once (all within
// a second).
func startSippUAC(t *testing.T, tp *topology, dir string, p sippParams, calls int) *sipp {
	t.Helper()
	scenario, err := uacScenario(p)
	if err != nil {
		t.Fatal(err)
	}
	return startSipp(t, tp.caller, dir, "caller", scenario,
		"-i", callerAddr, "-p", strconv.Itoa(sipPort),
		"-mi", callerAddr, "-mp", strconv.Itoa(endpointMediaPort),
		"-m", strconv.Itoa(calls), "-l", strconv.Itoa(calls), "-r", strconv.Itoa(calls),
		fmt.Sprintf("%s:%d", relayExtAddr, sipPort))
}

// waitBound waits until sipp has bound its SIP port, read from the /proc
// view of sipp's own namespace.
func (s *sipp) waitBound(t *testing.T, port int) {
	t.Helper()
	suffix := fmt.Sprintf(":%04X", port)
	path := fmt.Sprintf("/proc/%d/net/udp", s.proc.Pid())
	waitUntil(t, 10*time.Second, s.name+" to bind its SIP port", func() (bool, error) {
		if s.proc.Exited() {
			return false, fmt.Errorf("%s exited: %v", s.name, s.proc.Err())
		}
		f, err := os.Open(path)
		if err != nil {
			return false, nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasSuffix(fields[1], suffix) {
				return true, nil
			}
		}
		return false, nil
	})
}

// wait waits for sipp to finish its calls and requires success (exit 0).
func (s *sipp) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	if err := s.proc.Wait(timeout); err != nil {
		t.Fatalf("%s: %v (exit 1 = some call failed: see its unexpected-messages log)", s.name, err)
	}
	t.Logf("%s finished after %v", s.name, time.Since(s.started).Round(time.Millisecond))
}

func (s *sipp) messages(t *testing.T) []SIPMessage {
	t.Helper()
	data, err := os.ReadFile(s.msgLog)
	if err != nil {
		t.Fatalf("%s message trace: %v", s.name, err)
	}
	msgs, err := ParseSippTrace(data)
	if err != nil {
		t.Fatalf("%s message trace: %v", s.name, err)
	}
	return msgs
}

// findMessage returns the first received message matching the CSeq and
// either the request method (status 0) or the response status.
func findMessage(msgs []SIPMessage, status, cseq int, method string) (SIPMessage, bool) {
	for _, m := range msgs {
		if !m.Received || m.StatusCode() != status {
			continue
		}
		n, meth := m.CSeq()
		if n != cseq || meth != method {
			continue
		}
		if status == 0 && !strings.HasPrefix(m.StartLine, method+" ") {
			continue
		}
		return m, true
	}
	return SIPMessage{}, false
}

// audioOf parses a message's SDP and returns it with its audio section.
func audioOf(t *testing.T, what string, m SIPMessage) (SDPSummary, SDPMedia) {
	t.Helper()
	s, err := ParseSDP(m.Body)
	if err != nil {
		t.Fatalf("%s: %v\nbody:\n%s", what, err, m.Body)
	}
	a, ok := s.Audio()
	if !ok {
		t.Fatalf("%s: no m=audio in\n%s", what, m.Body)
	}
	return s, a
}

// callWatcher polls the relay's list and query while calls are up, keeping
// the most recent set of relay-side sockets per call and the highest number
// of concurrent calls seen.
type callWatcher struct {
	done      chan struct{}
	cancel    context.CancelFunc
	endpoints map[string][]StreamEndpoint
	maxCalls  int
	polls     int
	lastErr   error
}

func watchCalls(ng *NGClient, every time.Duration) *callWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &callWatcher{done: make(chan struct{}), cancel: cancel, endpoints: map[string][]StreamEndpoint{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			w.poll(ctx, ng)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *callWatcher) poll(ctx context.Context, ng *NGClient) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	calls, err := ng.List(ctx)
	if err != nil {
		w.lastErr = err
		return
	}
	w.polls++
	w.maxCalls = max(w.maxCalls, len(calls))
	for _, id := range calls {
		reply, err := ng.Query(ctx, id)
		if err != nil {
			// The call may have ended between list and query.
			if !errors.Is(err, ErrNGFailed) {
				w.lastErr = err
			}
			continue
		}
		eps, err := QueryEndpoints(reply)
		if err != nil {
			w.lastErr = err
			continue
		}
		w.endpoints[id] = eps
	}
}

// stop ends polling; the fields may be read afterwards.
func (w *callWatcher) stop() {
	w.cancel()
	<-w.done
}

// requireNoCalls checks, once the caller has its 200 OK to every BYE, that
// the relay lists no call and its statistics show no current session.
// Kamailio waits for the relay's answer to delete before it forwards the
// BYE, so with --delete-delay=0 nothing may be left at this point.
func requireNoCalls(t *testing.T, r *relay) {
	t.Helper()
	calls, err := r.list()
	if err != nil {
		t.Fatalf("list after BYE: %v", err)
	}
	if len(calls) != 0 {
		t.Errorf("after BYE the relay still lists %d calls %q, want none (--delete-delay=0)", len(calls), calls)
	}
	stats, err := r.statistics()
	if err != nil {
		t.Fatalf("statistics after BYE: %v", err)
	}
	own, total, err := SessionCounts(stats)
	if err != nil {
		t.Fatalf("statistics after BYE: %v", err)
	}
	if own != 0 || total != 0 {
		t.Errorf("after BYE: statistics sessionsown=%d sessionstotal=%d, want 0 and 0", own, total)
	}
}

// hasEndpoint reports whether the relay listed addr:port among its sockets.
func hasEndpoint(eps []StreamEndpoint, addr string, port int) bool {
	for _, e := range eps {
		if e.Address == addr && e.Port == port {
			return true
		}
	}
	return false
}
