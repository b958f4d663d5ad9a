// SPDX-License-Identifier: Apache-2.0

//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

// Ceiling is the bare rewrite-and-bounce program; unavailable here.
type Ceiling struct{}

// OpenCeiling always fails on this platform.
func OpenCeiling() (*Ceiling, error) { return nil, ErrUnavailable }

// Attach always fails on this platform.
func (c *Ceiling) Attach(int, Mode) error { return ErrUnavailable }

// Close does nothing on this platform.
func (c *Ceiling) Close() error { return nil }
