// SPDX-License-Identifier: Apache-2.0

package bpf

// The generated relay_bpfel.{go,o} are committed so that building needs no
// clang; `make generate` rebuilds them (BPF2GO_CC and BPF2GO_STRIP pin the
// Debian clang/llvm-strip) and `make check-generated` fails when they are
// stale. -nostdinc keeps host headers out, -ffile-prefix-map keeps the
// checkout path out of the object: the output is byte-identical from any
// directory.
//go:generate go tool bpf2go -tags linux -target bpfel relay relay.c -- -I./include -nostdinc -mcpu=v3 -Wall -Werror -ffile-prefix-map=$PWD=.

// The bare objects (bare_bpfel.{go,o}): a rewrite-and-bounce program with no
// lookups — the machine's ceiling reference for the benchmarks (Ceiling) —
// and an XDP_PASS program for veth peers in tests. relayd never loads them.
//go:generate go tool bpf2go -tags linux -target bpfel bare testdata/bare.c -- -I./include -nostdinc -mcpu=v3 -Wall -Werror -ffile-prefix-map=$PWD=.
