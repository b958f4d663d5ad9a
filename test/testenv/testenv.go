// SPDX-License-Identifier: Apache-2.0

// Package testenv holds what the privileged test suites (test/e2e, test/media
// and the namespace tests of bpf and pkg/fastpath) share: the skip-or-fail
// rule for missing prerequisites, switching into and starting processes in
// network namespaces cleaned up with the test, and the relayd build.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Unavailable stops a test whose machine lacks something it needs: a skip
// locally, a failure when CI is set, where a skip would hide that the proof
// never ran.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: failing instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// IPBinary finds iproute2's ip, which lives in sbin, which a user's PATH kept
// by `sudo -E` may lack.
func IPBinary() (string, error) {
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

// Command is exec.Command with "ip" resolved by IPBinary.
func Command(argv ...string) *exec.Cmd {
	if argv[0] == "ip" {
		if p, err := IPBinary(); err == nil {
			argv[0] = p
		}
	}
	return exec.Command(argv[0], argv[1:]...)
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, argv ...string) {
	t.Helper()
	out, err := Command(argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// NSPath is the bind-mount path of a namespace made with `ip netns add`.
func NSPath(name string) string { return "/run/netns/" + name }

// Process is a program started inside a namespace with `ip netns exec` (which
// execs it, so the PID is the program's own), in its own process group so that
// stopping it also stops its children and nothing else.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
}

// StartProcess starts argv in namespace ns with its output in logPath; the
// test's cleanup stops it.
func StartProcess(t testing.TB, ns, name, logPath string, argv ...string) *Process {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	cmd := Command(append([]string{"ip", "netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// Pdeathsig: if the test binary is killed, nothing lingers. It follows
	// the thread that forked, and Go's runtime ends a thread a goroutine
	// leaves locked (InNetNS does when it cannot switch back): the program
	// is started and waited for from a thread locked for its whole life.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	if err := <-started; err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Logf("%s started %s (pid %d) in %s: %s", time.Now().Format("15:04:05.000"), name, cmd.Process.Pid, ns, strings.Join(argv, " "))
	t.Cleanup(func() { p.Stop(t, syscall.SIGTERM) })
	return p
}

// Pid is the program's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the program has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the program's exit error once it has exited.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Stop signals the process group, waits, and kills it if it does not exit.
func (p *Process) Stop(t testing.TB, sig syscall.Signal) {
	if p.Exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	t.Logf("%s ignored %v for 5s; killing", p.Name, sig)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// Wait waits for the program to exit by itself and returns its exit error.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.Name, timeout)
	}
}

// RelaydBinary builds ./cmd/relayd from the module root into dir, or returns
// E2E_RELAYD_BIN when set.
func RelaydBinary(t testing.TB, dir string) string {
	t.Helper()
	if bin := os.Getenv("E2E_RELAYD_BIN"); bin != "" {
		return bin
	}
	return buildRelayd(t, dir, nil)
}

// RelaydBinaryOpus is RelaydBinary for tests that need relayd to transcode
// Opus: built with cgo and the nolibopusfile tag (libopus only, as `make
// build` does), whatever CGO_ENABLED and GOFLAGS the test runs with. A
// machine without a C compiler or libopus is Unavailable. E2E_RELAYD_BIN is
// returned unchecked: the caller learns from relayd itself whether it has
// Opus.
func RelaydBinaryOpus(t testing.TB, dir string) string {
	t.Helper()
	if bin := os.Getenv("E2E_RELAYD_BIN"); bin != "" {
		return bin
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "gcc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		Unavailable(t, "relayd with Opus needs cgo, and the C compiler %s is missing (%v): install gcc pkg-config libopus-dev (make deps)", cc, err)
	}
	if out, err := exec.Command("pkg-config", "--exists", "--print-errors", "opus").CombinedOutput(); err != nil {
		Unavailable(t, "relayd with Opus needs libopus, which pkg-config does not find (%v: %s): install libopus-dev (make deps)",
			err, strings.TrimSpace(string(out)))
	}
	return buildRelayd(t, dir, []string{"CGO_ENABLED=1"}, "-tags", "nolibopusfile")
}

func buildRelayd(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the relayd module", gomod)
	}
	bin := filepath.Join(dir, "relayd")
	argv := append(append([]string{"build"}, args...), "-o", bin, "./cmd/relayd")
	build := exec.Command("go", argv...)
	build.Dir = filepath.Dir(gomod)
	build.Env = append(os.Environ(), env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return bin
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines omitted]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// ArtifactDir is where a test's configs and logs go: a temp dir, or
// $envVar/<test name> to keep them after the run.
func ArtifactDir(t testing.TB, envVar string) string {
	t.Helper()
	base := os.Getenv(envVar)
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
