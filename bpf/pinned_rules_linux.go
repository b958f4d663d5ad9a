// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
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
// the owner's rules: it claims free entries of the shared region with the
// same compare-and-swap the owner uses (from the top down, the owner from
// the bottom up) and adds its keys to the shared table; rules for the
// owner's media addresses (its planes) are refused. Removing
// every filler it added is the caller's job.
type PinnedRules struct {
	streams, fwd *ebpf.Map
	tab          *table
	planes       []netip.Addr
	mine         map[netip.AddrPort]uint32 // entries this PinnedRules claimed
	shared       uint32                    // first entry of the shared region
	next         uint32                    // claim cursor, downwards
}

// OpenPinnedRules opens the rule table pinned under pinBase/PinVersion,
// such as /proc/PID/root/sys/fs/bpf/relayd for a relayd in another mount
// namespace.
func OpenPinnedRules(pinBase string) (_ *PinnedRules, err error) {
	dir := filepath.Join(pinBase, PinVersion)
	p := &PinnedRules{mine: map[netip.AddrPort]uint32{}}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	var planes *ebpf.Map
	for _, m := range []struct {
		name string
		dst  **ebpf.Map
	}{{relayMapStreams, &p.streams}, {relayMapFwd, &p.fwd}, {relayMapPlanes, &planes}} {
		if *m.dst, err = ebpf.LoadPinnedMap(filepath.Join(dir, m.name), nil); err != nil {
			return nil, fmt.Errorf("open pinned %s under %s: %w", m.name, dir, err)
		}
	}
	defer planes.Close()
	if p.fwd.KeySize() != 20 || p.fwd.ValueSize() != 4 {
		return nil, fmt.Errorf("pinned shared table under %s: key/value %d/%d bytes, this build's 20/4: %w",
			dir, p.fwd.KeySize(), p.fwd.ValueSize(), ebpf.ErrMapIncompatible)
	}
	var pl relayPlanes
	if err := planes.Lookup(uint32(0), &pl); err != nil {
		return nil, fmt.Errorf("read pinned planes under %s: %w", dir, err)
	}
	for i := range min(int(pl.Count), MaxPlanes) {
		fam := uint8(pl.Plane[i].Family)
		p.planes = append(p.planes, wordsAddr(pl.Plane[i].Addr, fam))
	}
	if p.tab, err = mapTable(p.streams); err != nil {
		return nil, fmt.Errorf("pinned streams under %s: %w", dir, err)
	}
	if p.tab.nStreams < p.fwd.MaxEntries() {
		return nil, fmt.Errorf("pinned streams under %s: %d entries, fewer than the shared table's %d: %w",
			dir, p.tab.nStreams, p.fwd.MaxEntries(), ebpf.ErrMapIncompatible)
	}
	p.shared = p.tab.nStreams - p.fwd.MaxEntries()
	p.next = p.tab.nStreams
	return p, nil
}

// Capacity is the shared table's maximum number of rules (the fillers'
// addresses have no plane).
func (p *PinnedRules) Capacity() int { return int(p.fwd.MaxEntries()) }

// Count walks the streams array and returns how many rules it holds (the
// owner's and this process's).
func (p *PinnedRules) Count() (int, error) {
	n := 0
	for slot := range p.tab.nStreams {
		if im := read(p.tab.entry(slot)); p.tab.owner(slot) != 0 && im.family() != 0 {
			n++
		}
	}
	return n, nil
}

// Upsert installs rules (memory writes and batch syscalls for their shared
// table keys); n counts those installed before an error.
func (p *PinnedRules) Upsert(rules []Rule) (n int, err error) {
	type enc struct {
		local netip.AddrPort
		fam   uint8
		im    image
	}
	encoded := make([]enc, len(rules))
	for i, r := range rules {
		r, fam, err := r.normalize()
		if err != nil {
			return 0, fmt.Errorf("rule %d: %w", i, err)
		}
		for _, a := range p.planes {
			if a == r.Local.Addr() {
				return 0, fmt.Errorf("rule %d: %w: %v is one of the owner's media addresses", i, ErrInvalidRule, r.Local)
			}
		}
		encoded[i] = enc{r.Local, fam, ruleImage(r, fam)}
	}
	var (
		keys   []relayFwdKey
		slots  []uint32
		locals []netip.AddrPort
	)
	for _, e := range encoded {
		if slot, ok := p.mine[e.local]; ok {
			write(p.tab.entry(slot), &e.im)
			n++
			continue
		}
		slot, ok := p.claim(e.local, e.fam)
		if !ok {
			err = fmt.Errorf("%w (%d entries)", ErrStreamsExhausted, p.tab.nStreams)
			break
		}
		write(p.tab.entry(slot), &e.im)
		keys = append(keys, encodeKey(e.local, e.fam))
		slots = append(slots, slot)
		locals = append(locals, e.local)
	}
	done, kerr := batchUpsert(p.fwd, keys, slots)
	for i, l := range locals {
		if i < done {
			p.mine[l] = slots[i]
			n++
		} else {
			p.tab.release(slots[i])
		}
	}
	return n, errors.Join(err, kerr)
}

// claim takes a free entry of the shared region from the top down.
func (p *PinnedRules) claim(local netip.AddrPort, fam uint8) (uint32, bool) {
	for p.next > p.shared {
		p.next--
		if p.tab.claim(p.next, local, fam) {
			return p.next, true
		}
	}
	return 0, false
}

// Remove deletes the rules for locals that this PinnedRules installed;
// others are skipped.
func (p *PinnedRules) Remove(locals []netip.AddrPort) (int, error) {
	var (
		keys  []relayFwdKey
		slots []uint32
	)
	for _, l := range locals {
		l = unmap(l)
		slot, ok := p.mine[l]
		if !ok {
			continue
		}
		keys = append(keys, encodeKey(l, family(l.Addr())))
		slots = append(slots, slot)
		delete(p.mine, l)
	}
	if _, err := batchDelete(p.fwd, keys); err != nil {
		return 0, err
	}
	for _, slot := range slots {
		p.tab.release(slot)
		p.next = max(p.next, slot+1)
	}
	return len(slots), nil
}

// Close releases the maps (the rules stay installed).
func (p *PinnedRules) Close() error {
	if p.tab != nil {
		p.tab.close()
	}
	var errs []error
	for _, m := range []*ebpf.Map{p.streams, p.fwd} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}
