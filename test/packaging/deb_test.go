// SPDX-License-Identifier: Apache-2.0

// Package packaging tests the .deb as an operator meets it: `make deb`,
// dpkg -i, relayd started the way the installed systemd unit starts it, and
// dpkg --purge leaving nothing behind.
package packaging

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/relayd/relayd/pkg/cli"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/test/testenv"
)

const unitPath = "/lib/systemd/system/relayd.service"

// The capabilities the unit grants: what relayd needs and nothing more.
var wantCaps = []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_PERFMON", "CAP_NET_BIND_SERVICE", "CAP_SYS_RESOURCE"}

func requireEnv(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "installing a .deb needs root")
	}
	for _, bin := range []string{"dpkg", "setpriv", "make", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, "%s not found: %v", bin, err)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "relayd").Output(); err == nil && strings.Contains(string(out), "installed") {
		testenv.Unavailable(t, "a relayd package is installed on this machine; the test would purge it (dpkg --purge relayd first)")
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func run(t *testing.T, dir string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// unit is a systemd unit file: section -> key -> values (keys may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// boundingCaps are the capabilities this process may hand on (a container
// may lack some).
func boundingCaps(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			var n uint64
			fmt.Sscanf(strings.TrimSpace(v), "%x", &n)
			return n
		}
	}
	t.Fatal("no CapBnd in /proc/self/status")
	return 0
}

var capBits = map[string]uint{"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_RESOURCE": 24, "CAP_PERFMON": 38, "CAP_BPF": 39}

