// SPDX-License-Identifier: Apache-2.0

package bpf

// Test-only BPF objects (bare_bpfel_test.{go,o}): a rewrite-and-bounce program
// with no lookups, the ceiling reference for the benchmarks, and an XDP_PASS
// program for veth peers. Same flow and flags as gen.go.
//go:generate go tool bpf2go -tags linux -target bpfel bare testdata/bare.c -- -I./include -nostdinc -mcpu=v3 -Wall -Werror -ffile-prefix-map=$PWD=.
