// SPDX-License-Identifier: Apache-2.0

// Package e2e is the end-to-end harness: the real Kamailio with its rtpengine
// module drives a relay (relayd, or the incumbent rtpengine for comparison)
// while real sipp user agents place calls across three network namespaces
// (caller | Kamailio + relay | callee), in two layouts: the relay with one
// interface on a segment it shares with both endpoints, where media that skips
// the relay arrives from the wrong address; and the relay with two interfaces
// on separate segments, with no route between caller and callee, where such
// media is lost.
//
// The package owns only test tooling. The non-test files hold the pieces that
// need neither root nor external programs and are unit- and fuzz-tested on
// their own: an ng control-protocol client, a reader for sipp's message trace,
// and a minimal SDP summariser. Everything that builds namespaces or starts
// processes lives in the _test.go files; see README.md for how to run it.
package e2e
