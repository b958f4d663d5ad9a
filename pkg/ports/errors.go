// SPDX-License-Identifier: Apache-2.0

package ports

import "errors"

// ErrNoPorts means every port of the pool is in use (or could not be bound).
var ErrNoPorts = errors.New("ran out of ports")

// ErrNoDescriptors means the process hit its open-file limit while binding.
var ErrNoDescriptors = errors.New("ran out of file descriptors")

// ErrBadRange means the configured port range holds no even/odd pair.
var ErrBadRange = errors.New("port range holds no RTP/RTCP pair")

// ErrInUse means Claim asked for a slot that is already handed out.
var ErrInUse = errors.New("port slot already in use")
