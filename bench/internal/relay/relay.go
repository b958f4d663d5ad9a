// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Kind is the relay implementation.
type Kind string

// The relays the bench knows how to start.
const (
	Relayd    Kind = "relayd"
	Rtpengine Kind = "rtpengine"
)

// Spec is one entry of the --relay list: an implementation in one
// forwarding mode, with the extra arguments that select the mode.
type Spec struct {
	Name string // "relayd:userspace", "rtpengine"
	Kind Kind
	Mode string
	// Args are appended after the common arguments, so they win.
	Args []string
	// ExpectKernel says the mode forwards outside the relay process (XDP,
	// a kernel module): the bench then checks the relay's statistics
	// report kernel-forwarded packets, so a relay that silently ignored
	// the mode flag is caught instead of being reported as that mode.
	ExpectKernel bool
	// Ceiling, when set ("generic" or "native"), makes the entry the
	// machine's ceiling rather than a relay: relayd runs only as the
	// control plane (ports, SDP) while the bare rewrite-and-bounce XDP
	// program (bpf.Ceiling: the relay program's per-packet rewrite with no
	// lookup, XDP_TX back to the sender) is attached to the relay's
	// interfaces in that mode. Every packet comes back to the socket that
	// sent it, so the generator measures it like relayed media; what the
	// relay side spends on it is what forwarding cannot go below here.
	Ceiling string
}

// builtin returns the known forwarding modes and the flags that select
// them (relayd's --xdp). Kernel modes set ExpectKernel, so a relay that
// fell back to userspace (relayd logs why and carries on) is reported as
// such rather than measured under the wrong name.
func builtin() map[string]Spec {
	return map[string]Spec{
		"relayd:userspace":   {Kind: Relayd, Mode: "userspace", Args: []string{"--xdp=off"}},
		"relayd:xdp":         {Kind: Relayd, Mode: "xdp", Args: []string{"--xdp=auto"}, ExpectKernel: true},
		"relayd:xdp-native":  {Kind: Relayd, Mode: "xdp-native", Args: []string{"--xdp=native"}, ExpectKernel: true},
		"relayd:xdp-generic": {Kind: Relayd, Mode: "xdp-generic", Args: []string{"--xdp=generic"}, ExpectKernel: true},
		"rtpengine":          {Kind: Rtpengine, Mode: "userspace"},
		// Generic is what relayd:xdp (auto) picks on veths, so "ceiling"
		// is its like-for-like reference. No native entry: this kernel
		// (6.18) drops native XDP_TX on a veth, and the veth keeps
		// dropping after the program is gone.
		"ceiling": {Kind: Relayd, Mode: "ceiling", Args: []string{"--xdp=off"}, Ceiling: "generic"},
		// The incumbent's kernel module needs xt_RTPENGINE, which this
		// kernel does not have; --table=0 selects it where it exists.
		"rtpengine:kernel": {Kind: Rtpengine, Mode: "kernel", Args: []string{"--table=0"}, ExpectKernel: true},
	}
}

// ParseList reads a comma-separated relay list such as
// "relayd:userspace,relayd:xdp,rtpengine". Entries of a known kind with
// an unknown mode (relayd:foo) are accepted when args gives their flags.
// args maps an entry name to extra arguments, replacing the built-in ones
// ("relayd:xdp" -> ["--xdp=native"]).
func ParseList(list string, args map[string][]string) ([]Spec, error) {
	var out []Spec
	seen := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: %q listed twice", ErrBadSpec, name)
		}
		seen[name] = true
		s, ok := builtin()[name]
		extra, hasExtra := args[name]
		if !ok {
			kind, mode, _ := strings.Cut(name, ":")
			if (kind != string(Relayd) && kind != string(Rtpengine)) || mode == "" || !hasExtra {
				return nil, fmt.Errorf("%w: %q (known: %s; a new mode of relayd or rtpengine needs --relay-args '%s=FLAGS')",
					ErrBadSpec, name, strings.Join(Known(), ", "), name)
			}
			s = Spec{Kind: Kind(kind), Mode: mode}
		}
		s.Name = name
		if hasExtra {
			s.Args = extra
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty relay list", ErrBadSpec)
	}
	return out, nil
}

