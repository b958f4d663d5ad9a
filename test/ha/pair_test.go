// SPDX-License-Identifier: Apache-2.0

package ha

import (
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
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

func TestMain(m *testing.M) {
	flag.Parse()
	if *agentFlag != "" {
		os.Exit(runAgent(*agentFlag))
	}
	os.Exit(m.Run())
}

// The segment: two relays, Redis and the peers on one bridge, the floating
// media address on whichever relay is VRRP master (documentation range,
// RFC 5737 would be too small for the bench's neighbours: a private /24).
const (
	vip       = "10.77.0.100"
	addrA     = "10.77.0.1"
	addrB     = "10.77.0.2"
	addrDB    = "10.77.0.3"
	addrPeers = "10.77.0.10"
	prefixLen = 24
	redisPort = 6379
	redisDB   = 1
	ngPort    = 2223
	cliPort   = 2224
	ifName    = "eth0"
)

// relayNode is one relay of the pair: relayd and keepalived in its
// namespace.
type relayNode struct {
	name, ns, addr string
	prio           int
	conf           string // relayd's config file
	track          string // keepalived's vrrp_track_file
	kaConf, kaPIDs string // keepalived's config and pid files' prefix
	relayd         *testenv.Process
	keepalived     *testenv.Process
}

// pair is the whole set-up.
type pair struct {
	t                *testing.T
	dir              string
	bin              string // relayd
	notify, trackSh  string // packaging/keepalived scripts
	lan, db, peers   string // namespaces
	nodes            []*relayNode
	redis            *testenv.Redis
	keepalivedBinary string
}

func requireHA(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "HA tests need root (network namespaces, keepalived)")
	}
	path := os.Getenv("PATH")
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if !slices.Contains(filepath.SplitList(path), d) {
			path += string(filepath.ListSeparator) + d
		}
	}
	t.Setenv("PATH", path)
	for _, b := range []string{"ip", "keepalived", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			testenv.Unavailable(t, "%s not found (%v); install the packages in scripts/test-deps.txt", b, err)
		}
	}
	if os.Getenv("E2E_RELAYD_BIN") == "" {
		if _, err := exec.LookPath("go"); err != nil {
			testenv.Unavailable(t, "go not in PATH to build relayd (%v); set E2E_RELAYD_BIN", err)
		}
	}
	ka, _ := exec.LookPath("keepalived")
	return ka
}

