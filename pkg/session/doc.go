// SPDX-License-Identifier: Apache-2.0

// Package session owns calls: call-ids, one monologue per tag, media matched by
// index, the local port sets each party talks to, and the decision of what every
// outgoing SDP advertises. It turns an offer or answer into an sdp.Plan and drives
// the media plane (and a call's recording, recording.go); it never speaks the
// wire protocol itself.
package session
