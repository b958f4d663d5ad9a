// SPDX-License-Identifier: Apache-2.0

// Package transcode owns audio codecs and the conversion of one RTP stream
// direction from one codec to another: decoding payloads to linear PCM,
// resampling, encoding for the other side, and everything RTP needs around
// that (timestamps across clock rates, repacketisation, loss concealment,
// comfort noise, DTMF) — and the transcoded leg that puts it on the media
// plane: a Bridge per transcoded stream, run by a Pool of workers of its
// own. It knows nothing of SDP text or sessions.
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
//   - Or, for a call, all of that done: NewPool(PoolConfig) once, then
//     Pool.NewBridge(BridgeConfig) per transcoded stream, with the relay's
//     media.Streams facing each party; put Bridge.RTPStage(side) (and
//     RTCPStage(side) on a separate RTCP stream) in their
//     StreamConfig.Stages; Bridge.Close when the call or the codecs change;
//     Bridge.Stats for the ng query.
//
// # The transcoded leg
//
// A Bridge's stages copy each packet a party sends into the queue of the
// pool worker the bridge is pinned to and consume it, so plain forwarding on
// the media workers never waits for a codec. The worker runs the
// direction's Transcoder and hands each output packet to the other party's
// stream with Stream.Deliver (through its Egress stages: SRTP protection).
// RTCP is never forwarded across a transcoder: the worker keeps RFC 3550
// receiver statistics of what each party sends, reads the parties' SRs and
// their reports on the relay's streams, and sends each party an SR (or RR)
// with a report block and a CNAME every 5 s (randomised, the first about 1 s
// after media starts) through its RTCP stream. The hand-over queues are
// bounded lock-free rings: a full one drops and counts, nothing waits, and
// nothing is allocated per packet.
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