// newPair builds the segment, starts Redis and both relays; a is VRRP
// master (it starts first: both are BACKUP with nopreempt), b its standby.
func newPair(t *testing.T) *pair {
	t.Helper()
	ka := requireHA(t)
	dir := testenv.ArtifactDir(t, "HA_ARTIFACTS")
	h := fnv.New32a()
	h.Write([]byte(t.Name()))
	suffix := fmt.Sprintf("%d-%06x", os.Getpid(), h.Sum32()&0xffffff)
	p := &pair{t: t, dir: dir, keepalivedBinary: ka,
		lan: "ha-lan-" + suffix, db: "ha-db-" + suffix, peers: "ha-peers-" + suffix}
	p.nodes = []*relayNode{
		{name: "a", ns: "ha-a-" + suffix, addr: addrA, prio: 150},
		{name: "b", ns: "ha-b-" + suffix, addr: addrB, prio: 100},
	}
	all := []string{p.lan, p.db, p.peers, p.nodes[0].ns, p.nodes[1].ns}
	for _, ns := range all {
		testenv.Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := testenv.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
				t.Errorf("delete netns %s: %v\n%s", ns, err, out)
			}
		})
		testenv.Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	// One bridge is the switch; every other namespace has one port on it.
	testenv.Run(t, "ip", "-n", p.lan, "link", "add", "br0", "type", "bridge", "stp_state", "0")
	testenv.Run(t, "ip", "-n", p.lan, "link", "set", "br0", "up")
	for i, x := range []struct{ ns, addr string }{{p.nodes[0].ns, addrA}, {p.nodes[1].ns, addrB},
		{p.db, addrDB}, {p.peers, addrPeers}} {
		port := fmt.Sprintf("p%d", i)
		testenv.Run(t, "ip", "-n", p.lan, "link", "add", port, "type", "veth", "peer", "name", ifName, "netns", x.ns)
		testenv.Run(t, "ip", "-n", p.lan, "link", "set", port, "master", "br0")
		testenv.Run(t, "ip", "-n", p.lan, "link", "set", port, "up")
		testenv.Run(t, "ip", "-n", x.ns, "addr", "add", fmt.Sprintf("%s/%d", x.addr, prefixLen), "dev", ifName)
		testenv.Run(t, "ip", "-n", x.ns, "link", "set", ifName, "up")
	}
	p.redis = testenv.StartRedisAt(t, p.db, addrDB, redisPort)

	p.bin = testenv.RelaydBinary(t, dir)
	root := moduleRoot(t)
	p.notify = filepath.Join(root, "packaging", "keepalived", "relayd-vrrp-notify")
	p.trackSh = filepath.Join(root, "packaging", "keepalived", "relayd-vrrp-track")
	for _, n := range p.nodes {
		p.configure(n)
		p.startRelayd(n)
		p.startKeepalived(n)
		if n.name == "a" {
			p.waitVIP(n, 10*time.Second)
		}
	}
	p.waitState(p.nodes[1], "BACKUP", 10*time.Second)
	return p
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		wd, _ := os.Getwd()
		return filepath.Join(wd, "..", "..")
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// configure writes the node's relayd and keepalived configuration: the
// relayd keys of the README's active/standby pair, and the packaged
// keepalived example with this segment's addresses.
func (p *pair) configure(n *relayNode) {
	t := p.t
	n.conf = filepath.Join(p.dir, "relayd-"+n.name+".conf")
	conf := fmt.Sprintf(`[rtpengine]
interface = %s
listen-ng = 0.0.0.0:%d
listen-cli = 127.0.0.1:%d
port-min = 30000
port-max = 30999
redis = %s:%d/%d
subscribe-keyspace = %d
active-switchover = yes
node-name = relay-%s
xdp = off
delete-delay = 0
timeout = 60
log-level = 6
foreground = yes
`, vip, ngPort, cliPort, addrDB, redisPort, redisDB, redisDB, n.name)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	other := addrB
	if n.addr == addrB {
		other = addrA
	}
	n.track = filepath.Join(p.dir, "vrrp-"+n.name+".track")
	n.kaConf = filepath.Join(p.dir, "keepalived-"+n.name+".conf")
	n.kaPIDs = filepath.Join(p.dir, "keepalived-"+n.name)
	ka := fmt.Sprintf(`global_defs {
    router_id relayd-%[1]s
    enable_script_security
    script_user root
    vrrp_version 3
    vrrp_rt_priority 50
    vrrp_rlimit_rttime 200000
}
track_file relayd_down {
    file %[2]s
    init_file 1
}
vrrp_instance relayd {
    state BACKUP
    nopreempt
    interface %[3]s
    virtual_router_id 51
    priority %[4]d
    advert_int 0.1
    unicast_src_ip %[5]s
    unicast_peer {
        %[6]s
    }
    virtual_ipaddress {
        %[7]s/%[8]d dev %[3]s
    }
    track_file {
        relayd_down weight 0
    }
    notify "%[9]s -relayd %[10]s -config-file %[11]s"
}
`, n.name, n.track, ifName, n.prio, n.addr, other, vip, prefixLen, p.notify, p.bin, n.conf)
	if err := os.WriteFile(n.kaConf, []byte(ka), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startRelayd starts relayd and, once it answers, tells keepalived so (as
// the systemd drop-in's ExecStartPost does).
func (p *pair) startRelayd(n *relayNode) {
	t := p.t
	n.relayd = testenv.StartProcess(t, n.ns, "relayd-"+n.name, filepath.Join(p.dir, "relayd-"+n.name+".log"),
		p.bin, "--config-file="+n.conf)
	showOnFailure(t, n.relayd.LogPath)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := p.ctl(n, "list numsessions"); err == nil {
			break
		}
		if n.relayd.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(n.relayd.LogPath)
			t.Fatalf("relayd %s never answered its CLI:\n%s", n.name, testenv.Tail(string(b), 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	testenv.Run(t, p.trackSh, "up", n.track)
}

func (p *pair) startKeepalived(n *relayNode) {
	n.keepalived = testenv.StartProcess(p.t, n.ns, "keepalived-"+n.name, filepath.Join(p.dir, "keepalived-"+n.name+".log"),
		p.keepalivedBinary, "--dont-fork", "--log-console", "--log-detail", "--vrrp", "--use-file", n.kaConf,
		"--pid", n.kaPIDs+".pid", "--vrrp_pid", n.kaPIDs+"-vrrp.pid")
	showOnFailure(p.t, n.keepalived.LogPath)
	// keepalived's VRRP child: killed with the node.
	p.t.Cleanup(func() { killPIDFile(n.kaPIDs + "-vrrp.pid") })
}

func killPIDFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// ctl runs "relayd ctl" in the node's namespace (reading listen-cli from
// its config file, as an operator's would).
func (p *pair) ctl(n *relayNode, cmd string) (string, error) {
	argv := append([]string{"ip", "netns", "exec", n.ns, p.bin, "ctl", "-timeout", "2s", "-config-file", n.conf},
		strings.Fields(cmd)...)
	out, err := testenv.Command(argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: relayd ctl %s: %v: %s", n.name, cmd, err, out)
	}
	return string(out), nil
}

var numRE = regexp.MustCompile(`Current sessions (own|foreign): (\d+)`)

// sessions reads the node's own and foreign call counts (-1 when it does
// not answer).
func (p *pair) sessions(n *relayNode) (own, foreign int) {
	out, err := p.ctl(n, "list numsessions")
	if err != nil {
		return -1, -1
	}
	own, foreign = -1, -1
	for _, m := range numRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[2])
		if m[1] == "own" {
			own = v
		} else {
			foreign = v
		}
	}
	return own, foreign
}

func (p *pair) hasVIP(n *relayNode) bool {
	out, err := testenv.Command("ip", "-n", n.ns, "-4", "-br", "addr", "show", "dev", ifName).Output()
	return err == nil && strings.Contains(string(out), vip+"/")
}

func (p *pair) waitVIP(n *relayNode, d time.Duration) time.Time {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for !p.hasVIP(n) {
		if time.Now().After(deadline) {
			p.t.Fatalf("relay %s never got the floating address", n.name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Now()
}

// waitState waits for keepalived's log to show the instance in state.
func (p *pair) waitState(n *relayNode, state string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(n.keepalived.LogPath)
		if strings.Contains(string(b), "Entering "+state+" STATE") {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("keepalived %s never entered %s:\n%s", n.name, state, testenv.Tail(string(b), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// redisKeys lists the database's keys, from the Redis namespace.
func (p *pair) redisKeys() ([]string, error) {
	out, err := testenv.Command("ip", "netns", "exec", p.db, "redis-cli", "-h", addrDB, "-p", strconv.Itoa(redisPort),
		"-n", strconv.Itoa(redisDB), "--scan").Output()
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range strings.Fields(string(out)) {
		if k != "relayd:dtls-identity" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// redisNode reads which relay wrote a call's record.
func (p *pair) redisNode(key string) string {
	out, err := testenv.Command("ip", "netns", "exec", p.db, "redis-cli", "-h", addrDB, "-p", strconv.Itoa(redisPort),
		"-n", strconv.Itoa(redisDB), "GET", key).Output()
	if err != nil {
		return ""
	}
	var rec struct {
		Node string `json:"node"`
	}
	_ = json.Unmarshal(out, &rec)
	return rec.Node
}

// agentRun is the peers' agent, running.
type agentRun struct {
	cfg  agentConfig
	proc *testenv.Process
}

// startAgent runs this test binary as the agent in the peers' namespace and
// waits until every stream carries media.
func (p *pair) startAgent(cfg agentConfig) *agentRun {
	t := p.t
	t.Helper()
	cfg.NG, cfg.Local, cfg.Iface = fmt.Sprintf("%s:%d", vip, ngPort), addrPeers, ifName
	cfg.Dir = filepath.Join(p.dir, "agent")
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(cfg.Dir, "config.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	a := &agentRun{cfg: cfg}
	a.proc = testenv.StartProcess(t, p.peers, "agent", filepath.Join(cfg.Dir, "agent.log"), self,
		"-test.run=^$", "-ha.agent="+path)
	showOnFailure(t, a.proc.LogPath)
	deadline := time.Now().Add(40 * time.Second)
	for {
		if _, err := os.Stat(cfg.file("ready")); err == nil {
			return a
		}
		if a.proc.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(a.proc.LogPath)
			t.Fatalf("agent never ready:\n%s", testenv.Tail(string(b), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish stops the agent and reads what it measured.
func (a *agentRun) finish(t *testing.T) agentResult {
	t.Helper()
	if err := os.WriteFile(a.cfg.file("stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := a.proc.Wait(20 * time.Second); err != nil {
		b, _ := os.ReadFile(a.proc.LogPath)
		t.Fatalf("agent: %v\n%s", err, testenv.Tail(string(b), 40))
	}
	b, err := os.ReadFile(a.cfg.file("result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res agentResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func showOnFailure(t *testing.T, path string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(path)
		t.Logf("--- %s:\n%s", filepath.Base(path), testenv.Tail(string(b), 40))
	})
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}
