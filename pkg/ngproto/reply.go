// SPDX-License-Identifier: Apache-2.0

package ngproto

// Error reasons, verbatim from the reference daemon. Kamailio string-matches
// ReasonSessionLimit and ReasonOutOfPorts to fail over to the next relay, so
// these texts are part of the protocol.
const (
	ReasonNoSDP          = "No SDP body in message"
	ReasonNoCallID       = "No call-id in message"
	ReasonNoFromTag      = "No from-tag in message"
	ReasonNoToTag        = "No to-tag in message"
	ReasonUnknownCallID  = "Unknown call-id"
	ReasonParseSDP       = "Failed to parse SDP"
	ReasonIncompleteSDP  = "Incomplete SDP specification"
	ReasonDialogue       = "Invalid dialogue association"
	ReasonRewriteSDP     = "Error rewriting SDP"
	ReasonUnknownCommand = "Unrecognized command"
	ReasonNoCommand      = `Dictionary contains no key "command"`
	ReasonBadBencode     = "Could not decode bencode dictionary"
	ReasonBadJSON        = "Failed to parse JSON document"
	ReasonBadFormat      = "Invalid NG data format"
	ReasonNoPayload      = "Invalid data (no payload)"
	ReasonOutOfPorts     = "Ran out of ports"
	ReasonSessionLimit   = "Parallel session limit reached"

	// The reference has no equivalent of these: it neither bounds input size
	// nor nesting, nor survives a crashing handler.
	ReasonTooLarge = "Message too large"
	ReasonTooDeep  = "Message nested too deeply"
	ReasonInternal = "internal error"

	// WarningCallNotFound accompanies "ok" for a delete of an unknown call.
	WarningCallNotFound = "Call-ID not found or tags didn't match"
)

// Values of the "result" key.
const (
	ResultOK        = "ok"
	ResultError     = "error"
	ResultPong      = "pong"
	ResultLoadLimit = "load limit"
)

// Reply is one response dictionary, typed (see Value) so that it encodes
// straight into bytes. The zero Reply is no reply: a Handler returning it is
// answered with an internal error. A Reply is immutable; WithWarning returns
// a new one.
type Reply struct {
	v Value // a KindDict Value
}

// NewReply returns the reply of fields; as with Dict, the fields are taken
// over and sorted, of several with one key the last wins and Null values are
// left out.
func NewReply(fields ...Field) Reply { return Reply{v: Dict(fields...)} }

// ReplyOf converts a generic dictionary, as Decode returns or a client
// builds a request, into a Reply (see ValueOf for the types it takes).
func ReplyOf(m map[string]any) (Reply, error) {
	v, err := ValueOf(m)
	if err != nil {
		return Reply{}, err
	}
	if v.kind != KindDict {
		// A nil map: an empty dictionary.
		v = Value{kind: KindDict}
	}
	return Reply{v: v}, nil
}

// okResult and friends are shared: Values are immutable.
var (
	okResult    = Str(ResultOK)
	errorResult = Str(ResultError)
)

// OK returns {"result": "ok"} with fields added.
func OK(fields ...Field) Reply {
	return NewReply(append(fields, F("result", okResult))...)
}

// Pong returns {"result": "pong"}, the answer to ping.
func Pong() Reply { return NewReply(F("result", Str(ResultPong))) }

// ErrorReply returns {"result": "error", "error-reason": reason}.
func ErrorReply(reason string) Reply {
	return NewReply(F("error-reason", Str(reason)), F("result", errorResult))
}

// LoadLimit returns {"result": "load limit"} with an optional message, for
// clients that announced "supports": ["load limit"].
func LoadLimit(message string) Reply {
	if message == "" {
		return NewReply(F("result", Str(ResultLoadLimit)))
	}
	return NewReply(F("message", Str(message)), F("result", Str(ResultLoadLimit)))
}

// WithWarning returns r with a "warning" added (an "ok" reply when r is
// the zero Reply).
func (r Reply) WithWarning(w string) Reply { return r.With("warning", Str(w)) }

// With returns r with key set to v (an "ok" reply with it when r is the
// zero Reply).
func (r Reply) With(key string, v Value) Reply {
	if r.IsZero() {
		r = OK()
	}
	fields := make([]Field, len(r.v.items), len(r.v.items)+1)
	copy(fields, r.v.items)
	return NewReply(append(fields, F(key, v))...)
}

// IsZero tells whether r is the zero Reply.
func (r Reply) IsZero() bool { return r.v.kind != KindDict }

// Get returns the value of key (Null if absent).
func (r Reply) Get(key string) Value { return r.v.Get(key) }

// Value returns r as a dictionary Value.
func (r Reply) Value() Value { return r.v }

// IsError tells whether r reports an error.
func (r Reply) IsError() bool {
	res := r.v.Get("result")
	return res.kind == KindString && res.str == ResultError
}
