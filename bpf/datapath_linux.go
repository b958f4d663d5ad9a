// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Datapath is the loaded fast path: the program, its maps and the links
// Attach made. Its methods are safe for concurrent use; rules of one stream
// pair should still be changed from one goroutine (fastpath.md §2.8).
type Datapath struct {
	log       *slog.Logger
	pinDir    string   // "" without pinning
	pinLock   *os.File // holds the flock on pinDir until Close
	pinLinks  bool
	maxShared uint32
	planes    []netip.Addr // by plane; fixed for the Datapath's life
	shared    uint32       // first entry of the shared region

	// life guards closing: every method that writes holds it shared, Close
	// exclusively. StreamStats takes no lock: it reads through tab.
	life   sync.RWMutex
	closed bool
	objs   relayObjects
	tab    atomic.Pointer[table] // nil once closed

	mu      sync.Mutex        // links, entries, rule writes
	links   map[int]link.Link // by ifindex
	entries slotAllocator     // shared-region entries held or seen taken, from d.shared
	// index maps a local address and port (unmapped) to its entry. Written
	// under mu; its Load takes no lock (sync.Map's hash trie), so stream
	// counters are read without contending with rule writes.
	index sync.Map
	held  int // entries in index
}

// Open probes the kernel, loads the program and its maps (adopting pinned
// maps under opts.PinPath/PinVersion when they have this layout, sizes and
// planes; replacing them, and removing pins of other layout versions, when
// not) and returns the Datapath, attached nowhere yet. With pinning it
// holds an exclusive lock on the pin directory until Close; while another
// process holds it, Open fails with ErrPinDirBusy. Every failure but bad
// options wraps ErrUnavailable.
func Open(opts Options) (*Datapath, error) {
	if opts.PinLinks && opts.PinPath == "" {
		return nil, fmt.Errorf("%w: PinLinks needs PinPath", ErrInvalidOptions)
	}
	d := &Datapath{
		log:       opts.Logger,
		pinLinks:  opts.PinLinks,
		maxShared: opts.MaxShared,
		links:     make(map[int]link.Link),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.maxShared == 0 {
		d.maxShared = DefaultMaxShared
	}
	for _, a := range opts.LocalAddrs {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() {
			return nil, fmt.Errorf("%w: local address %v", ErrInvalidOptions, a)
		}
		if !slices.Contains(d.planes, a) && len(d.planes) < MaxPlanes {
			d.planes = append(d.planes, a)
		}
	}
	d.shared = uint32(len(d.planes)) * planePorts
	if err := probe(); err != nil {
		return nil, err
	}
	// A no-op since 5.11 (memcg accounting); needed before that.
	if err := rlimit.RemoveMemlock(); err != nil {
		d.log.Debug("cannot remove memlock limit", "err", err)
	}

	spec, err := loadRelay()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return d.load(spec, opts.PinPath)
}

// load loads spec (the embedded program, or a broken one in tests) into d.
func (d *Datapath) load(spec *ebpf.CollectionSpec, pinPath string) (_ *Datapath, err error) {
	spec.Maps[relayMapStreams].MaxEntries = d.shared + d.maxShared
	spec.Maps[relayMapFwd].MaxEntries = d.maxShared
	if v, ok := spec.Variables[relayVarLoadsOrdered]; ok {
		if err := v.Set(loadsOrdered); err != nil {
			return nil, fmt.Errorf("%w: set loads_ordered: %w", ErrUnavailable, err)
		}
	}
	var copts ebpf.CollectionOptions
	if pinPath != "" {
		var base string
		base, err = preparePinBase(pinPath, d.log)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		d.pinDir = filepath.Join(base, PinVersion)
		if err := os.MkdirAll(d.pinDir, 0o700); err != nil {
			return nil, fmt.Errorf("%w: create pin directory: %w", ErrUnavailable, err)
		}
		// Locked before the pins are opened: the holder may be changing them.
		d.pinLock, err = lockPinDir(d.pinDir)
		if errors.Is(err, ErrPinDirBusy) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		defer func() {
			if err != nil {
				_ = d.pinLock.Close()
			}
		}()
		if err := removeOtherLayouts(base, d.log); err != nil {
			return nil, err
		}
		copts.Maps.PinPath = d.pinDir
	} else {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	if err := d.loadObjects(spec, &copts); err != nil {
		return nil, err
	}
	tab, err := mapTable(d.objs.Streams)
	if err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	d.tab.Store(tab)
	d.entries = newSlotAllocator(d.maxShared)
	if d.pinDir != "" {
		d.adopt(tab)
	}
	return d, nil
}

// loadObjects loads the collection and makes sure the planes map lists
// d.planes. Pinned maps of another size, or whose planes name other
// addresses (their entries are keyed by another address's ports), are
// replaced: a relayd adopts its predecessor's state only when it can use
// all of it.
func (d *Datapath) loadObjects(spec *ebpf.CollectionSpec, copts *ebpf.CollectionOptions) error {
	want := d.planesValue()
	for attempt := 0; ; attempt++ {
		err := spec.LoadAndAssign(&d.objs, copts)
		reason := ""
		if err == nil {
			var got relayPlanes
			if err := d.objs.Planes.Lookup(uint32(0), &got); err != nil {
				d.objs.Close()
				return fmt.Errorf("%w: read planes: %w", ErrUnavailable, err)
			}
			switch {
			case got == want:
				return nil
			case got.Count == 0:
				// Fresh maps (pinned ones without planes would have
				// matched, and other plane counts differ in size).
				if err := d.objs.Planes.Put(uint32(0), &want); err != nil {
					d.objs.Close()
					return fmt.Errorf("%w: write planes: %w", ErrUnavailable, err)
				}
				return nil
			}
			d.objs.Close()
			reason = "pinned for other media addresses"
		} else {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				d.log.Error("xdp program rejected by the verifier", "log", fmt.Sprintf("%+v", ve))
			}
			if !errors.Is(err, ebpf.ErrMapIncompatible) {
				return fmt.Errorf("%w: load: %w", ErrUnavailable, err)
			}
			reason = err.Error()
		}
		if d.pinDir == "" || attempt > 0 {
			return fmt.Errorf("%w: load: %s", ErrUnavailable, reason)
		}
		removed, err := removeMapPins(d.pinDir, spec)
		if err != nil {
			return fmt.Errorf("%w: replace pinned maps: %w", ErrUnavailable, err)
		}
		d.log.Warn("replaced pinned fast path maps that do not fit this relayd (their rules and counters are dropped)",
			"dir", d.pinDir, "maps", removed, "reason", reason)
	}
}

// planesValue is the planes map's value for d.planes.
func (d *Datapath) planesValue() relayPlanes {
	var v relayPlanes
	v.Count = uint32(len(d.planes))
	for i, a := range d.planes {
		v.Plane[i].Addr = addrWords(a)
		v.Plane[i].Family = 6
		if a.Is4() {
			v.Plane[i].Family = 4
		}
	}
	return v
}

// adopt takes over the entries found taken in pinned maps: their locals
// become this Datapath's (fastpath clears a previous run's).
func (d *Datapath) adopt(tab *table) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for slot := range tab.nStreams {
		fam := tab.owner(slot)
		if fam == 0 {
			continue
		}
		if slot >= d.shared {
			d.entries.mark(slot - d.shared)
		}
		im := read(tab.entry(slot))
		local := im.local(fam)
		if _, dup := d.index.LoadOrStore(local, slot); dup {
			// Two entries claimed for one local (two writers, one of
			// which died before publishing its own): one is enough.
			tab.release(slot)
			if slot >= d.shared {
				d.entries.free(slot - d.shared)
			}
			continue
		}
		d.held++
	}
	if d.held > 0 {
		d.log.Info("adopted pinned fast path streams", "streams", d.held, "dir", d.pinDir)
	}
}

