// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Redis is a real redis-server (Debian's) without persistence, on a
// loopback port of its own (or an address given): restarted, it comes back
// empty, as a Redis without RDB/AOF does.
type Redis struct {
	t    testing.TB
	bin  string
	dir  string
	host string
	port int
	// NetNS, when set, runs the server in that named namespace (ip netns
	// exec).
	netns string
	cmd   *exec.Cmd
	done  chan struct{}
}

// Addr is the server's host:port.
func (r *Redis) Addr() string { return net.JoinHostPort(r.host, strconv.Itoa(r.port)) }

// StartRedis starts redis-server on 127.0.0.1, stopped at cleanup.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return StartRedisAt(t, "", "127.0.0.1", port)
}

// StartRedisAt starts redis-server on host:port, in network namespace ns
// when not empty, stopped at cleanup.
func StartRedisAt(t testing.TB, ns, host string, port int) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(t, "redis-server not found (%v); install the redis-server package (scripts/test-deps.txt)", err)
	}
	r := &Redis{t: t, bin: bin, dir: t.TempDir(), host: host, port: port, netns: ns}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// Start starts the server (again) and waits until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	argv := []string{r.bin, "--port", strconv.Itoa(r.port), "--bind", r.host, "--save", "",
		"--appendonly", "no", "--dir", r.dir, "--daemonize", "no", "--protected-mode", "no"}
	if r.netns != "" {
		argv = append([]string{"ip", "netns", "exec", r.netns}, argv...)
	}
	r.cmd = Command(argv...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); logf.Close(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for !r.answers() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s never answered\n%s", r.Addr(), b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether the server replies to PING (from its namespace).
func (r *Redis) answers() bool {
	cli, err := exec.LookPath("redis-cli")
	if err != nil || r.netns == "" {
		c, err := net.DialTimeout("tcp", r.Addr(), 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	out, err := Command("ip", "netns", "exec", r.netns, cli, "-h", r.host, "-p", strconv.Itoa(r.port), "PING").Output()
	return err == nil && string(out) == "PONG\n"
}

// Kill stops the server with SIGKILL, as a crash would.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Restart is Kill then Start: an empty server on the same address.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	r.Start()
}

func (r *Redis) String() string { return fmt.Sprintf("redis-server %s", r.Addr()) }
