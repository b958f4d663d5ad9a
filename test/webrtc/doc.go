// SPDX-License-Identifier: Apache-2.0

// Package webrtc bridges WebRTC peers and SIP phones through relayd's
// session layer and media plane, in this process on loopback: pion/webrtc
// stands in for a browser (ICE, DTLS-SRTP, rtcp-mux), plain sockets for
// phones speaking RTP/AVP or SDES SRTP, and the audio is checked by its tone
// at each end.
package webrtc
