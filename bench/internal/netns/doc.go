// SPDX-License-Identifier: Apache-2.0

// Package netns runs code and opens sockets inside named network namespaces
// (/run/netns/NAME, as `ip netns add` creates them) from a Go program, one
// locked OS thread at a time. It owns nothing else: creating and removing
// namespaces is the topo package's job.
package netns
