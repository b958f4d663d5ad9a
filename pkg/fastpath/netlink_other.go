// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package fastpath

import "errors"

// startRefresh fails: routes and neighbours are read over netlink. Open
// never gets here, as the datapath does not load outside Linux.
func (f *FastPath) startRefresh() error {
	return errors.New("next-hop tracking needs Linux")
}
