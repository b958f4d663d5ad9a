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

// Reply is one response dictionary. Values may be string, []byte, bool, any
// integer or float type, []any, []string, map[string]any, Reply, nested
// combinations of these, and encoding.TextMarshaler (e.g. netip.Addr), which
// encodes as a string. Nil values are left out.
type Reply map[string]any

// OK returns {"result": "ok"}.
func OK() Reply { return Reply{"result": ResultOK} }

// Pong returns {"result": "pong"}, the answer to ping.
func Pong() Reply { return Reply{"result": ResultPong} }

// ErrorReply returns {"result": "error", "error-reason": reason}.
func ErrorReply(reason string) Reply {
	return Reply{"result": ResultError, "error-reason": reason}
}

// LoadLimit returns {"result": "load limit"} with an optional message, for
// clients that announced "supports": ["load limit"].
func LoadLimit(message string) Reply {
	r := Reply{"result": ResultLoadLimit}
	if message != "" {
		r["message"] = message
	}
	return r
}

// WithWarning adds a "warning" to r (an "ok" reply when r is nil) and returns it.
func (r Reply) WithWarning(w string) Reply {
	if r == nil {
		r = OK()
	}
	r["warning"] = w
	return r
}

// IsError tells whether r reports an error.
func (r Reply) IsError() bool {
	s, _ := r["result"].(string)
	return s == ResultError
}
