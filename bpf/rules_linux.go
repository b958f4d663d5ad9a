// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
)

// batchChunk bounds one batch syscall (and the kernel's buffer for it).
const batchChunk = 8192

// UpsertRule installs r, or replaces the rule for r.Local; the stream's
// stats slot keeps counting across the replacement.
func (d *Datapath) UpsertRule(r Rule) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	k, v, err := d.encodeRule(r)
	if err != nil {
		return err
	}
	if err := d.objs.Fwd.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("upsert rule for %v: %w", r.Local, err)
	}
	return nil
}

// UpsertRules installs or replaces many rules with batch syscalls (100,000
// in about 0.1 s). Nothing is installed when one is invalid; n counts the
// rules installed before a kernel error.
func (d *Datapath) UpsertRules(rules []Rule) (n int, err error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	keys := make([]relayFwdKey, len(rules))
	vals := make([]relayFwdRule, len(rules))
	for i, r := range rules {
		if keys[i], vals[i], err = d.encodeRule(r); err != nil {
			return 0, fmt.Errorf("rule %d: %w", i, err)
		}
	}
	return batchUpsert(d.objs.Fwd, keys, vals)
}

// batchUpsert installs keys/vals in chunks; n counts those installed
// before an error.
func batchUpsert(m *ebpf.Map, keys []relayFwdKey, vals []relayFwdRule) (n int, err error) {
	for n < len(keys) {
		end := min(n+batchChunk, len(keys))
		done, err := m.BatchUpdate(keys[n:end], vals[n:end], &ebpf.BatchOptions{ElemFlags: uint64(ebpf.UpdateAny)})
		n += done
		if err != nil {
			return n, fmt.Errorf("upsert rules: %w", err)
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
				return deleted, fmt.Errorf("remove rules: %w", err)
			}
			i++ // the kernel stopped at a missing key: skip it
		}
	}
	return deleted, nil
}

// RemoveRule deletes the rule for local; ErrNoRule when there is none.
func (d *Datapath) RemoveRule(local netip.AddrPort) error {
	k, err := encodeKey(local)
	if err != nil {
		return err
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	if err := d.objs.Fwd.Delete(&k); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove rule for %v: %w", local, ErrNoRule)
		}
		return fmt.Errorf("remove rule for %v: %w", local, err)
	}
	return nil
}

// RemoveRules deletes the rules of many local addresses with batch
// syscalls, skipping those without a rule, and returns how many it deleted.
func (d *Datapath) RemoveRules(locals []netip.AddrPort) (int, error) {
	keys := make([]relayFwdKey, len(locals))
	for i, l := range locals {
		var err error
		if keys[i], err = encodeKey(l); err != nil {
			return 0, err
		}
	}
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.life.RUnlock()
	return batchDelete(d.objs.Fwd, keys)
}

// LookupRule returns the installed rule for local; ErrNoRule when none.
func (d *Datapath) LookupRule(local netip.AddrPort) (Rule, error) {
	k, err := encodeKey(local)
	if err != nil {
		return Rule{}, err
	}
	if err := d.enter(); err != nil {
		return Rule{}, err
	}
	defer d.life.RUnlock()
	var v relayFwdRule
	if err := d.objs.Fwd.Lookup(&k, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return Rule{}, fmt.Errorf("lookup rule for %v: %w", local, ErrNoRule)
		}
		return Rule{}, fmt.Errorf("lookup rule for %v: %w", local, err)
	}
	return decodeRule(&k, &v, make([]byte, 12)), nil
}

// Rules lists every installed rule (for reconciling after a restart).
func (d *Datapath) Rules() ([]Rule, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.life.RUnlock()
	return d.rules()
}

