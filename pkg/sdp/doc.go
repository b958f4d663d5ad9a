// SPDX-License-Identifier: Apache-2.0

// Package sdp owns the session descriptions (RFC 8866) that pass through the
// relay: it parses an offer or answer into a Description and rewrites it
// according to a Plan that the session layer decides.
//
// Rewriting edits the body in place, like rtpengine up to mr12.5: every line
// that the plan does not change keeps its exact bytes and line ending (even
// the odd "\r\r\n" some browsers send), so an endpoint gets back its own SDP
// with only the relay's addresses, ports and the attributes named by the plan
// changed. The package decides nothing about what to advertise.
package sdp
