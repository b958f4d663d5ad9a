// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/relayd/relayd/test/testenv"
)

// privileged skips a test that needs root (CAP_BPF, CAP_NET_ADMIN,
// CAP_SYS_ADMIN), and fails it instead when CI is set: CI must run them.
func privileged(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(tb, "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) to load XDP programs")
	}
}

// openTest opens an unpinned Datapath with small maps (unless opts says
// otherwise) and closes it at cleanup. A kernel without the fast path
// skips the test (fails it in CI).
func openTest(tb testing.TB, opts Options) *Datapath {
	tb.Helper()
	privileged(tb)
	if opts.MaxShared == 0 {
		opts.MaxShared = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{tb}, nil))
	}
	d, err := Open(opts)
	if errors.Is(err, ErrUnavailable) && os.Getenv("CI") == "" {
		tb.Skipf("fast path unavailable on this kernel: %v", err)
	}
	if err != nil {
		tb.Fatalf("Open: %+v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return d
}

// testWriter sends log output to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}

func mustCounters(tb testing.TB, d *Datapath) map[Reason]uint64 {
	tb.Helper()
	c, err := d.Counters()
	if err != nil {
		tb.Fatalf("Counters: %v", err)
	}
	return c
}

// counterDelta describes after-before, only the non-zero entries.
func counterDelta(before, after map[Reason]uint64) map[Reason]uint64 {
	out := map[Reason]uint64{}
	for r, v := range after {
		if v != before[r] {
			out[r] = v - before[r]
		}
	}
	return out
}

func fmtDelta(m map[Reason]uint64) string {
	s := "{"
	for _, r := range Reasons() {
		if v, ok := m[r]; ok {
			s += fmt.Sprintf(" %s:%d", r, v)
		}
	}
	return s + " }"
}

// run runs the relay program once over in (ingress: loopback, ifindex 1)
// and returns the action and the output frame.
func run(tb testing.TB, prog *ebpf.Program, in []byte) (uint32, []byte) {
	tb.Helper()
	out := make([]byte, len(in)+256)
	opts := ebpf.RunOptions{Data: in, DataOut: out, Repeat: 1}
	ret, err := prog.Run(&opts)
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return ret, opts.DataOut
}

// mustStats reads local's counters.
func mustStats(tb testing.TB, d *Datapath, local netip.AddrPort) StreamStats {
	tb.Helper()
	s, err := d.StreamStats(local)
	if err != nil {
		tb.Fatalf("StreamStats(%v): %v", local, err)
	}
	return s
}

// mustUpsert installs r and releases its stream at cleanup.
func mustUpsert(tb testing.TB, d *Datapath, r Rule) {
	tb.Helper()
	if err := d.UpsertRule(r); err != nil {
		tb.Fatalf("UpsertRule(%v): %v", r.Local, err)
	}
	tb.Cleanup(func() { _ = d.ReleaseStream(r.Local) })
}
