// SPDX-License-Identifier: Apache-2.0

package bpf

import "time"

// ProgramRuns is a program's run count and the time spent in it.
type ProgramRuns struct {
	Runs    uint64
	Runtime time.Duration
}

// Sub returns p - o.
func (p ProgramRuns) Sub(o ProgramRuns) ProgramRuns {
	return ProgramRuns{Runs: p.Runs - o.Runs, Runtime: p.Runtime - o.Runtime}
}

// RunStats is the kernel's accounting of the relay program and of the
// ceiling's bounce program.
type RunStats struct {
	Relay, Ceiling ProgramRuns
}
