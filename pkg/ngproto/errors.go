// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"errors"
	"fmt"
	"strings"

	"github.com/relayd/relayd/pkg/sdp"
)

var (
	// ErrNoCookie means a datagram had no "<cookie> " prefix. Such datagrams
	// are dropped without a reply, as the reference does.
	ErrNoCookie = errors.New("message has no cookie")
	// ErrNoPayload means nothing followed the cookie.
	ErrNoPayload = errors.New("message has no payload")
	// ErrBadFormat means the payload is neither bencode nor JSON.
	ErrBadFormat = errors.New("payload is neither bencode nor JSON")
	// ErrBadBencode means the payload is not one well-formed bencode dictionary.
	ErrBadBencode = errors.New("malformed bencode dictionary")
	// ErrBadJSON means the payload is not well-formed JSON.
	ErrBadJSON = errors.New("malformed JSON document")
	// ErrNotDict means the payload decoded to something other than a dictionary.
	ErrNotDict = errors.New("payload is not a dictionary")
	// ErrTooLarge means the payload exceeds the configured size limit.
	ErrTooLarge = errors.New("message too large")
	// ErrTooDeep means the payload nests lists and dictionaries deeper than allowed.
	ErrTooDeep = errors.New("message nested too deeply")
	// ErrNoCommand means the dictionary has no "command" key.
	ErrNoCommand = errors.New(`dictionary has no "command" key`)
	// ErrInvalidValue means a known key carried a value of the wrong type or
	// an unusable value; the concrete error is an *InvalidValueError.
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnsupportedType means a Reply held a value that cannot be encoded.
	ErrUnsupportedType = errors.New("unsupported reply value type")
	// ErrServing means Serve was called on a server that is already serving.
	ErrServing = errors.New("server is already serving")
	// ErrAbandoned means the request owning a cookie gave up without a reply,
	// so a duplicate waiting for it has nothing to send.
	ErrAbandoned = errors.New("request abandoned without a reply")
)

// InvalidValueError reports the key, as the client spelled it, whose value
// could not be used.
type InvalidValueError struct {
	Key string
	Err error
}

func (e *InvalidValueError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("invalid value for key %q: %v", e.Key, e.Err)
	}
	return fmt.Sprintf("invalid value for key %q", e.Key)
}

// Unwrap returns the underlying cause.
func (e *InvalidValueError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrInvalidValue) true.
func (e *InvalidValueError) Is(target error) bool { return target == ErrInvalidValue }

// Reason returns the error-reason text sent to the client for err: the
// reference's exact wording where it has one, else a short clear text.
func Reason(err error) string {
	var iv *InvalidValueError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &iv):
		return fmt.Sprintf("invalid value for key %q", iv.Key)
	case errors.Is(err, ErrNoPayload):
		return ReasonNoPayload
	case errors.Is(err, ErrBadFormat):
		return ReasonBadFormat
	case errors.Is(err, ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, ErrTooDeep):
		return ReasonTooDeep
	case errors.Is(err, ErrBadJSON):
		return ReasonBadJSON
	case errors.Is(err, ErrBadBencode), errors.Is(err, ErrNotDict):
		return ReasonBadBencode
	case errors.Is(err, ErrNoCommand):
		return ReasonNoCommand
	default:
		return ReasonInternal
	}
}

// errKind names the class of a request error for the log's rate limit: a
// fixed set, unlike Reason, which quotes the client's key.
func errKind(err error) string {
	switch {
	case errors.Is(err, ErrInvalidValue):
		return "invalid value"
	case errors.Is(err, ErrNoPayload):
		return "no payload"
	case errors.Is(err, ErrBadFormat):
		return "bad format"
	case errors.Is(err, ErrTooLarge):
		return "too large"
	case errors.Is(err, ErrTooDeep):
		return "too deep"
	case errors.Is(err, ErrBadJSON):
		return "bad JSON"
	case errors.Is(err, ErrBadBencode), errors.Is(err, ErrNotDict):
		return "bad bencode"
	case errors.Is(err, ErrNoCommand):
		return "no command"
	}
	return "other"
}

// failKind is errKind for the session layer's errors: the reference's text
// where there is one, else "internal" (never the error's own text).
func failKind(err error) string {
	r := reason(err)
	if strings.HasPrefix(r, "Internal error") {
		return "internal"
	}
	r, _, _ = strings.Cut(r, ": ") // without a limit's figures
	return r
}

// limitDetail is ": <the limit and by how much>" for an error caused by an
// SDP limit, so the proxy's operator learns which limit; "" otherwise.
func limitDetail(err error) string {
	var le *sdp.LimitError
	if errors.As(err, &le) {
		return ": " + le.Error()
	}
	return ""
}
