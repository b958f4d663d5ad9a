// SPDX-License-Identifier: Apache-2.0

package transcode

// Opus (RFC 6716, RTP per RFC 7587): opus/48000/2 in SDP whatever the audio
// is. relayd sends and expects mono; libopus resamples internally, so a stream
// decodes straight to, and encodes straight from, the rate the other side of
// the call needs (8 kHz towards G.711, 16 kHz towards G.722) and the
// transcoder never resamples Opus itself.
//
// The codec is libopus through gopkg.in/hraban/opus.v2 (cgo), built only with
// cgo and the nolibopusfile tag (which keeps libopusfile, and the OpenSSL it
// drags in, out of the binary): see opus_cgo.go. Any other build gets
// opus_stub.go, whose codec answers ErrCodecUnavailable.

// opusRates are the PCM rates libopus decodes to and encodes from; 48 kHz,
// the RTP clock, first.
var opusRates = []int{48000, 8000, 12000, 16000, 24000}

// opusPTimes are the frame durations the encoder is asked for: one Opus frame
// per packet.
var opusPTimes = []int{10, 20, 40, 60}

// opusMaxPayload bounds an encoded packet; libopus lowers its bit rate rather
// than exceed it, and a packet this size still fits any path MTU.
const opusMaxPayload = 1200

// opusDefaultBitrate is the bit rate for a given input rate when neither the
// caller nor the far side's maxaveragebitrate says otherwise: enough for
// transparent speech at that bandwidth (24 kbit/s kept tones within 0.1 dB
// at 8 kHz in the lab, docs/media.md §3.3).
func opusDefaultBitrate(rate int) int {
	switch {
	case rate <= 8000:
		return 24000
	case rate <= 16000:
		return 32000
	default:
		return 48000
	}
}

// opusIsDTX reports whether an Opus payload is a DTX frame: a TOC byte and at
// most one more, which a libopus sender emits instead of nothing every 400 ms
// of silence, and which decodes to comfort noise.
func opusIsDTX(payload []byte) bool { return len(payload) <= 2 }
