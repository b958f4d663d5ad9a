// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package ngproto

import (
	"net"
	"net/netip"
)

// Elsewhere a wildcard listener replies from whatever address the kernel
// picks; bind a specific address when that matters.

func enablePktinfo(*net.UDPConn, bool) error { return nil }

func oobSize() int { return 0 }

func pktinfoDst([]byte) netip.Addr { return netip.Addr{} }

func pktinfoSrc(netip.Addr, bool) []byte { return nil }
