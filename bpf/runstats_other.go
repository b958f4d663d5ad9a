// SPDX-License-Identifier: Apache-2.0

//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import "io"

// EnableRunStats always fails on this platform.
func EnableRunStats() (io.Closer, error) { return nil, errPlatform }

// ReadRunStats always fails on this platform.
func ReadRunStats() (RunStats, error) { return RunStats{}, errPlatform }
