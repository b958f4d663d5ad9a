// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"strings"

	"github.com/relayd/relayd/pkg/session"
)

// Request is one decoded ng command, typed the way the SIP proxy's rtpengine
// module sends it. Keys and flags are matched with hyphen, space and underscore
// spellings alike.
type Request struct {
	// Command is the canonical command name: "ping", "offer", "answer",
	// "delete", "query", "list", "statistics", ... (lower case, single spaces).
	Command   string
	CallID    string
	FromTag   string
	ToTag     string
	ViaBranch string
	// SDP is the session description; HasSDP tells an empty one from a missing one.
	SDP    []byte
	HasSDP bool
	// Limit is the "limit" key of list (0 when not given).
	Limit int
	// Options are the per-call choices handed to the session layer.
	session.Options
	// Ignored lists unknown keys, flags and values ("key", "flags=flag",
	// "key=value"), for one log line per request; after 32 entries it ends
	// with "...".
	Ignored []string
}

// SupportsLoadLimit tells whether the client listed "load limit" in
// "supports" (any spelling of the separator): it then understands
// "result": "load limit" in place of an error when the relay refuses for
// load, and fails over on it.
func (r *Request) SupportsLoadLimit() bool {
	for _, s := range r.Supports {
		if strings.EqualFold(strings.NewReplacer("-", " ", "_", " ").Replace(s), "load limit") {
			return true
		}
	}
	return false
}
