// SPDX-License-Identifier: Apache-2.0

// Package sysinfo describes the machine a benchmark ran on (CPU model and
// count, kernel, memory, Go version, relay versions), so every result
// carries what it was measured on.
package sysinfo
