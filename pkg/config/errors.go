// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
)

var (
	// ErrHelp is returned by Load when --help or -h was given; the usage text
	// has already been printed and the caller should exit successfully.
	ErrHelp = errors.New("config: help requested")

	// ErrInvalidValue is matched (errors.Is) by every *ValueError: a key was
	// given a value that cannot be parsed or is out of range.
	ErrInvalidValue = errors.New("invalid value")

	// ErrUnknownFlag is returned for a command-line flag relayd does not know.
	// Unlike unknown file keys this is fatal: a typo on the command line must
	// not silently fall back to a default.
	ErrUnknownFlag = errors.New("unknown flag")

	// ErrMissingValue is returned when a flag that takes a value ends the
	// command line.
	ErrMissingValue = errors.New("flag needs a value")

	// ErrUnexpectedArgument is returned for a positional (non-flag) argument;
	// relayd takes none.
	ErrUnexpectedArgument = errors.New("unexpected argument")

	// ErrSyntax is returned for a config file line that is neither a comment,
	// a section header nor a key = value pair.
	ErrSyntax = errors.New("syntax error")

	// ErrSectionNotFound is returned when --config-section names a section the
	// config file does not contain.
	ErrSectionNotFound = errors.New("section not found")
)

// ValueError reports an invalid value for a configuration key, from the file
// or the command line. It matches ErrInvalidValue and unwraps to the cause.
type ValueError struct {
	Key   string // key name without dashes, e.g. "port-min"
	Value string // the value as given (after comment and quote removal)
	// Source says where the value came from: "FILE:LINE", "command line", or
	// "" when the error concerns the combination of several keys.
	Source string
	Err    error // the reason, e.g. "must be between 1024 and 65535"
}

func (e *ValueError) Error() string {
	s := fmt.Sprintf("config: invalid value %q for key %q: %v", e.Value, e.Key, e.Err)
	if e.Source != "" {
		s += " (" + e.Source + ")"
	}
	return s
}

// Unwrap lets errors.Is match both ErrInvalidValue and the underlying cause.
func (e *ValueError) Unwrap() []error { return []error{ErrInvalidValue, e.Err} }
