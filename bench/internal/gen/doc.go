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
//
// A call's caller leg may be SRTP keyed by SDES (ActivateSRTP): the caller
// encrypts each packet in place with its own key just after the send time
// is stamped (so latency includes at most a batch's encryption, well under
// 10 µs), and decrypts what reaches it with the key of the relay's answer,
// finding the call by the SSRC the relay passes through. The payload is
// then checked as for plain calls, plus its filler, which a wrong key
// stream garbles. Packets that fail to authenticate, arrive in the clear
// where SRTP was due, or come out of a relay damaged are counted
// (SRTPTotals), as is a deliberately forged packet per call (a broken tag)
// that a relay which authenticates never lets through.
package gen
