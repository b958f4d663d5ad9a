// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// batchChunk bounds one batch syscall (and the kernel's buffer for it).
const batchChunk = 8192

// UpsertRule installs r, or replaces the rule for r.Local in place; the
// stream's counters keep counting across the replacement. A rule for a
// plane's address costs no syscall (memory writes); the first rule for
// another address adds its key to the shared table.
func (d *Datapath) UpsertRule(r Rule) error {
	_, err := d.UpsertRules([]Rule{r})
	if err != nil {
		return fmt.Errorf("upsert rule for %v: %w", r.Local, err)
	}
	return nil
}

// UpsertRules installs or replaces many rules: memory writes, plus batch
// syscalls for the shared-table keys of locals seen for the first time
// (100,000 in about 0.1 s). Nothing is installed when one is invalid.
// Replacing installed rules cannot fail. A new local can: a full shared
// region stops the batch there, and keys the kernel refuses leave their
// rules out; n counts the rules installed.
func (d *Datapath) UpsertRules(rules []Rule) (n int, err error) {
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
		encoded[i] = enc{r.Local, fam, ruleImage(r, fam)}
	}
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	tab := d.tab.Load()
	d.mu.Lock()
	defer d.mu.Unlock()

	var (
		keys  []relayFwdKey
		slots []uint32
		fresh []netip.AddrPort // shared-table locals claimed here
	)
	for _, e := range encoded {
		slot, ok := d.slotOf(e.local)
		if !ok {
			if slot, err = d.claim(tab, e.local, e.fam); err != nil {
				break
			}
			if d.planeOf(e.local.Addr()) < 0 {
				keys = append(keys, encodeKey(e.local, e.fam))
				slots = append(slots, slot)
				fresh = append(fresh, e.local)
			}
		}
		// A shared entry's key goes into the hash after its rule is
		// complete (below): nothing finds it before.
		write(tab.entry(slot), &e.im)
		n++
	}
	if len(keys) > 0 {
		done, kerr := batchUpsert(d.objs.Fwd, keys, slots)
		if kerr != nil {
			for _, local := range fresh[done:] {
				d.forget(tab, local)
			}
			n -= len(keys) - done
			err = errors.Join(err, kerr)
		}
	}
	return n, err
}

// slotOf is local's entry; d.mu is held.
func (d *Datapath) slotOf(local netip.AddrPort) (uint32, bool) {
	v, ok := d.index.Load(local)
	if !ok {
		return 0, false
	}
	return v.(uint32), true
}

// claim takes local's entry: its port's on its plane, or the lowest free
// one of the shared region; d.mu is held. Shared entries another process
// took (the bench's filler rules) are skipped, and stay marked until this
// Datapath's next Open.
func (d *Datapath) claim(tab *table, local netip.AddrPort, fam uint8) (uint32, error) {
	if p := d.planeOf(local.Addr()); p >= 0 {
		slot := uint32(p)*planePorts + uint32(local.Port())
		if !tab.claim(slot, local, fam) {
			// Only after a crash between claiming and indexing, or
			// another process writing planes it must not: refuse
			// rather than share the entry.
			return 0, fmt.Errorf("plane entry of %v held by another writer", local)
		}
		d.index.Store(local, slot)
		d.held++
		return slot, nil
	}
	for {
		i, ok := d.entries.alloc()
		if !ok {
			return 0, fmt.Errorf("%w (%d shared entries in use)", ErrStreamsExhausted, d.maxShared)
		}
		if slot := d.shared + i; tab.claim(slot, local, fam) {
			d.index.Store(local, slot)
			d.held++
			return slot, nil
		}
	}
}

// forget releases local's entry without touching the shared table; d.mu
// is held.
func (d *Datapath) forget(tab *table, local netip.AddrPort) {
	slot, ok := d.slotOf(local)
	if !ok {
		return
	}
	tab.release(slot)
	if slot >= d.shared {
		d.entries.free(slot - d.shared)
	}
	d.index.Delete(local)
	d.held--
}

// planeOf is the plane of a local address, -1 if it has none.
func (d *Datapath) planeOf(a netip.Addr) int {
	for i, p := range d.planes {
		if p == a {
			return i
		}
	}
	return -1
}

// RemoveRule takes the rule for local out: its packets reach the socket
// again. The stream's entry and counters stay (a later UpsertRule
// continues them) until ReleaseStream. ErrNoRule when there is no rule.
func (d *Datapath) RemoveRule(local netip.AddrPort) error {
	n, err := d.RemoveRules([]netip.AddrPort{local})
	if err != nil {
		return fmt.Errorf("remove rule for %v: %w", local, err)
	}
	if n == 0 {
		return fmt.Errorf("remove rule for %v: %w", local, ErrNoRule)
	}
	return nil
}

// RemoveRules removes the rules of many local addresses (memory writes,
// no syscall), skipping those without one, and returns how many it
// removed. Entries and counters stay, as with RemoveRule.
func (d *Datapath) RemoveRules(locals []netip.AddrPort) (int, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	tab := d.tab.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, l := range locals {
		slot, ok := d.slotOf(unmap(l))
		if !ok {
			continue
		}
		e := tab.entry(slot)
		im := read(e)
		if im.family() == 0 {
			continue
		}
		im.head = 0
		write(e, &im)
		n++
	}
	return n, nil
}

