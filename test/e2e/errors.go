// SPDX-License-Identifier: Apache-2.0

package e2e

import "errors"

var (
	// ErrNGTimeout is returned when the relay did not answer an ng request
	// after all retransmissions.
	ErrNGTimeout = errors.New("ng request timed out")

	// ErrNGFailed is returned when the relay answered an ng request with
	// result "error" (the relay's error-reason is part of the message).
	ErrNGFailed = errors.New("ng request failed")

	// ErrNGMalformed is returned for an ng message that is not
	// "<cookie> <bencode dictionary>".
	ErrNGMalformed = errors.New("malformed ng message")

	// ErrReplyShape is returned when an ng reply lacks a key the harness
	// relies on, or carries it with the wrong type.
	ErrReplyShape = errors.New("unexpected ng reply shape")

	// ErrMalformedTrace is returned for a sipp message trace that cannot be
	// split into messages.
	ErrMalformedTrace = errors.New("malformed sipp message trace")

	// ErrMalformedSDP is returned for a session description the summariser
	// cannot read.
	ErrMalformedSDP = errors.New("malformed SDP")
)
