// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"errors"
	"fmt"
)

var (
	// ErrParse is wrapped by every error of Parse: the body is not a session
	// description the relay can work with (the ng reply is "Failed to parse SDP").
	ErrParse = errors.New("invalid SDP")

	// ErrPlan is wrapped by errors of Rewrite when the plan cannot be applied to
	// the description (wrong media count, out-of-range port, a value that would
	// break the line structure, ...). It signals a bug in the caller, not bad input.
	ErrPlan = errors.New("invalid SDP rewrite plan")
)

// LimitError is the error of Parse (wrapping ErrParse) for a body beyond one
// of the limits below, and of a caller that refuses an SDP it produced for
// its size: it says which limit, so that the proxy's operator can tell.
type LimitError struct {
	What     string // "media sections", "bytes"
	Max, Got int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%d %s exceed the limit of %d", e.Got, e.What, e.Max)
}

// Is makes a LimitError of Parse an ErrParse.
func (e *LimitError) Is(target error) bool { return target == ErrParse }
