// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

const (
	// streamSize is sizeof(struct stream): three cache lines.
	streamSize = 192
	// planePorts is the number of entries of one plane: one per port.
	planePorts = 1 << 16
)

// table is the streams array, memory-mapped:
// rules are written and counters read with plain memory accesses, no
// syscall (relay.c describes the layout and the seqcount that keeps a rule
// rewrite from being seen half done).
//
// Its memory stays valid while a *table is reachable, whatever Close does:
// readers that take no lock (Datapath.StreamStats) may still be reading
// when it runs. close swaps the maps' pages for anonymous zero pages at the
// same addresses, which lets the kernel free the maps at once while such a
// reader reads zeros; the address range itself is unmapped by a cleanup
// once no reader can reach it.
type table struct {
	streams  unsafe.Pointer
	nStreams uint32
	regions  []region
}

type region struct {
	addr unsafe.Pointer
	size uintptr
}

// mapTable maps streams read-write.
func mapTable(streams *ebpf.Map) (*table, error) {
	if streams.ValueSize() != streamSize {
		return nil, fmt.Errorf("streams map has %d-byte values, this build %d: %w", streams.ValueSize(), streamSize, ebpf.ErrMapIncompatible)
	}
	t := &table{nStreams: streams.MaxEntries()}
	r, err := mmapMap(streams, streamSize)
	if err != nil {
		return nil, fmt.Errorf("map streams: %w", err)
	}
	t.streams = r.addr
	t.regions = append(t.regions, r)
	regions := t.regions
	runtime.AddCleanup(t, func(rs []region) {
		for _, r := range rs {
			_ = unix.MunmapPtr(r.addr, r.size)
		}
	}, regions)
	return t, nil
}

// mmapMap maps an mmapable array of valueSize-byte values. The kernel
// lays array values out 8 bytes apart at least.
func mmapMap(m *ebpf.Map, valueSize uint32) (region, error) {
	if m.ValueSize() != valueSize {
		return region{}, fmt.Errorf("%d-byte values, want %d: %w", m.ValueSize(), valueSize, ebpf.ErrMapIncompatible)
	}
	page := uintptr(os.Getpagesize())
	stride := (uintptr(valueSize) + 7) &^ 7
	size := (stride*uintptr(m.MaxEntries()) + page - 1) &^ (page - 1)
	addr, err := unix.MmapPtr(m.FD(), 0, nil, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return region{}, err
	}
	return region{addr: addr, size: size}, nil
}

// close drops the maps' pages (see table). Callers must not write through
// t afterwards; lock-free readers read zeros.
func (t *table) close() {
	for _, r := range t.regions {
		// MAP_FIXED replaces the old mapping in one step: there is no
		// moment at which the range is unmapped.
		_, _ = unix.MmapPtr(-1, 0, r.addr, r.size, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
	}
}

// entry is stream entry slot; slot < nStreams.
func (t *table) entry(slot uint32) *relayStream {
	return (*relayStream)(unsafe.Add(t.streams, uintptr(slot)*streamSize))
}

// image is a rule as the words user space writes into an entry (the rule
// part of struct stream, between the seqcount's two stores).
type image struct {
	head      uint32    // family, flags, tos, pad0
	ports     [2]uint32 // local|peer port, src|dst port
	addr0     [4]uint32 // word 0 of local, peer, src, dst
	ifindex   uint32
	clockRate uint32
	macs      [3]uint32 // smac, dmac
	addr6     [12]uint32
}

// ruleImage lays r (normalized, of family fam) out as the program reads it.
func ruleImage(r Rule, fam uint8) image {
	var peer [4]uint32
	var peerPort uint16
	if r.Peer.IsValid() {
		peer, peerPort = addrWords(r.Peer.Addr()), hton16(r.Peer.Port())
	}
	local, src, dst := addrWords(r.Local.Addr()), addrWords(r.Source.Addr()), addrWords(r.Dest.Addr())
	var macs [12]byte
	copy(macs[:6], r.NextHop.SrcMAC)
	copy(macs[6:], r.NextHop.DstMAC)
	ne := binary.NativeEndian
	im := image{
		head:      ne.Uint32([]byte{fam, uint8(r.Flags), r.TOS, 0}),
		ports:     [2]uint32{pair16(hton16(r.Local.Port()), peerPort), pair16(hton16(r.Source.Port()), hton16(r.Dest.Port()))},
		addr0:     [4]uint32{local[0], peer[0], src[0], dst[0]},
		ifindex:   uint32(r.NextHop.Ifindex),
		clockRate: r.ClockRate,
		macs:      [3]uint32{ne.Uint32(macs[0:]), ne.Uint32(macs[4:]), ne.Uint32(macs[8:])},
	}
	for i, a := range [][4]uint32{local, peer, src, dst} {
		copy(im.addr6[3*i:3*i+3], a[1:])
	}
	return im
}

// keyImage is the image of an entry that belongs to local but holds no
// rule (family 0): what a claimed entry starts as, and what a removed rule
// leaves.
func keyImage(local netip.AddrPort) image {
	a := addrWords(local.Addr())
	im := image{ports: [2]uint32{pair16(hton16(local.Port()), 0), 0}, addr0: [4]uint32{a[0]}}
	copy(im.addr6[0:3], a[1:])
	return im
}

// pair16 is two __be16 fields in memory order, as one native word.
func pair16(first, second uint16) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint16(b[0:], first)
	binary.NativeEndian.PutUint16(b[2:], second)
	return binary.NativeEndian.Uint32(b[:])
}

