// SPDX-License-Identifier: Apache-2.0

// Package transcode owns audio codecs and the conversion of one RTP stream
// direction from one codec to another: decoding payloads to linear PCM,
// resampling, encoding for the other side, and everything RTP needs around
// that (timestamps across clock rates, repacketisation, loss concealment,
// comfort noise, DTMF). It knows nothing of sockets, SDP text or sessions.
//
// # For the session layer
//
//   - NewRegistry() once; Registry.Check(Format) tells whether a negotiated
//     format can be transcoded in this build (an error wrapping
//     ErrUnknownCodec or ErrCodecUnavailable, whose text names the codec,
//     for the warning in an ng reply).
//   - NewTranscoder(Config) per stream direction: the input and output Legs
//     as SDP negotiated them (codec Format with the far side's fmtp, payload
//     type, ptime, telephone-event and CN payload types) and the output's
//     SSRC, first sequence number and timestamp.
//   - Transcoder.Process(datagram, out) for every RTP packet of the input
//     leg, on one goroutine per transcoder (the caller runs it off the media
//     workers: a pkg/media stage hands a copy over and Consumes the packet,
//     and the goroutine delivers each output packet with Stream.Deliver);
//     it allocates nothing per packet. Transcoder.Stats from anywhere.
//
// # Codecs
//
// G.711 µ-law and A-law (own tables, bit-exact with ITU-T G.191), G.722 at
// 64 kbit/s (github.com/gotranspile/g722, bit-exact with spandsp) and Opus
// (libopus through gopkg.in/hraban/opus.v2, only in builds with cgo and the
// nolibopusfile tag; elsewhere Opus is known but unavailable). Opus decodes
// and encodes at whatever rate the other codec needs (libopus resamples);
// G.722 ↔ G.711 goes through a half-band FIR (NewResampler). No LGPL code is
// linked: spandsp serves only as a cross-check in tests built with the
// spandsp tag.
package transcode
