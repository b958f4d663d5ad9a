// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
)

var (
	// ErrUnavailable means the fast path cannot run here: a missing kernel
	// feature, missing privileges, a verifier rejection or pinned maps of
	// another layout. It wraps the cause; relayd logs it once and runs
	// userspace-only.
	ErrUnavailable = errors.New("xdp fast path unavailable")

	// ErrPinDirBusy means another process (another relayd) holds the lock on
	// the pin directory: two relayds sharing pinned maps would clear and
	// overwrite each other's rules. It matches ErrUnavailable too, so relayd
	// with xdp=auto runs userspace-only; the message names the directory
	// and, when it can be found, the holder's pid.
	ErrPinDirBusy = fmt.Errorf("%w: pin directory locked by another process", ErrUnavailable)

	// ErrNativeUnsupported is matched (errors.Is) by an [*AttachError] when
	// native (driver) mode failed in a way generic mode may not: the caller
	// can retry with [ModeGeneric].
	ErrNativeUnsupported = errors.New("native xdp mode not supported on the interface")

	// ErrAttached means Attach was called for an interface this Datapath
	// already drives.
	ErrAttached = errors.New("interface already attached")

	// ErrNotAttached means Detach found neither a link of this Datapath nor
	// a pinned link for the interface.
	ErrNotAttached = errors.New("no relayd xdp program attached to the interface")

	// ErrInvalidRule means a rule was refused before reaching the kernel
	// (the message names the field).
	ErrInvalidRule = errors.New("invalid fast path rule")

	// ErrNoRule means no rule is installed for the local address and port.
	ErrNoRule = errors.New("no fast path rule")

	// ErrStreamsExhausted means every entry of the streams array (or of
	// the shared table) is taken.
	ErrStreamsExhausted = errors.New("no free fast path stream entry")

	// ErrNoStream means no stream entry exists for the local address and
	// port (no rule was ever installed for it, or it was released).
	ErrNoStream = errors.New("no fast path stream")

	// ErrNoRoute means the kernel has no usable route to a destination.
	ErrNoRoute = errors.New("no route to destination")

	// ErrNeighborUnknown means the next hop's MAC address is not (yet) in the
	// kernel's neighbour table. Sending one packet the normal way (through a
	// socket) makes the kernel resolve it; retry afterwards.
	ErrNeighborUnknown = errors.New("next-hop neighbour unknown")

	// ErrUnsupportedLink means the egress interface is not Ethernet
	// (loopback, tunnels), which the fast path cannot address.
	ErrUnsupportedLink = errors.New("egress interface is not ethernet")

	// ErrClosed means the Datapath was closed.
	ErrClosed = errors.New("fast path closed")

	// ErrInvalidOptions means Options that cannot work together.
	ErrInvalidOptions = errors.New("invalid fast path options")
)
