// SPDX-License-Identifier: Apache-2.0

package metrics

import "errors"

// ErrFormat means a /proc file did not have the expected layout.
var ErrFormat = errors.New("unexpected /proc format")
