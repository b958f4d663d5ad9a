// SPDX-License-Identifier: Apache-2.0

// Package webrtc owns the transport security of a relay stream facing a
// WebRTC or SRTP party: answering ICE connectivity checks as a lite agent
// (RFC 8445, RFC 8839), DTLS-SRTP handshakes on the stream's own socket with
// the keys exported into SRTP contexts (RFC 5763/5764, RFC 7983 demux), SDES
// keys (RFC 4568), and the per-packet SRTP/SRTCP protection and
// authentication (RFC 3711, RFC 7714).
//
// Everything per packet is a media.Stage: the ICE responder and the DTLS
// record handler answer on the stream's socket, SRTP unprotection
// authenticates what the party sends (and only an authenticated check or
// packet may make its source the stream's destination: the lesson of
// CVE-2025-53399), SRTP protection encrypts what the relay sends to it. None
// of them lets a stream go to the kernel. The session layer decides which
// stages a stream gets from the SDP of each side; this package knows no SDP
// beyond the attribute values it is given.
package webrtc
