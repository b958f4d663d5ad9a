// SPDX-License-Identifier: Apache-2.0

package session

import "errors"

var (
	// ErrUnknownCall means no call with that call-id exists.
	ErrUnknownCall = errors.New("unknown call-id")
	// ErrDialogue means the tags do not name parties of the call.
	ErrDialogue = errors.New("invalid dialogue association")
	// ErrParseSDP means the SDP could not be parsed.
	ErrParseSDP = errors.New("failed to parse SDP")
	// ErrIncompleteSDP means a media section has no usable connection address.
	ErrIncompleteSDP = errors.New("incomplete SDP specification")
	// ErrRewriteSDP means the outgoing SDP could not be produced.
	ErrRewriteSDP = errors.New("error rewriting SDP")
	// ErrNoPorts means a port pool (or the descriptor table) is exhausted.
	ErrNoPorts = errors.New("ran out of ports")
	// ErrLoadLimit is wrapped by every refusal because the relay is at one
	// of its load limits (max-sessions today; CPU or bandwidth limits when
	// they come): a SIP proxy that supports "load limit" is told so, and
	// fails over, instead of getting an error.
	ErrLoadLimit = errors.New("load limit")
	// ErrSessionLimit means max-sessions calls exist already.
	ErrSessionLimit error = loadLimitError("parallel session limit reached")
	// ErrNoInterface means no configured interface can serve the request.
	ErrNoInterface = errors.New("no usable interface")
)

// ErrCallExists means Restore was given a call that is live already.
var ErrCallExists = errors.New("call exists already")

// loadLimitError is a refusal for load: errors.Is(err, ErrLoadLimit) holds.
type loadLimitError string

func (e loadLimitError) Error() string { return string(e) }

// Is makes every load refusal an ErrLoadLimit.
func (e loadLimitError) Is(target error) bool { return target == ErrLoadLimit }
