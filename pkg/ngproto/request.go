// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
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
