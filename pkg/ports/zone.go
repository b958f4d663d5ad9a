// SPDX-License-Identifier: Apache-2.0

package ports

import (
	"net"
	"strconv"
)

// zoneIndex turns an IPv6 zone (interface name or index) into its index.
func zoneIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifc, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, err
	}
	return uint32(ifc.Index), nil
}
