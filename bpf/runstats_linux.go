// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableRunStats turns on the kernel's run-time accounting of BPF programs
// until the returned Closer is closed. It costs two clock reads per
// program run; benchmarks use it to tell the programs' own time from the
// kernel's around them.
func EnableRunStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	return c, nil
}

// ReadRunStats sums the kernel's accounting of every loaded copy of the
// relay program and of the ceiling's bounce program, whoever loaded them.
func ReadRunStats() (RunStats, error) {
	var (
		out RunStats
		id  ebpf.ProgramID
	)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("list programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil || info.Type != ebpf.XDP {
			continue
		}
		switch info.Name {
		case "relay_xdp":
			out.Relay.Runs += st.RunCount
			out.Relay.Runtime += st.Runtime
		case "bare_bounce":
			out.Ceiling.Runs += st.RunCount
			out.Ceiling.Runtime += st.Runtime
		}
	}
}
