// SPDX-License-Identifier: Apache-2.0

package runner

import "errors"

// ErrConfig means settings the bench cannot run with.
var ErrConfig = errors.New("bad bench configuration")

// ErrRelayDied means the relay under test exited during the run.
var ErrRelayDied = errors.New("relay died")

// ErrBadRelayAnswer means the relay's SDP sent media somewhere other than
// the relay's own address on that side.
var ErrBadRelayAnswer = errors.New("relay answered with an unexpected media address")

// ErrDeadline means the run hit its time bound and stopped.
var ErrDeadline = errors.New("bench deadline reached")

// ErrSmoke means a --quick run found calls without media or a failed
// check.
var ErrSmoke = errors.New("smoke test failed")
