// SPDX-License-Identifier: Apache-2.0

package topo

import "errors"

// ErrNoNamespaces means this machine (or this user) cannot create the
// network namespaces and veth pairs the bench runs in.
var ErrNoNamespaces = errors.New("cannot set up network namespaces")

// ErrBadTopology means an unknown topology name.
var ErrBadTopology = errors.New("unknown topology")