// loadsOrdered tells the program whether this CPU keeps loads in program
// order (x86-TSO), so that its seqcount needs no atomics (relay.c).
var loadsOrdered = func() uint8 {
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		return 1
	}
	return 0
}()

// probe checks every kernel feature the program needs, so that a missing
// one is one clear error instead of a verifier log.
func probe() error {
	probes := []struct {
		what string
		fn   func() error
	}{
		{"XDP programs", func() error { return features.HaveProgramType(ebpf.XDP) }},
		{"BPF v3 instruction set", features.HaveV3ISA},
		{"hash maps", func() error { return features.HaveMapType(ebpf.Hash) }},
		{"arrays", func() error { return features.HaveMapType(ebpf.Array) }},
		{"per-CPU arrays", func() error { return features.HaveMapType(ebpf.PerCPUArray) }},
		{"DEVMAP_HASH maps", func() error { return features.HaveMapType(ebpf.DevMapHash) }},
		{"mmapable arrays", func() error { return features.HaveMapFlag(features.BPF_F_MMAPABLE) }},
		{"bpf_ktime_get_coarse_ns", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnKtimeGetCoarseNs) }},
		{"bpf_redirect_map", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnRedirectMap) }},
		{"bpf_csum_diff", func() error { return features.HaveProgramHelper(ebpf.XDP, asm.FnCsumDiff) }},
	}
	for _, p := range probes {
		err := p.fn()
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrNotSupported):
			return fmt.Errorf("%w: kernel lacks %s: %w", ErrUnavailable, p.what, err)
		case errIs(err, unix.EPERM, unix.EACCES):
			return fmt.Errorf("%w: probe %s (needs root, or CAP_BPF and CAP_NET_ADMIN): %w", ErrUnavailable, p.what, err)
		default:
			return fmt.Errorf("%w: probe %s: %w", ErrUnavailable, p.what, err)
		}
	}
	return nil
}

