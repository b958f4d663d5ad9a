// SPDX-License-Identifier: Apache-2.0

package audio

import "errors"

// ErrUnknownPair is a --transcode-pairs entry the bench does not know.
var ErrUnknownPair = errors.New("unknown transcoding pair")
