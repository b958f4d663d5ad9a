// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package bpf

import "log/slog"

// RemovePins does nothing: nothing is pinned on this platform.
func RemovePins(string, *slog.Logger) ([]string, error) { return nil, nil }
