// SPDX-License-Identifier: Apache-2.0

// Package media owns the userspace media plane: it receives RTP/RTCP on the
// sockets the session layer allocated, runs each datagram through the
// per-packet stages of its stream (source checks and endpoint learning among
// them), forwards it out of the opposite party's socket, and keeps per-stream
// and per-SSRC counters that the session layer polls.
//
// # Model
//
// One [Stream] per local socket (an RTP port, an RTCP port or one muxed port)
// facing one party. Packets a party sends arrive on its Stream and leave through
// the Stream's sink (the other party's Stream), addressed to the sink's current
// endpoint, from the sink's local address. The source of packets received on a
// Stream is what its own endpoint is learned from.
//
// # Stages: where per-packet work goes
//
// Everything done to a datagram is a [Stage] on its stream, never a branch in
// the worker loop. For every datagram a party sends, the stream runs, in order:
//
//  1. the demultiplexer: Packet.Kind from the first byte (RFC 7983: STUN,
//     DTLS, RTP/RTCP; RFC 5761 for RTP against RTCP);
//  2. StreamConfig.Handlers: stages that answer on the stream's own socket
//     (Packet.Reply: STUN checks, DTLS records handed to a handshake) or
//     authenticate packets themselves (SRTP), before any source is judged —
//     a handler that has proven a source latches it with Stream.Latch;
//  3. the source checks and endpoint learning ([LearningMode], strict-source,
//     media-handover), then the receive counters and RTP statistics;
//  4. StreamConfig.Stages: transforms that rewrite the payload in place
//     (SRTP, transcoding; Packet.Data may grow up to its capacity) and taps
//     that copy it (recording);
//  5. the RTCP routing of rtcp-mux demultiplexing (StreamConfig.RTCPSink);
//  6. the sink's StreamConfig.Egress: stages for the party the datagram goes
//     to (SRTP protection towards it);
//
// then the send: the datagrams of a whole pass in one sendmmsg on the
// worker's raw socket of their family, the rest batched per sink on its
// socket. A stage
// returns Continue,
// Drop (counted in the stream's Dropped) or Consume (it answered or kept the
// packet). Work that must not delay forwarding (transcoding, writing a
// recording) takes a copy to goroutines of its own and hands results back
// with Stream.Deliver (through the sink's Egress stages) or Stream.Send (as
// they are, e.g. DTLS handshake records); both queue to the owning worker
// without locks and never block.
//
// Whether a stream may go to the kernel follows from its stages: each says
// with Kernel() whether the kernel rule can stand in for it. The source checks
// can (the rule checks the latched source); rtcp-mux demultiplexing, SRTP, a
// tap or a transcoder cannot, and keep the stream in userspace — and an
// Egress stage that cannot keeps the streams sending into it there too.
//
// # Threads and state
//
// An [Engine] runs Config.Workers goroutines, each with its own epoll set.
// Sockets are plain non-blocking descriptors that only that epoll set knows:
// the owning worker is their only reader and their closer, so a descriptor
// number is never reused under a read or a send. The epoll descriptor itself
// is the worker's one registration in Go's netpoller: a worker waiting for
// packets is parked there and never blocks its thread in a system call (a
// goroutine blocked in epoll_wait keeps its P until the runtime's monitor
// takes it back, which on a relay pinned to one CPU stalls the control plane
// for milliseconds). A call's sockets share a worker ([Group]), so a packet leaves by its
// sink's socket on the worker that received it. On readiness the worker
// drains the socket with recvmmsg into worker-owned buffers and sends with
// sendmmsg, destinations copied from sockaddrs encoded once per endpoint
// change: nothing per packet allocates, locks or logs.
//
// At RTP rates a socket rarely has more than one datagram per pass, so a
// sendmmsg per sink socket is a system call per packet. With CAP_NET_RAW each
// worker therefore also holds a raw IPv4 and a raw IPv6 socket (IP_HDRINCL)
// and writes the IP and UDP headers of a stream bound to one address itself
// — source address and port, TOS or traffic class, DF, checksums — so one
// sendmmsg per family carries the pass (rawsend_linux.go); an IP(V6)_PKTINFO
// per datagram has the kernel route it from the stream's address, as the
// bound socket would. The kernel still routes, filters and resolves each
// datagram; wildcard-bound and IPv6 link-local streams, an IPv6 socket's
// IPv4 peers and single sends (replies, injected datagrams) use the stream's
// socket, and Config.SocketSends turns the raw path off.
//
// Attach registers a socket in the worker's epoll set from the caller's
// goroutine; Detach, SetTOS and closing are queued to the worker. No
// signalling call ever waits for a worker. The port returns to its pool only
// when the socket is closed and the kernel rule is gone (the closed callback
// of Attach).
//
// Per-stream forwarding state (configuration, destination, learned source,
// latch) is one immutable value behind an atomic pointer: the per-packet path
// never takes a lock and never allocates while nothing changes; Configure and the
// learning step replace the value with compare-and-swap, so every reader (the
// forwarding path of the other direction, Stats, the kernel fast path's
// writer) sees a consistent rule. Counters are plain integer structs updated
// with atomics, the same shape the XDP fast path's per-stream stats slot has.
//
// Kernel rules (the optional [FastPath]) have one writer, the offloader, a
// goroutine that owns its per-stream records. It is told of every change that
// can alter a stream's rule (a latch, a handover, a Configure, SetTOS, Detach)
// through a lock-free queue and syncs only the streams concerned, so its work
// follows signalling and learning events, not the number of installed
// streams, and the packet path never makes a kernel-rule syscall.
//
// The media plane never calls back into control code: the session layer calls
// Configure on every signalling event (Reconfigure when only a stream's
// stages change, such as a recording's taps) and polls Stats.
package media
