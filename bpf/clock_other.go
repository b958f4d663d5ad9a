// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package bpf

import "time"

// MonotonicCoarseNow is 0: there is no fast path outside Linux.
func MonotonicCoarseNow() uint64 { return 0 }

// MonotonicToTime is the zero Time: there is no fast path outside Linux.
func MonotonicToTime(uint64) time.Time { return time.Time{} }
