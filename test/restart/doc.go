// SPDX-License-Identifier: Apache-2.0

// Package restart proves relayd's hitless restart with the bench's restart
// mode: calls carrying media between network namespaces while relayd,
// started with a state-dir and its fast path pinned on a bpffs that outlives
// it, is stopped with SIGTERM and started again. Streams the kernel forwards
// must not lose a packet; streams relayd forwards itself must not stay silent
// for a second.
//
// The package has no API: the test is in restart_test.go.
package restart
