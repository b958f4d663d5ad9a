// SPDX-License-Identifier: Apache-2.0

package sdp

import "errors"

var (
	// ErrParse is wrapped by every error of Parse: the body is not a session
	// description the relay can work with (the ng reply is "Failed to parse SDP").
	ErrParse = errors.New("invalid SDP")

	// ErrPlan is wrapped by errors of Rewrite when the plan cannot be applied to
	// the description (wrong media count, out-of-range port, a value that would
	// break the line structure, ...). It signals a bug in the caller, not bad input.
	ErrPlan = errors.New("invalid SDP rewrite plan")
)