// ReleaseStream removes local's rule and frees its entry: its counters are
// gone (StreamStats fails with ErrNoStream) and the entry goes to the next
// stream. ErrNoStream when local has none.
func (d *Datapath) ReleaseStream(local netip.AddrPort) error {
	n, err := d.ReleaseStreams([]netip.AddrPort{local})
	if err != nil {
		return fmt.Errorf("release stream %v: %w", local, err)
	}
	if n == 0 {
		return fmt.Errorf("release stream %v: %w", local, ErrNoStream)
	}
	return nil
}

// ReleaseStreams releases the entries of many locals (a batch syscall for
// those in the shared table), skipping locals without one, and returns how
// many it released.
func (d *Datapath) ReleaseStreams(locals []netip.AddrPort) (int, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	tab := d.tab.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	var (
		keys []relayFwdKey
		held = make([]netip.AddrPort, 0, len(locals))
		seen = make(map[netip.AddrPort]bool, len(locals))
	)
	for _, l := range locals {
		l = unmap(l)
		if _, ok := d.slotOf(l); !ok || seen[l] {
			continue
		}
		seen[l] = true
		held = append(held, l)
		if d.planeOf(l.Addr()) < 0 {
			keys = append(keys, encodeKey(l, family(l.Addr())))
		}
	}
	// Shared keys first: a packet that still finds the entry finds it
	// without a rule, or owned by its next stream, and passes.
	if _, err := batchDelete(d.objs.Fwd, keys); err != nil {
		return 0, err
	}
	for _, l := range held {
		d.forget(tab, l)
	}
	return len(held), nil
}

// LookupRule returns the installed rule for local; ErrNoRule when none.
func (d *Datapath) LookupRule(local netip.AddrPort) (Rule, error) {
	if err := d.enter(); err != nil {
		return Rule{}, err
	}
	defer d.life.RUnlock()
	tab := d.tab.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	slot, ok := d.slotOf(unmap(local))
	if ok {
		if im := read(tab.entry(slot)); im.family() != 0 {
			return im.rule(), nil
		}
	}
	return Rule{}, fmt.Errorf("lookup rule for %v: %w", local, ErrNoRule)
}

// Rules lists every installed rule (for reconciling after a restart).
func (d *Datapath) Rules() ([]Rule, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.life.RUnlock()
	tab := d.tab.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Rule, 0, d.held)
	d.index.Range(func(_, v any) bool {
		if im := read(tab.entry(v.(uint32))); im.family() != 0 {
			out = append(out, im.rule())
		}
		return true
	})
	return out, nil
}

// Streams lists the locals holding a stream entry, with or without a rule.
func (d *Datapath) Streams() ([]netip.AddrPort, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.life.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]netip.AddrPort, 0, d.held)
	d.index.Range(func(k, _ any) bool {
		out = append(out, k.(netip.AddrPort))
		return true
	})
	return out, nil
}

// StreamsInUse is the number of entries this Datapath holds; capacity is
// 65,536 per plane plus MaxShared.
func (d *Datapath) StreamsInUse() (inUse, capacity int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held, int(d.shared + d.maxShared)
}

// batchUpsert installs keys/vals in chunks; n counts those installed
// before an error.
func batchUpsert(m *ebpf.Map, keys []relayFwdKey, vals []uint32) (n int, err error) {
	for n < len(keys) {
		end := min(n+batchChunk, len(keys))
		done, err := m.BatchUpdate(keys[n:end], vals[n:end], &ebpf.BatchOptions{ElemFlags: uint64(ebpf.UpdateAny)})
		n += done
		if err != nil {
			return n, fmt.Errorf("add shared-table keys: %w", err)
		}
	}
	return n, nil
}

// batchDelete deletes keys in chunks, stepping over keys that are gone.
func batchDelete(m *ebpf.Map, keys []relayFwdKey) (int, error) {
	deleted := 0
	for i := 0; i < len(keys); {
		end := min(i+batchChunk, len(keys))
		done, err := m.BatchDelete(keys[i:end], nil)
		deleted += done
		i += done
		if err != nil {
			if !errors.Is(err, ebpf.ErrKeyNotExist) {
				return deleted, fmt.Errorf("remove shared-table keys: %w", err)
			}
			i++ // the kernel stopped at a missing key: skip it
		}
	}
	return deleted, nil
}

func encodeKey(local netip.AddrPort, fam uint8) relayFwdKey {
	return relayFwdKey{Addr: addrWords(local.Addr()), Port: hton16(local.Port()), Family: fam}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

// addrWords lays an address out as the program's __be32[4]: network byte
// order in memory, IPv4 in the first word.
func addrWords(a netip.Addr) (w [4]uint32) {
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return w
}

func wordsAddr(w [4]uint32, fam uint8) netip.Addr {
	var b [16]byte
	for i := range w {
		binary.NativeEndian.PutUint32(b[4*i:], w[i])
	}
	if fam == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// hton16 is a port as the program's __be16.
func hton16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

func ntoh16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}
