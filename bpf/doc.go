// SPDX-License-Identifier: Apache-2.0

// Package bpf owns relayd's XDP fast path: the kernel program (relay.c,
// compiled by bpf2go into the committed relay_bpfel.{go,o}) and the small Go
// API that loads it, attaches it to media interfaces and drives it.
//
// The program forwards plain RTP/RTCP over UDP, IPv4 and IPv6, for streams
// whose peer user space has latched. A [Rule] is keyed by the local (relay)
// address and port a packet arrives at; it holds the expected source, the
// new source and destination, the egress interface and MACs and the TOS.
// The program rewrites addresses, ports, TTL/hop limit and
// checksums and sends the frame with XDP_TX (same interface) or a devmap
// redirect. Everything it does not fully understand — no rule, another
// source, STUN/DTLS, IP options, fragments, IPv6 extension headers, an
// unknown next hop, truncated frames — goes to the stack untouched and is
// counted by [Reason]; user space handles those packets as before.
//
// A rule and its stream's counters share one entry of a memory-mapped
// array, taken by the first rule for a local address and port and kept
// until [Datapath.ReleaseStream]: a rule change (a re-learned peer) or
// removal never resets the counters. Rules are written and counters read
// through the mapping, without syscalls; a seqcount keeps the program from
// ever using a rule half rewritten. Each of the relay's media addresses
// ([Options.LocalAddrs]) owns one entry per UDP port, so the program
// computes a packet's entry instead of looking it up; other addresses go
// through a hash (relay.c explains the layout). Timestamps are CLOCK_MONOTONIC_COARSE nanoseconds
// ([MonotonicToTime]).
//
// State lives in bpffs when [Options.PinPath] is set (maps under
// PinPath/v2, XDP links too with [Options.PinLinks]), so a restarted relayd
// adopts the rules and counters of its predecessor; pins of another layout
// version or size are removed, never half used. One Datapath at a time
// holds the pin directory (an flock, released by Close or the process's
// exit); another Open fails with [ErrPinDirBusy]. [Open] probes the kernel
// first and fails with [ErrUnavailable] when the fast path cannot run; the
// caller then runs userspace-only.
//
// Nothing outside this package uses the generated bpf2go identifiers.
package bpf