// Known lists the built-in relay names.
func Known() []string {
	var k []string
	for n := range builtin() {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// ParseArgs reads --relay-args values "NAME=ARGS..." (ARGS split on
// spaces).
func ParseArgs(values []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, v := range values {
		name, args, ok := strings.Cut(v, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("%w: --relay-args %q, want NAME=ARGS", ErrBadSpec, v)
		}
		out[strings.TrimSpace(name)] = strings.Fields(args)
	}
	return out, nil
}

// Options say where and how to start a relay.
type Options struct {
	Binary     string // the relayd or rtpengine executable
	NS         string // network namespace name ("" = the bench's own)
	CPUs       []int  // pinned with taskset; empty = not pinned
	Interfaces []string
	NG         string // listen-ng address
	PortMin    int
	PortMax    int
	LogLevel   int
	LogPath    string
	Log        *slog.Logger
}

// Process is a running relay.
type Process struct {
	Spec    Spec
	Argv    []string
	cmd     *exec.Cmd
	logFile *os.File
	logPath string
	done    chan struct{}
	waitErr error
}

// Args returns the relay's command line (without the binary) for the
// common settings; both relays take the same long options.
func Args(s Spec, o Options) []string {
	args := []string{"--config-file=none"}
	for _, i := range o.Interfaces {
		args = append(args, "--interface="+i)
	}
	threads := len(o.CPUs)
	if threads == 0 {
		threads = 1
	}
	args = append(args,
		"--listen-ng="+o.NG,
		"--port-min="+strconv.Itoa(o.PortMin),
		"--port-max="+strconv.Itoa(o.PortMax),
		// Deleted calls go at once: a bench deletes thousands and their
		// lingering ports would only fill the pool.
		"--delete-delay=0",
		"--timeout=60",
		"--tos=184",
		"--endpoint-learning=heuristic",
		// As many media threads as CPUs the relay is pinned to, for both.
		"--num-threads="+strconv.Itoa(threads),
		"--log-level="+strconv.Itoa(o.LogLevel),
	)
	if s.Kind == Relayd {
		// Transcoding workers of its own, as many as media threads (the
		// incumbent transcodes on its media threads).
		args = append(args, "--codec-num-threads="+strconv.Itoa(threads))
	}
	if s.Kind == Rtpengine {
		// Userspace unless the mode's own --table wins (it comes later).
		args = append(args, "--table=-1", "--foreground", "--log-stderr")
	}
	return append(args, s.Args...)
}

// Start starts the relay in its namespace, pinned, with its output in
// LogPath. It returns once the process runs; the caller waits for its ng
// socket.
func Start(s Spec, o Options) (*Process, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoBinary, s.Name, err)
	}
	argv := []string{}
	if o.NS != "" {
		ip, err := exec.LookPath("ip")
		if err != nil {
			ip = "/usr/sbin/ip"
		}
		argv = append(argv, ip, "netns", "exec", o.NS)
	}
	if len(o.CPUs) > 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("pinning the relay needs taskset (util-linux): %w", err)
		}
		cpus := make([]string, len(o.CPUs))
		for i, c := range o.CPUs {
			cpus[i] = strconv.Itoa(c)
		}
		argv = append(argv, ts, "-c", strings.Join(cpus, ","))
	}
	argv = append(argv, o.Binary)
	argv = append(argv, Args(s, o)...)
	return spawn(s, argv, o.LogPath, o.Log)
}

// spawn runs argv with its output in logPath.
func spawn(s Spec, argv []string, logPath string, log *slog.Logger) (*Process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so a stop reaches every process it forks; parent
	// death kills it, so a killed bench leaves no relay behind. `ip netns
	// exec` and taskset exec the relay, so the PID is the relay's own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Spec: s, Argv: argv, cmd: cmd, logFile: f, logPath: logPath, done: make(chan struct{})}
	if err := startOnOwnThread(cmd, func(err error) {
		p.waitErr = err
		f.Close()
		close(p.done)
	}); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	log.Info("relay started", "relay", s.Name, "pid", cmd.Process.Pid, "cmd", strings.Join(argv, " "))
	return p, nil
}

// PID is the relay's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the relay has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// WaitReady polls ping until it succeeds, the process exits, or timeout.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ping func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%w: %s exited during startup (%v); log:\n%s", ErrNotReady, p.Spec.Name, err, p.LogTail(20))
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s did not answer ping within %v (%v); log:\n%s", ErrNotReady, p.Spec.Name, timeout, err, p.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM to the relay's process group, waits up to 5 s, then
// kills it.
func (p *Process) Stop() error {
	if done, _ := p.Exited(); done {
		return nil
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return errors.New(p.Spec.Name + " ignored SIGTERM for 5 s and was killed")
}

// DumpGoroutines asks a relayd that stopped answering where it waits: Go's
// runtime writes every goroutine's stack to the relay's log on SIGQUIT and
// exits. It waits up to 2 s for that.
func (p *Process) DumpGoroutines() {
	if p.Spec.Kind != Relayd {
		return
	}
	if done, _ := p.Exited(); done {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
}

// LogTail returns the last n lines of the relay's output.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogPath is where the relay's output goes.
func (p *Process) LogPath() string { return p.logPath }

// startOnOwnThread starts cmd from an OS thread locked to a goroutine that
// then waits for it, and calls exited with Wait's result. Pdeathsig
// follows the thread that forked, not the bench's process, and Go's
// runtime ends any thread a goroutine leaves locked (the control-plane
// ceiling's pinned responder does, and netns helpers may): a relay forked
// from such a thread was SIGKILLed when it ended, silently, and its next
// ng request went unanswered. Here the forking thread lives exactly as
// long as the relay.
func startOnOwnThread(cmd *exec.Cmd, exited func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}
