// SPDX-License-Identifier: Apache-2.0

// Package statestore keeps every call's state (session.CallState) where the
// next relayd finds it: the same node after a restart or an upgrade, or a
// standby node taking the calls over. A Backend holds one record per call —
// a directory of files (Dir) or Redis — and a Writer keeps it current
// without ever holding up signalling or media: the session manager only
// marks a call changed, and one goroutine snapshots the changed calls and
// writes them, coalescing a burst of changes to one call into one write,
// retrying what failed and counting it. A periodic sweep catches what the
// media plane changed on its own (learned endpoints, SRTP rollover counters)
// and removes records of calls that are gone. Restore reads the records
// back into a session manager at start.
package statestore