// TestDebInstallRunPurge builds the package, installs it, runs relayd from
// the unit's ExecStart as the unit's user with the unit's capabilities (in a
// network namespace, so the packaged loopback config cannot clash with
// anything on the host), talks to it over ng and the CLI, and purges it.
func TestDebInstallRunPurge(t *testing.T) {
	root := requireEnv(t)
	tmp := t.TempDir()
	run(t, root, "make", "deb", "DEB_DIR="+tmp, "BIN="+filepath.Join(tmp, "relayd"))
	debs, _ := filepath.Glob(filepath.Join(tmp, "relayd_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	run(t, root, "dpkg", "-i", debs[0])
	purged := false
	t.Cleanup(func() {
		if !purged {
			exec.Command("dpkg", "--purge", "relayd").Run()
		}
	})
	files := strings.Fields(run(t, root, "dpkg", "-L", "relayd"))
	// The package's own files (dpkg -L also lists shared directories such
	// as /usr, and /lib, a symlink on merged-/usr systems).
	var owned []string
	for _, f := range files {
		if st, err := os.Lstat(f); err == nil && st.Mode().IsRegular() {
			owned = append(owned, f)
		}
	}
	for _, want := range []string{"/usr/bin/relayd", unitPath, "/etc/relayd/relayd.conf", "/usr/share/relayd/grafana/relayd.json",
		"/usr/lib/relayd/relayd-vrrp-notify", "/usr/lib/relayd/relayd-vrrp-track"} {
		if !slices.Contains(files, want) {
			t.Errorf("package lacks %s (has %v)", want, files)
		}
		if _, err := os.Stat(want); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	if err := exec.Command("getent", "passwd", "relayd").Run(); err != nil {
		t.Fatalf("no relayd user after install: %v", err)
	}

	u := parseUnit(t, unitPath)
	for _, c := range []struct{ key, want string }{
		{"Type", "notify"}, {"User", "relayd"}, {"Group", "relayd"}, {"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"}, {"ProtectHome", "yes"}, {"PrivateTmp", "yes"}, {"WatchdogSec", "30"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
	} {
		if got := u.get("Service", c.key); got != c.want {
			t.Errorf("unit %s=%q, want %q", c.key, got, c.want)
		}
	}
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		got := strings.Fields(u.get("Service", key))
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(wantCaps))) {
			t.Errorf("unit %s=%v, want exactly %v", key, got, wantCaps)
		}
	}
	execStart := strings.Fields(u.get("Service", "ExecStart"))
	if len(execStart) == 0 || execStart[0] != "/usr/bin/relayd" {
		t.Fatalf("ExecStart=%q", u.get("Service", "ExecStart"))
	}

	// What systemd would do: user, group, capabilities (those this machine
	// can grant), no new privileges, NOTIFY_SOCKET and WATCHDOG_USEC.
	bnd := boundingCaps(t)
	var caps []string
	for _, c := range strings.Fields(u.get("Service", "AmbientCapabilities")) {
		if bnd&(1<<capBits[c]) == 0 {
			t.Logf("%s is not in this machine's bounding set: running without it", c)
			continue
		}
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	capList := strings.Join(caps, ",")
	sockDir, err := os.MkdirTemp("", "relayd-notify-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	os.Chmod(sockDir, 0o755)
	sockPath := filepath.Join(sockDir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	os.Chmod(sockPath, 0o666) // systemd's socket is writable by the service
	t.Setenv("NOTIFY_SOCKET", sockPath)
	t.Setenv("WATCHDOG_USEC", "1000000") // the unit's 30 s, shortened for the test

	// StateDirectory=: systemd makes /var/lib/<name> the service user's.
	if sd := u.get("Service", "StateDirectory"); sd != "" {
		dir := filepath.Join("/var/lib", sd)
		mode := u.get("Service", "StateDirectoryMode")
		if mode == "" {
			mode = "0755"
		}
		run(t, root, "install", "-d", "-o", "relayd", "-g", "relayd", "-m", mode, dir)
	}

	nsName := fmt.Sprintf("relayd-pkg-%d", os.Getpid())
	run(t, root, "ip", "netns", "add", nsName)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", nsName).Run() }) //nolint:errcheck
	run(t, root, "ip", "-n", nsName, "link", "set", "lo", "up")
	argv := append([]string{"setpriv", "--reuid=relayd", "--regid=relayd", "--init-groups",
		"--inh-caps=-all," + capList, "--ambient-caps=" + capList, "--bounding-set=-all," + capList, "--no-new-privs", "--"}, execStart...)
	logPath := filepath.Join(tmp, "relayd.log")
	proc := testenv.StartProcess(t, nsName, "relayd", logPath, argv...)
	showLog := func() string { b, _ := os.ReadFile(logPath); return testenv.Tail(string(b), 30) }

	readNotify := func(want string, d time.Duration) []string {
		var got []string
		buf := make([]byte, 4096)
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			notify.SetReadDeadline(deadline)
			n, err := notify.Read(buf)
			if err != nil {
				break
			}
			got = append(got, string(buf[:n]))
			if strings.HasPrefix(string(buf[:n]), want) {
				return got
			}
		}
		t.Fatalf("no %s from relayd within %v (got %q); log:\n%s", want, d, got, showLog())
		return nil
	}
	readNotify("READY=1", 15*time.Second)
	readNotify("WATCHDOG=1", 3*time.Second)

	ns, err := netns.GetFromName(nsName)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var client *ngproto.Client
	testenv.InNetNS(t, ns, func() {
		client, err = ngproto.Dial("127.0.0.1:2223")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if reply, err := client.Do(ctx, map[string]any{"command": "ping"}); err != nil || reply["result"] != "pong" {
		t.Fatalf("ng ping: %v %v; log:\n%s", reply, err, showLog())
	}
	var out string
	testenv.InNetNS(t, ns, func() { out, err = cli.Send("127.0.0.1:2224", "list numsessions", 3*time.Second) })
	if err != nil || !strings.HasPrefix(out, "Current sessions own: 0\n") {
		t.Errorf("CLI on the packaged config: %q %v", out, err)
	}
	// With the unit's CAP_NET_RAW the media workers send through their raw
	// sockets; without it they say so at start.
	if b, _ := os.ReadFile(logPath); bnd&(1<<capBits["CAP_NET_RAW"]) != 0 &&
		strings.Contains(string(b), "sending through each stream's socket") {
		t.Errorf("the unit's capabilities did not let the media workers open raw sockets; log:\n%s", showLog())
	}
	proc.Stop(t, syscall.SIGTERM)
	if err := proc.Err(); err != nil {
		t.Errorf("relayd exit: %v; log:\n%s", err, showLog())
	}
	readNotify("STOPPING=1", 2*time.Second)

	run(t, root, "dpkg", "--purge", "relayd")
	purged = true
	if out, err := execCommand("dpkg-query", "-W", "-f=${Status}", "relayd"); err == nil && strings.Contains(out, "installed") {
		t.Errorf("still installed after purge: %s", out)
	}
	for _, f := range owned {
		if _, err := os.Lstat(f); err == nil {
			t.Errorf("%s left after purge", f)
		}
	}
	for _, d := range []string{"/etc/relayd", "/usr/share/relayd", "/usr/share/doc/relayd", "/var/lib/relayd"} {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("%s left after purge", d)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if out, err := execCommand("getent", db, "relayd"); err == nil {
			t.Errorf("%s entry left after purge: %s", db, out)
		}
	}
}

func execCommand(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	return string(out), err
}
