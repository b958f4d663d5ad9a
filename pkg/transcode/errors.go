// SPDX-License-Identifier: Apache-2.0

package transcode

import "errors"

// ErrCodecUnavailable means the codec is known but this build cannot run it:
// Opus in a binary built without cgo (CGO_ENABLED=0) or without libopus. It is
// wrapped with the codec's name and what it needs, so a caller can answer a
// transcoding request with a warning that names the missing codec.
var ErrCodecUnavailable = errors.New("codec unavailable in this build")

// ErrUnknownCodec means an encoding name, clock rate and channel count the
// registry does not know.
var ErrUnknownCodec = errors.New("unknown codec")

// ErrBadParams means a codec parameter (fmtp, ptime, sample rate) the codec
// cannot honour.
var ErrBadParams = errors.New("invalid codec parameters")

// ErrBadConfig means a transcoder configuration that cannot work.
var ErrBadConfig = errors.New("invalid transcoder configuration")

// Per-packet errors: sentinels, never wrapped, so returning one allocates
// nothing. Each is also counted in the transcoder's Stats.

// ErrNotRTP means a datagram whose RTP header does not hold together.
var ErrNotRTP = errors.New("not an RTP packet")

// ErrUnknownPayloadType means an RTP payload type the input leg did not
// negotiate.
var ErrUnknownPayloadType = errors.New("payload type not negotiated on the input leg")

// ErrEmptyPayload means an RTP packet without payload where one is needed.
var ErrEmptyPayload = errors.New("empty payload")

// ErrPayloadTooLong means a payload holding more audio than a packet may
// (120 ms).
var ErrPayloadTooLong = errors.New("payload too long")

// ErrDecode means a payload the codec refused as corrupt.
var ErrDecode = errors.New("undecodable payload")

// ErrEncode means the encoder failed on a frame.
var ErrEncode = errors.New("encoder failed")

// ErrBufferTooSmall means an output buffer too small for the frame.
var ErrBufferTooSmall = errors.New("buffer too small")

// ErrBadEvent means a telephone-event payload shorter than one event block.
var ErrBadEvent = errors.New("malformed telephone-event payload")

// ErrPoolClosed means a bridge asked of a Pool after its Close.
var ErrPoolClosed = errors.New("transcoding pool closed")
