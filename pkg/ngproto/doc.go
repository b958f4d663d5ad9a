// SPDX-License-Identifier: Apache-2.0

// Package ngproto owns the "ng" control protocol spoken by SIP proxies
// (Kamailio's and OpenSIPS' rtpengine modules) to the relay: the datagram
// framing ("<cookie> <dictionary>"), bencode and JSON dictionaries, the typed
// Request decoded from them, the reply envelope, the cookie-keyed reply cache
// that makes retransmissions idempotent, and the UDP control server.
//
// Dictionaries are typed Values both ways: requests decode into them without
// reflection (one copy of the datagram that every string shares), and
// replies are built from them and appended as bencode or JSON straight into
// one buffer. Dictionary keys are written sorted, as they always were.
//
// It does not know what commands mean: a Handler (the control layer) maps a
// decoded Request onto the session manager and returns a Reply.
package ngproto