func (d *Datapath) rules() ([]Rule, error) {
	var (
		cursor  ebpf.MapBatchCursor
		batches [][]Rule // not one growing slice: Rule is large
		total   int
		keys    = make([]relayFwdKey, batchChunk)
		vals    = make([]relayFwdRule, batchChunk)
	)
	for {
		n, err := d.objs.Fwd.BatchLookup(&cursor, keys, vals, nil)
		batch := make([]Rule, n)
		macs := make([]byte, 12*n)
		for i := range n {
			batch[i] = decodeRule(&keys[i], &vals[i], macs[12*i:12*i+12:12*i+12])
		}
		batches = append(batches, batch)
		total += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list rules: %w", err)
		}
	}
	out := make([]Rule, 0, total)
	for _, b := range batches {
		out = append(out, b...)
	}
	return out, nil
}

func (d *Datapath) encodeRule(r Rule) (relayFwdKey, relayFwdRule, error) {
	if r.Slot < d.maxSlots && !d.slots.allocated(r.Slot, &d.mu) {
		return relayFwdKey{}, relayFwdRule{}, fmt.Errorf("rule for %v: slot %d: %w", r.Local, r.Slot, ErrBadSlot)
	}
	return encodeRuleValue(r, d.maxSlots)
}

// encodeRuleValue validates r and lays it out as the program reads it.
func encodeRuleValue(r Rule, maxSlots uint32) (relayFwdKey, relayFwdRule, error) {
	r, fam, err := r.normalize(maxSlots)
	if err != nil {
		return relayFwdKey{}, relayFwdRule{}, err
	}
	k := relayFwdKey{Addr: addrWords(r.Local.Addr()), Port: hton16(r.Local.Port()), Family: fam}
	v := relayFwdRule{
		SrcAddr:   addrWords(r.Source.Addr()),
		DstAddr:   addrWords(r.Dest.Addr()),
		SrcPort:   hton16(r.Source.Port()),
		DstPort:   hton16(r.Dest.Port()),
		Tos:       r.TOS,
		Flags:     uint8(r.Flags),
		Ifindex:   uint32(r.NextHop.Ifindex),
		Slot:      r.Slot,
		ClockRate: r.ClockRate,
	}
	if r.Peer.IsValid() {
		v.PeerAddr = addrWords(r.Peer.Addr())
		v.PeerPort = hton16(r.Peer.Port())
	}
	copy(v.Smac[:], r.NextHop.SrcMAC)
	copy(v.Dmac[:], r.NextHop.DstMAC)
	return k, v, nil
}

func encodeKey(local netip.AddrPort) (relayFwdKey, error) {
	if !local.IsValid() {
		return relayFwdKey{}, fmt.Errorf("%w: local address %v", ErrInvalidRule, local)
	}
	a := local.Addr().Unmap()
	fam := uint8(6)
	if a.Is4() {
		fam = 4
	}
	return relayFwdKey{Addr: addrWords(a), Port: hton16(local.Port()), Family: fam}, nil
}

// decodeRule is the inverse of encodeRule; the MACs are stored in macs (12
// bytes).
func decodeRule(k *relayFwdKey, v *relayFwdRule, macs []byte) Rule {
	fam := k.Family
	r := Rule{
		Local:     netip.AddrPortFrom(wordsAddr(k.Addr, fam), ntoh16(k.Port)),
		Source:    netip.AddrPortFrom(wordsAddr(v.SrcAddr, fam), ntoh16(v.SrcPort)),
		Dest:      netip.AddrPortFrom(wordsAddr(v.DstAddr, fam), ntoh16(v.DstPort)),
		TOS:       v.Tos,
		Flags:     Flags(v.Flags),
		Slot:      v.Slot,
		ClockRate: v.ClockRate,
		NextHop:   NextHop{Ifindex: int(v.Ifindex)},
	}
	if v.PeerAddr != [4]uint32{} || v.PeerPort != 0 {
		r.Peer = netip.AddrPortFrom(wordsAddr(v.PeerAddr, fam), ntoh16(v.PeerPort))
	}
	if v.Ifindex != 0 {
		copy(macs[:6], v.Smac[:])
		copy(macs[6:12], v.Dmac[:])
		r.NextHop.SrcMAC = net.HardwareAddr(macs[:6:6])
		r.NextHop.DstMAC = net.HardwareAddr(macs[6:12:12])
	}
	return r
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
