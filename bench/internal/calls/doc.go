// SPDX-License-Identifier: Apache-2.0

// Package calls owns the bench's signalling: it plays the SIP proxy, sending
// ng offer/answer/delete dictionaries shaped like Kamailio's rtpengine module
// sends them, with realistic G.711 + telephone-event SDP, learns the relay's
// ports from the rewritten SDP, reads the relay's statistics, and runs the
// control-plane benchmark (setups per second and their latency).
package calls
