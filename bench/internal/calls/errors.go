// SPDX-License-Identifier: Apache-2.0

package calls

import "errors"

// ErrSDP means an SDP without a usable audio stream (no m=audio, no
// connection address, a rejected or unparsable port).
var ErrSDP = errors.New("no usable audio stream in SDP")

// ErrRelay means the relay answered a request with result "error", or with
// something that is not an ng reply the bench can use.
var ErrRelay = errors.New("relay refused the request")

// ErrNotTranscoded means a relay asked to transcode a call did not: it
// offered the callee none of the codec it was told to transcode to, or
// answered the caller in a codec the caller did not offer.
var ErrNotTranscoded = errors.New("relay did not transcode")
