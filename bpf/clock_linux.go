// SPDX-License-Identifier: Apache-2.0

//go:build linux

package bpf

import (
	"time"

	"golang.org/x/sys/unix"
)

// MonotonicCoarseNow is CLOCK_MONOTONIC_COARSE in nanoseconds: the clock of
// StreamStats.LastSeen (bpf_ktime_get_coarse_ns), ticking every jiffy
// (4 ms at HZ=250). Compare LastSeen with it for media timeouts.
func MonotonicCoarseNow() uint64 {
	var ts unix.Timespec
	// Cannot fail for a clock the kernel has (2.6.32+); 0 is harmless.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts)
	return uint64(ts.Nano())
}

// MonotonicToTime converts a CLOCK_MONOTONIC(_COARSE) reading in
// nanoseconds to wall-clock time, as of now (within a jiffy). 0 gives the
// zero Time. The result carries Go's monotonic reading, so time.Since is
// immune to wall-clock steps.
func MonotonicToTime(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	now := time.Now()
	return now.Add(-time.Duration(int64(MonotonicCoarseNow() - ns)))
}