// Close releases this process's handles and the pin directory's lock.
// Pinned maps and links stay (and keep forwarding); without pins the
// program detaches and the maps go.
func (d *Datapath) Close() error {
	d.life.Lock()
	defer d.life.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.mu.Lock()
	var errs []error
	for ifindex, l := range d.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link of ifindex %d: %w", ifindex, err))
		}
		delete(d.links, ifindex)
	}
	d.mu.Unlock()
	if tab := d.tab.Swap(nil); tab != nil {
		tab.close()
	}
	if err := d.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	// Last: the next relayd may adopt the pins once this one is done.
	if d.pinLock != nil {
		if err := d.pinLock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("unlock pin directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Unpin removes this layout's pins from bpffs: the maps and every pinned
// link (also those of interfaces this process did not attach, which detach
// at once). Close then frees everything: a clean shutdown after which the
// next relayd adopts nothing.
func (d *Datapath) Unpin() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	if d.pinDir == "" {
		return nil
	}
	var errs []error
	for _, m := range []*ebpf.Map{d.objs.Streams, d.objs.Planes, d.objs.Fwd, d.objs.Counters, d.objs.TxPorts} {
		if err := m.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ifindexes, err := d.PinnedLinks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, ifindex := range ifindexes {
		if err := os.Remove(d.linkPinPath(ifindex)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin link of ifindex %d: %w", ifindex, err))
		}
	}
	if err := os.Remove(d.pinDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("remove pin directory: %w", err))
	}
	return errors.Join(errs...)
}

// PinDir is the directory holding the pins ("" without pinning).
func (d *Datapath) PinDir() string { return d.pinDir }

// Pinned says whether the maps and the links are pinned: the program keeps
// forwarding with its rules after this process closes the Datapath.
func (d *Datapath) Pinned() bool { return d.pinDir != "" && d.pinLinks }

// enter takes the shared life lock unless the Datapath is closed.
func (d *Datapath) enter() error {
	d.life.RLock()
	if d.closed {
		d.life.RUnlock()
		return ErrClosed
	}
	return nil
}

// linkPinPath is where the link of ifindex is pinned.
func (d *Datapath) linkPinPath(ifindex int) string {
	return filepath.Join(d.pinDir, fmt.Sprintf("link_%d", ifindex))
}
