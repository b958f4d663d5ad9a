// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package bpf

import (
	"fmt"
	"net/netip"
)

// ResolveNextHop fails with ErrUnavailable outside Linux.
func ResolveNextHop(netip.Addr) (NextHop, error) {
	return NextHop{}, fmt.Errorf("resolve next hop: %w", errPlatform)
}
