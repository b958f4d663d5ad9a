// SPDX-License-Identifier: Apache-2.0

package relay

import "errors"

// ErrBadSpec means a --relay or --relay-args value the bench cannot use.
var ErrBadSpec = errors.New("bad relay specification")

// ErrNoBinary means the relay's executable is missing or could not be
// built.
var ErrNoBinary = errors.New("relay binary unavailable")

// ErrNotReady means the relay exited or never answered ng ping.
var ErrNotReady = errors.New("relay not ready")
