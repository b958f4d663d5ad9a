// SPDX-License-Identifier: Apache-2.0

package recording

import "errors"

var (
	// ErrBadFormat is a recording-format other than raw or eth.
	ErrBadFormat = errors.New("want raw or eth")
	// ErrNoDir is a Recorder without a directory.
	ErrNoDir = errors.New("no recording directory")
	// ErrClosed is a recording started on a closed Recorder.
	ErrClosed = errors.New("recorder closed")
)
