// SPDX-License-Identifier: Apache-2.0

// Package metrics owns the bench's measurements that are not packets: a
// fixed-memory latency histogram with percentiles, and the readers of
// /proc that give CPU time per CPU and per process, resident memory, and the
// kernel's UDP and backlog drop counters. Parsers are pure functions of the
// file contents so they can be tested with fixtures.
package metrics
