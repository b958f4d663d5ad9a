// SPDX-License-Identifier: Apache-2.0

//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"fmt"
	"net/netip"
)

// Datapath is the loaded fast path; on this platform Open always fails with
// ErrUnavailable and relayd runs userspace-only.
type Datapath struct{}

var errPlatform = fmt.Errorf("%w: needs Linux on a little-endian architecture", ErrUnavailable)

// Open fails: the program is built for little-endian Linux only.
func Open(Options) (*Datapath, error) { return nil, errPlatform }

// Close does nothing.
func (*Datapath) Close() error { return nil }

// Unpin fails with ErrUnavailable.
func (*Datapath) Unpin() error { return errPlatform }

// PinDir is empty.
func (*Datapath) PinDir() string { return "" }

// Attach fails with ErrUnavailable.
func (*Datapath) Attach(int, Mode) error { return errPlatform }

// Detach fails with ErrUnavailable.
func (*Datapath) Detach(int) error { return errPlatform }

// Attached is empty.
func (*Datapath) Attached() []int { return nil }

// Pinned is false.
func (*Datapath) Pinned() bool { return false }

// PinnedLinks is empty.
func (*Datapath) PinnedLinks() ([]int, error) { return nil, nil }

// UpsertRule fails with ErrUnavailable.
func (*Datapath) UpsertRule(Rule) error { return errPlatform }

// UpsertRules fails with ErrUnavailable.
func (*Datapath) UpsertRules([]Rule) (int, error) { return 0, errPlatform }

// RemoveRule fails with ErrUnavailable.
func (*Datapath) RemoveRule(netip.AddrPort) error { return errPlatform }

// RemoveRules fails with ErrUnavailable.
func (*Datapath) RemoveRules([]netip.AddrPort) (int, error) { return 0, errPlatform }

// ReleaseStream fails with ErrUnavailable.
func (*Datapath) ReleaseStream(netip.AddrPort) error { return errPlatform }

// ReleaseStreams fails with ErrUnavailable.
func (*Datapath) ReleaseStreams([]netip.AddrPort) (int, error) { return 0, errPlatform }

// LookupRule fails with ErrUnavailable.
func (*Datapath) LookupRule(netip.AddrPort) (Rule, error) { return Rule{}, errPlatform }

// Rules fails with ErrUnavailable.
func (*Datapath) Rules() ([]Rule, error) { return nil, errPlatform }

// Streams fails with ErrUnavailable.
func (*Datapath) Streams() ([]netip.AddrPort, error) { return nil, errPlatform }

// StreamsInUse is zero.
func (*Datapath) StreamsInUse() (inUse, capacity int) { return 0, 0 }

// StreamStats fails with ErrUnavailable.
func (*Datapath) StreamStats(netip.AddrPort) (StreamStats, error) { return StreamStats{}, errPlatform }

// Counters fails with ErrUnavailable.
func (*Datapath) Counters() (map[Reason]uint64, error) { return nil, errPlatform }
