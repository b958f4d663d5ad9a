// SPDX-License-Identifier: Apache-2.0

// Package ha proves relayd's active/standby pair end to end, with real
// parts only: two relayd processes (the binary, built by the test) in
// network namespaces of their own on one bridged segment, a redis-server
// in a third, keepalived moving the floating media address between the two,
// and the call parties — plain RTP phones, an SDES phone and a pion/webrtc
// browser doing DTLS-SRTP with ICE — in a fourth, run by this test binary
// re-executed there (so that pion's sockets, made on its own goroutines, are
// in that namespace). The tests kill the active relay with SIGKILL and
// measure, per media stream, how long media stopped; and kill Redis under a
// churn of calls and check nothing is lost. See README.md.
package ha
