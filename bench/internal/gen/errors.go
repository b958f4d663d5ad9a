// SPDX-License-Identifier: Apache-2.0

package gen

import "errors"

// ErrFull means every call slot of the generator is in use.
var ErrFull = errors.New("no free call slot in the generator")

// ErrClosed means the generator was closed.
var ErrClosed = errors.New("generator closed")