// Word pointers into an entry, at the offsets the program reads.
func headWord(e *relayStream) *uint32     { return (*uint32)(unsafe.Pointer(&e.Family)) }
func portWords(e *relayStream) *[2]uint32 { return (*[2]uint32)(unsafe.Pointer(&e.LocalPort)) }
func addr0Words(e *relayStream) *[4]uint32 {
	return (*[4]uint32)(unsafe.Pointer(&e.LocalAddr))
}
func macWords(e *relayStream) *[3]uint32    { return (*[3]uint32)(unsafe.Pointer(&e.Smac)) }
func addr6Words(e *relayStream) *[12]uint32 { return (*[12]uint32)(unsafe.Pointer(&e.LocalAddr6)) }

// write stores im into e, the seqcount's write side: seq odd, the words,
// seq even. Every store is atomic, so none is reordered around the seq
// stores by the compiler or (arm64) the CPU. The caller owns e (claimed it)
// and is its only writer.
func write(e *relayStream, im *image) {
	s := (atomic.LoadUint32(&e.Seq) + 1) | 1 // odd, even if a writer died mid-write
	atomic.StoreUint32(&e.Seq, s)
	atomic.StoreUint32(headWord(e), im.head)
	p := portWords(e)
	for i := range p {
		atomic.StoreUint32(&p[i], im.ports[i])
	}
	a := addr0Words(e)
	for i := range a {
		atomic.StoreUint32(&a[i], im.addr0[i])
	}
	atomic.StoreUint32(&e.Ifindex, im.ifindex)
	atomic.StoreUint32(&e.ClockRate, im.clockRate)
	m := macWords(e)
	for i := range m {
		atomic.StoreUint32(&m[i], im.macs[i])
	}
	a6 := addr6Words(e)
	for i := range a6 {
		atomic.StoreUint32(&a6[i], im.addr6[i])
	}
	atomic.StoreUint32(&e.Seq, s+1)
}

// read loads e's rule words. Only the entry's writer calls it (under its
// lock), so no write overlaps.
func read(e *relayStream) image {
	var im image
	im.head = atomic.LoadUint32(headWord(e))
	p := portWords(e)
	for i := range p {
		im.ports[i] = atomic.LoadUint32(&p[i])
	}
	a := addr0Words(e)
	for i := range a {
		im.addr0[i] = atomic.LoadUint32(&a[i])
	}
	im.ifindex = atomic.LoadUint32(&e.Ifindex)
	im.clockRate = atomic.LoadUint32(&e.ClockRate)
	m := macWords(e)
	for i := range m {
		im.macs[i] = atomic.LoadUint32(&m[i])
	}
	a6 := addr6Words(e)
	for i := range a6 {
		im.addr6[i] = atomic.LoadUint32(&a6[i])
	}
	return im
}

// family, flags and tos of an image.
func (im *image) family() uint8 { return uint8(im.head) }

// local is the key an entry's image names (fam is the owner's family).
func (im *image) local(fam uint8) netip.AddrPort {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], im.ports[0])
	port := ntoh16(binary.NativeEndian.Uint16(b[0:]))
	return netip.AddrPortFrom(wordsAddr([4]uint32{im.addr0[0], im.addr6[0], im.addr6[1], im.addr6[2]}, fam), port)
}

