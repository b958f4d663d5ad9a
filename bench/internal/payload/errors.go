// SPDX-License-Identifier: Apache-2.0

package payload

import "errors"

// ErrShort means the datagram is too short to carry the bench header.
var ErrShort = errors.New("datagram too short for a bench packet")

// ErrNotRTP means the datagram does not start with a plain RTP version 2
// header (no CSRCs, no extension), as every bench packet does.
var ErrNotRTP = errors.New("not a plain RTP v2 packet")

// ErrMagic means the payload does not start with the bench's magic.
var ErrMagic = errors.New("no bench magic in the payload")

// ErrOtherRun means the packet belongs to another run (a late packet from an
// earlier relay, or another bench).
var ErrOtherRun = errors.New("packet from another run")

// ErrPayloadSize means a payload length the header does not fit in.
var ErrPayloadSize = errors.New("payload too small for the bench header")
