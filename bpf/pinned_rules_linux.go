// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"
)

// PinnedRules is the rule table of a running relayd, opened through its pin
// by another process. The bench uses it to measure the fast path with many
// more installed rules than its calls create: filler rules for addresses no
// packet is sent to make the table as large as a loaded relay's. It takes
// no lock on the pin directory (the owner holds that) and never touches
// the owner's rules or stats slots; removing every filler it added is the
// caller's job.
type PinnedRules struct {
	fwd      *ebpf.Map
	maxSlots uint32
}

// OpenPinnedRules opens the rule map pinned under pinBase/PinVersion, such
// as /proc/PID/root/sys/fs/bpf/relayd for a relayd in another mount
// namespace.
func OpenPinnedRules(pinBase string) (*PinnedRules, error) {
	dir := filepath.Join(pinBase, PinVersion)
	fwd, err := ebpf.LoadPinnedMap(filepath.Join(dir, relayMapFwd), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned rules under %s: %w", dir, err)
	}
	stats, err := ebpf.LoadPinnedMap(filepath.Join(dir, relayMapStreamStats), nil)
	if err != nil {
		fwd.Close()
		return nil, fmt.Errorf("open pinned stream stats under %s: %w", dir, err)
	}
	defer stats.Close()
	var k relayFwdKey
	var v relayFwdRule
	if int(fwd.KeySize()) != binary.Size(k) || int(fwd.ValueSize()) != binary.Size(v) {
		fwd.Close()
		return nil, fmt.Errorf("pinned rules under %s: key/value %d/%d bytes, this build's %d/%d: %w",
			dir, fwd.KeySize(), fwd.ValueSize(), binary.Size(k), binary.Size(v), ebpf.ErrMapIncompatible)
	}
	return &PinnedRules{fwd: fwd, maxSlots: stats.MaxEntries()}, nil
}

// Capacity is the table's maximum number of rules.
func (p *PinnedRules) Capacity() int { return int(p.fwd.MaxEntries()) }

// Count walks the table and returns how many rules it holds.
func (p *PinnedRules) Count() (int, error) {
	var (
		k relayFwdKey
		v relayFwdRule
		n int
	)
	it := p.fwd.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		return n, fmt.Errorf("count rules: %w", err)
	}
	return n, nil
}

// Upsert installs rules with batch syscalls; n counts those installed
// before an error. Slots are only range-checked: the caller's rules must
// never match a packet, since their slots belong to the table's owner.
func (p *PinnedRules) Upsert(rules []Rule) (n int, err error) {
	keys := make([]relayFwdKey, len(rules))
	vals := make([]relayFwdRule, len(rules))
	for i, r := range rules {
		if keys[i], vals[i], err = encodeRuleValue(r, p.maxSlots); err != nil {
			return 0, fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return batchUpsert(p.fwd, keys, vals)
}

// Remove deletes the rules for locals; missing ones are skipped.
func (p *PinnedRules) Remove(locals []netip.AddrPort) (int, error) {
	keys := make([]relayFwdKey, len(locals))
	for i, l := range locals {
		var err error
		if keys[i], err = encodeKey(l); err != nil {
			return 0, err
		}
	}
	return batchDelete(p.fwd, keys)
}

// Close releases the map (the rules stay installed).
func (p *PinnedRules) Close() error { return p.fwd.Close() }
