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
	"syscall"
	"testing"
	"time"

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

// unavailable stops a test whose machine lacks something it needs: a skip
// locally, a failure when CI is set, where a skip would hide that the proof
// never ran.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// requireEnvironment checks root and the programs the harness runs before
// anything is created.
func requireEnvironment(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "media tests need root (network namespaces, veth links, a bridge); run with sudo -E")
	}
	if _, err := ipBinary(); err != nil {
		unavailable(t, "%v", err)
	}
	if os.Getenv("E2E_RELAYD_BIN") == "" {
		if _, err := exec.LookPath("go"); err != nil {
			unavailable(t, "go not in PATH to build relayd (%v); set E2E_RELAYD_BIN", err)
		}
	}
}

// artifactDir is where the relay's log goes: a temp dir, or
// MEDIA_ARTIFACTS/<test> to keep it after the run.
func artifactDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("MEDIA_ARTIFACTS")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	t.Logf("artifacts kept in %s", dir)
	return dir
}

// ipBinary finds iproute2's ip, which lives in sbin, which a user's PATH
// kept by `sudo -E` may lack. (t.Setenv would forbid parallel tests.)
func ipBinary() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("ip (iproute2) not found in PATH or sbin; install iproute2")
}

// command is exec.Command with "ip" resolved by ipBinary.
func command(argv ...string) *exec.Cmd {
	if argv[0] == "ip" {
		if p, err := ipBinary(); err == nil {
			argv[0] = p
		}
	}
	return exec.Command(argv[0], argv[1:]...)
}

func runCommand(t *testing.T, argv ...string) {
	t.Helper()
	out, err := command(argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
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

func nsPath(name string) string { return "/run/netns/" + name }

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
		runCommand(t, "ip", "netns", "add", ns)
		// Registered before any process starts, so it runs after every
		// process cleanup (cleanups run last-in first-out).
		t.Cleanup(func() {
			if out, err := command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v\n%s", ns, err, out)
			}
		})
		// No duplicate address detection: a tentative IPv6 address cannot
		// be bound, and nothing here can collide. Forwarding off: the "no
		// bypass" claim must not depend on what the host's namespaces
		// inherit.
		err := e2e.DoInNetns(nsPath(ns), func() error {
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
		runCommand(t, s...)
	}
	return tp
}

// process is one program started inside a namespace with `ip netns exec`,
// which execs it, so the PID is the program's own.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

func startProcess(t *testing.T, ns, name, logPath string, argv ...string) *process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	cmd := command(append([]string{"ip", "netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: if the test binary is killed, relayd does not linger.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("started %s (pid %d) in %s: %s", name, cmd.Process.Pid, ns, strings.Join(argv, " "))
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits, and kills it if it does not
// exit.
func (p *process) stop(t *testing.T) {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	t.Logf("%s ignored SIGTERM for 5s; killing", p.name)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// relaydBinary builds ./cmd/relayd from the module root into dir, or uses
// E2E_RELAYD_BIN.
func relaydBinary(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("E2E_RELAYD_BIN"); bin != "" {
		return bin
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the relayd module", gomod)
	}
	bin := filepath.Join(dir, "relayd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/relayd")
	build.Dir = filepath.Dir(gomod)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relayd: %v\n%s", err, out)
	}
	return bin
}

// relayd is the relay under test in the relay namespace, with an ng client
// whose socket lives in that namespace too.
type relayd struct {
	proc *process
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
			unavailable(t, "MEDIA_RELAY=rtpengine but %v; install rtpengine-daemon", err)
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
		bin = relaydBinary(t, dir)
	}
	// Last, so that they win: e.g. another --endpoint-learning.
	args = append(args, strings.Fields(os.Getenv("MEDIA_RELAY_ARGS"))...)
	logPath := filepath.Join(dir, "relayd.log")
	p := startProcess(t, tp.relay, filepath.Base(bin), logPath, append([]string{bin}, args...)...)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if p.exited() {
			t.Logf("relayd exited: %v", p.waitErr)
		}
		t.Logf("--- relayd log %s, last lines:\n%s", logPath, tail(readFile(logPath), 60))
	})
	conn, err := e2e.ListenUDPInNetns(nsPath(tp.relay), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("ng client socket: %v", err)
	}
	r := &relayd{proc: p, ng: e2e.NewNGClient(conn, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: ngPort}, 500*time.Millisecond, 3)}
	t.Cleanup(func() { r.ng.Close() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		if p.exited() {
			t.Fatalf("relayd exited during startup: %v\n%s", p.waitErr, tail(readFile(logPath), 40))
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
	fi, err := os.Stat(r.proc.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (r *relayd) logSince(off int64) string {
	data := readFile(r.proc.logPath)
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
		if r.proc.exited() {
			t.Errorf("relayd exited during this scenario: %v", r.proc.waitErr)
		}
		if t.Failed() {
			t.Logf("--- relayd log during %s:\n%s", t.Name(), tail(r.logSince(off), 150))
		}
	})
}

// socketsBound lists the UDP ports bound in the relay process's network
// namespace (IPv4 and IPv6), from /proc/PID/net/udp{,6}.
func (r *relayd) socketsBound(t *testing.T) map[int]bool {
	t.Helper()
	ports := map[int]bool{}
	for _, f := range []string{"udp", "udp6"} {
		path := fmt.Sprintf("/proc/%d/net/%s", r.proc.cmd.Process.Pid, f)
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

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines omitted]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
