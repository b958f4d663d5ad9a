// SPDX-License-Identifier: Apache-2.0

// Package payload owns the bytes of the bench's RTP packets: a plain RTP
// header, then a bench header at the start of the payload that carries the
// run, the stream (slot and generation), a 64-bit sequence and the send
// timestamp, so that the receiving endpoint can measure loss, reordering,
// duplicates and one-way latency from the packet alone. The rest of the
// payload is G.711 A-law silence.
package payload
