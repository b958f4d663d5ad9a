// SPDX-License-Identifier: Apache-2.0

//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import "net/netip"

// PinnedRules is a running relayd's rule table; unavailable here.
type PinnedRules struct{}

// OpenPinnedRules always fails on this platform.
func OpenPinnedRules(string) (*PinnedRules, error) { return nil, errPlatform }

// Capacity is 0 on this platform.
func (*PinnedRules) Capacity() int { return 0 }

// Count always fails on this platform.
func (*PinnedRules) Count() (int, error) { return 0, errPlatform }

// Upsert always fails on this platform.
func (*PinnedRules) Upsert([]Rule) (int, error) { return 0, errPlatform }

// Remove always fails on this platform.
func (*PinnedRules) Remove([]netip.AddrPort) (int, error) { return 0, errPlatform }

// Close does nothing on this platform.
func (*PinnedRules) Close() error { return nil }
