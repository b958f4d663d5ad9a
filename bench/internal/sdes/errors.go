// SPDX-License-Identifier: Apache-2.0

package sdes

import "errors"

// ErrUnknownSuite means a crypto suite the bench does not implement.
var ErrUnknownSuite = errors.New("unknown SRTP crypto suite")

// ErrBadCrypto means an a=crypto value the bench cannot use: malformed, a
// key of the wrong size, or a key method other than inline.
var ErrBadCrypto = errors.New("unusable a=crypto attribute")
