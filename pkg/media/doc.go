// SPDX-License-Identifier: Apache-2.0

// Package media owns the userspace media plane: it receives RTP/RTCP on the
// sockets the session layer allocated, decides per packet whether the source is
// the party it expects (endpoint learning, latching, strict source), forwards the
// packet out of the opposite party's socket, and keeps per-stream and per-SSRC
// counters that the session layer polls.
//
// # Model
//
// One [Stream] per local socket (an RTP port, an RTCP port or one muxed port)
// facing one party. Packets a party sends arrive on its Stream and leave through
// the Stream's sink (the other party's Stream), addressed to the sink's current
// endpoint, from the sink's local address. The source of packets received on a
// Stream is what its own endpoint is learned from.
//
// # Threads and state
//
// An [Engine] runs Config.Workers goroutines, each with its own epoll set; a
// socket belongs to one worker for its life. On readiness the worker drains the
// socket with recvmmsg into worker-owned buffers and sends each batch with one
// sendmmsg on the egress socket, so an idle socket costs no buffer memory.
//
// Per-stream forwarding state (configuration, destination, learned source,
// latch) is one immutable value behind an atomic pointer: the per-packet path
// never takes a lock and never allocates while nothing changes; Configure and the
// learning step replace the value with compare-and-swap, so every reader (the
// forwarding path of the other direction, Stats, a future kernel fast path)
// sees a consistent rule. Counters are plain integer structs updated with
// atomics, the same shape the XDP fast path's per-stream stats slot has.
//
// Kernel rules (the optional [FastPath]) have one writer, the offloader. It is
// told of every change that can alter a stream's rule (a latch, a handover, a
// Configure, SetTOS, Detach) and syncs only the streams concerned, so its work
// follows signalling and learning events, not the number of installed streams.
//
// The media plane never calls back into control code: the session layer calls
// Configure on every signalling event and polls Stats.
package media