// rule decodes an image holding a rule.
func (im *image) rule() Rule {
	ne := binary.NativeEndian
	var b [12]byte
	ne.PutUint32(b[0:], im.head)
	fam, flags, tos := b[0], b[1], b[2]
	words := func(i int) [4]uint32 {
		return [4]uint32{im.addr0[i], im.addr6[3*i], im.addr6[3*i+1], im.addr6[3*i+2]}
	}
	ports := func(w uint32) (uint16, uint16) {
		ne.PutUint32(b[0:], w)
		return ntoh16(ne.Uint16(b[0:])), ntoh16(ne.Uint16(b[2:]))
	}
	localPort, peerPort := ports(im.ports[0])
	srcPort, dstPort := ports(im.ports[1])
	r := Rule{
		Local:     netip.AddrPortFrom(wordsAddr(words(0), fam), localPort),
		Source:    netip.AddrPortFrom(wordsAddr(words(2), fam), srcPort),
		Dest:      netip.AddrPortFrom(wordsAddr(words(3), fam), dstPort),
		TOS:       tos,
		Flags:     Flags(flags),
		ClockRate: im.clockRate,
		NextHop:   NextHop{Ifindex: int(im.ifindex)},
	}
	if peer := words(1); peer != [4]uint32{} || peerPort != 0 {
		r.Peer = netip.AddrPortFrom(wordsAddr(peer, fam), peerPort)
	}
	if im.ifindex != 0 {
		macs := make([]byte, 12)
		for i, w := range im.macs {
			ne.PutUint32(macs[4*i:], w)
		}
		r.NextHop.SrcMAC = net.HardwareAddr(macs[:6:6])
		r.NextHop.DstMAC = net.HardwareAddr(macs[6:12:12])
	}
	return r
}

// claim takes entry slot for a local of family fam when it is free: a
// compare-and-swap on its owner word, which is what makes an entry one
// writer's, across processes too (the bench's PinnedRules claims entries
// of a running relayd's table). The entry then holds local's key, no rule,
// zero counters.
func (t *table) claim(slot uint32, local netip.AddrPort, fam uint8) bool {
	e := t.entry(slot)
	if !atomic.CompareAndSwapUint32(&e.Owner, 0, uint32(fam)) {
		return false
	}
	im := keyImage(local)
	write(e, &im)
	zeroCounters(e)
	return true
}

// release takes e's rule out (a packet that still finds it passes) and
// frees it. A packet already past the seqcount may still add to its
// counters; claim zeroes them for the next owner.
func (t *table) release(slot uint32) {
	e := t.entry(slot)
	im := read(e)
	im.head = 0
	write(e, &im)
	atomic.StoreUint32(&e.Owner, 0)
}

func zeroCounters(e *relayStream) {
	for _, p := range []*uint64{&e.Packets, &e.Bytes, &e.LastSeenNs, &e.WrongSource} {
		atomic.StoreUint64(p, 0)
	}
	for _, p := range []*uint32{&e.RtcpPackets, &e.Ssrc, &e.RtpPackets, &e.BaseSeq, &e.MaxSeq, &e.Jitter, &e.Transit, &e.Resets} {
		atomic.StoreUint32(p, 0)
	}
}

// owner is the family of the local owning slot, 0 if free.
func (t *table) owner(slot uint32) uint8 { return uint8(atomic.LoadUint32(&t.entry(slot).Owner)) }

// owns tells whether slot belongs to local (lock-free: the key words only
// change when the entry changes hands).
func (t *table) owns(slot uint32, local netip.AddrPort, fam uint8) bool {
	e := t.entry(slot)
	if uint8(atomic.LoadUint32(&e.Owner)) != fam {
		return false
	}
	a := addrWords(local.Addr())
	p := portWords(e)
	a6 := addr6Words(e)
	return atomic.LoadUint32(&p[0])&0xffff == pair16(hton16(local.Port()), 0)&0xffff &&
		atomic.LoadUint32(&e.LocalAddr) == a[0] &&
		(fam == 4 || (atomic.LoadUint32(&a6[0]) == a[1] && atomic.LoadUint32(&a6[1]) == a[2] && atomic.LoadUint32(&a6[2]) == a[3]))
}

// stats reads e's counters (lock-free; each field is one aligned load).
func stats(e *relayStream) StreamStats {
	return StreamStats{
		Packets:     atomic.LoadUint64(&e.Packets),
		Bytes:       atomic.LoadUint64(&e.Bytes),
		LastSeen:    atomic.LoadUint64(&e.LastSeenNs),
		WrongSource: atomic.LoadUint64(&e.WrongSource),
		RTCPPackets: atomic.LoadUint32(&e.RtcpPackets),
		RTP: RTPStats{
			SSRC:       atomic.LoadUint32(&e.Ssrc),
			Packets:    atomic.LoadUint32(&e.RtpPackets),
			BaseSeq:    atomic.LoadUint32(&e.BaseSeq),
			HighestSeq: atomic.LoadUint32(&e.MaxSeq),
			Jitter:     atomic.LoadUint32(&e.Jitter) >> 4, // kept scaled by 16
			Resets:     atomic.LoadUint32(&e.Resets),
		},
	}
}
