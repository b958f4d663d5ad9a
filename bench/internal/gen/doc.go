// SPDX-License-Identifier: Apache-2.0

// Package gen owns the media side of the bench: the endpoint sockets of
// every call, the paced RTP senders and the receivers that measure what
// came back through the relay.
//
// It is built to cost the relay's machine as little as possible: one worker
// per generator CPU, each a single locked OS thread pinned to its CPU that
// waits in epoll for a timerfd tick and its sockets. A tick sends every
// packet that has fallen due, batched per socket with sendmmsg; receiving
// drains sockets with recvmmsg. Each endpoint socket serves many calls: it
// is bound to a port on the wildcard address and sends from each call's own
// address with IP_PKTINFO, so a run with thousands of calls uses a few dozen
// sockets, and the per-packet path allocates nothing.
//
// Every payload carries its stream, sequence and send time (package
// payload); the receiver takes the kernel's receive timestamp
// (SO_TIMESTAMPNS), so latency excludes the receiver's own scheduling.
package gen
