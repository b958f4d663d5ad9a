// SPDX-License-Identifier: Apache-2.0

// Package topo owns the bench's network: the namespaces, veth pairs,
// addresses, offload and RPS settings a run needs, and their removal. The
// relay under test gets its own namespace; the call endpoints live in one or
// two others (or share the relay's on lo in loopback mode). All addresses
// come from the documentation ranges, so no packet can reach a real network.
package topo
