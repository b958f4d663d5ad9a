// SPDX-License-Identifier: Apache-2.0

package media

import "errors"

// ErrClosed means the Engine was closed; it accepts no new sockets.
var ErrClosed = errors.New("media engine closed")

// ErrNilConn means Attach was given no socket.
var ErrNilConn = errors.New("nil UDP socket")

// ErrNotBound means the socket has no local IP address and port.
var ErrNotBound = errors.New("socket not bound to an IP address and port")

// ErrBadConfig means an Engine configuration value is out of range.
var ErrBadConfig = errors.New("invalid media engine configuration")

// ErrBadTOS means a TOS/traffic class value outside 0..255.
var ErrBadTOS = errors.New("TOS must be within 0..255")

// ErrDetached means the operation needs a Stream that is still attached.
var ErrDetached = errors.New("stream detached")

// ErrUnknownLearningMode means a learning mode name that ParseLearningMode does
// not know.
var ErrUnknownLearningMode = errors.New("unknown endpoint-learning mode")

// ErrUnsupported means the media plane does not run on this operating system.
var ErrUnsupported = errors.New("media plane needs Linux (epoll, recvmmsg)")

// ErrNoKernelPath is wrapped by a FastPath refusing a rule it can never
// install for that local address (its interface has no XDP program): the
// stream stays in userspace and is not retried until its rule changes.
var ErrNoKernelPath = errors.New("no kernel path for this address")
