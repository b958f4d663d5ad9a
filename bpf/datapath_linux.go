// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

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
	log      *slog.Logger
	pinDir   string   // "" without pinning
	pinLock  *os.File // holds the flock on pinDir until Close
	pinLinks bool
	maxRules uint32
	maxSlots uint32

	// life guards closing: every method holds it shared, Close exclusively.
	life   sync.RWMutex
	closed bool
	objs   relayObjects
	stats  *ebpf.Memory // stream_stats, mmapped

	mu    sync.Mutex        // links and slots
	links map[int]link.Link // by ifindex
	slots slotAllocator
}

// Open probes the kernel, loads the program and its maps (adopting pinned
// maps under opts.PinPath/PinVersion) and returns the Datapath, attached
// nowhere yet. With pinning it holds an exclusive lock on the pin directory
// until Close; while another process holds it, Open fails with
// ErrPinDirBusy. Every failure but bad options wraps ErrUnavailable.
func Open(opts Options) (*Datapath, error) {
	if opts.PinLinks && opts.PinPath == "" {
		return nil, fmt.Errorf("%w: PinLinks needs PinPath", ErrInvalidOptions)
	}
	d := &Datapath{
		log:      opts.Logger,
		pinLinks: opts.PinLinks,
		maxRules: opts.MaxRules,
		maxSlots: opts.MaxSlots,
		links:    make(map[int]link.Link),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.maxRules == 0 {
		d.maxRules = DefaultMaxRules
	}
	if d.maxSlots == 0 {
		d.maxSlots = DefaultMaxSlots
	}
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
	spec.Maps[relayMapFwd].MaxEntries = d.maxRules
	spec.Maps[relayMapStreamStats].MaxEntries = d.maxSlots
	var copts ebpf.CollectionOptions
	if pinPath != "" {
		d.pinDir, err = preparePinDir(pinPath, d.log)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
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
		copts.Maps.PinPath = d.pinDir
	} else {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	if err := spec.LoadAndAssign(&d.objs, &copts); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			d.log.Error("xdp program rejected by the verifier", "log", fmt.Sprintf("%+v", ve))
		}
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			err = fmt.Errorf("%w (pinned by another build under %s: remove it to start afresh)", err, d.pinDir)
		}
		return nil, fmt.Errorf("%w: load: %w", ErrUnavailable, err)
	}
	d.stats, err = d.objs.StreamStats.Memory()
	if err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("%w: map stream stats: %w", ErrUnavailable, err)
	}
	d.slots = newSlotAllocator(d.maxSlots)
	if d.pinDir != "" {
		if err := d.adoptSlots(); err != nil {
			d.objs.Close()
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return d, nil
}

// adoptSlots marks the slots of pinned rules as allocated.
func (d *Datapath) adoptSlots() error {
	rules, err := d.rules()
	if err != nil {
		return fmt.Errorf("read pinned rules: %w", err)
	}
	for _, r := range rules {
		if r.Slot < d.maxSlots {
			d.slots.mark(r.Slot)
		}
	}
	if len(rules) > 0 {
		d.log.Info("adopted pinned fast path rules", "rules", len(rules), "slots", d.slots.inUse, "dir", d.pinDir)
	}
	return nil
}

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
	d.stats = nil
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
	for _, m := range []*ebpf.Map{d.objs.Fwd, d.objs.StreamStats, d.objs.Counters, d.objs.TxPorts} {
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
