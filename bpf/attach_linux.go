// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attach hooks the program into interface ifindex (of the calling thread's
// network namespace) and makes the interface a redirect target: rules may
// send out of every attached interface. With Options.PinLinks the link is pinned, and a link
// pinned by an earlier relayd for the same interface is adopted instead:
// its program is swapped for this one atomically, keeping the mode it was
// attached with. When native mode fails, the *AttachError matches
// ErrNativeUnsupported and the caller may retry with ModeGeneric.
func (d *Datapath) Attach(ifindex int, mode Mode) error {
	var flags link.XDPAttachFlags
	switch mode {
	case ModeNative:
		flags = link.XDPDriverMode
	case ModeGeneric:
		flags = link.XDPGenericMode
	default:
		return fmt.Errorf("%w: attach mode %v", ErrInvalidOptions, mode)
	}
	if ifindex <= 0 {
		return fmt.Errorf("%w: ifindex %d", ErrInvalidOptions, ifindex)
	}
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.links[ifindex]; ok {
		return fmt.Errorf("attach ifindex %d: %w", ifindex, ErrAttached)
	}

	l, adopted, err := d.adoptLink(ifindex)
	if err != nil {
		return err
	}
	if l == nil {
		l, err = link.AttachXDP(link.XDPOptions{Program: d.objs.RelayXdp, Interface: ifindex, Flags: flags})
		if err != nil {
			return &AttachError{Ifindex: ifindex, Mode: mode, Err: err, fallback: mode == ModeNative && nativeFallback(err)}
		}
	}
	fail := func(err error) error {
		if !adopted {
			_ = l.Close()
		}
		return err
	}
	if err := d.objs.TxPorts.Put(uint32(ifindex), uint32(ifindex)); err != nil {
		return fail(fmt.Errorf("add ifindex %d to the redirect map: %w", ifindex, err))
	}
	if d.pinLinks && !adopted {
		if err := l.Pin(d.linkPinPath(ifindex)); err != nil {
			_ = d.objs.TxPorts.Delete(uint32(ifindex))
			return fail(fmt.Errorf("pin link of ifindex %d: %w", ifindex, err))
		}
	}
	d.links[ifindex] = l
	if adopted {
		d.log.Info("adopted pinned xdp link", "ifindex", ifindex)
	}
	return nil
}

// adoptLink loads the link pinned for ifindex, if any, and swaps its
// program for ours.
func (d *Datapath) adoptLink(ifindex int) (link.Link, bool, error) {
	if !d.pinLinks {
		return nil, false, nil
	}
	path := d.linkPinPath(ifindex)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return nil, false, fmt.Errorf("load pinned link %s: %w", path, err)
	}
	if why := d.foreignLink(l, ifindex); why != "" {
		// Not the hook of this interface: adopting it would swap the
		// program of some other interface (or of none) and leave this
		// one without. Its pin goes; the caller attaches afresh.
		_ = l.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("remove stale pinned link %s: %w", path, err)
		}
		d.log.Warn("removed a pinned xdp link that does not hold this interface's hook", "ifindex", ifindex, "pin", path, "reason", why)
		return nil, false, nil
	}
	if err := l.Update(d.objs.RelayXdp); err != nil {
		_ = l.Close()
		return nil, false, fmt.Errorf("swap program of pinned link %s: %w", path, err)
	}
	return l, true, nil
}

// foreignLink says why the pinned link l is not the XDP hook of interface
// ifindex in the calling thread's network namespace ("" when it is): its
// interface is gone (a link outlives its device, detached), or the pin was
// made for an interface of the same index in another namespace, or the
// hook runs another program. Interface indexes are per namespace and
// restart at 1 in a new one, so a pin dir that saw another namespace (or
// an interface deleted and created again) can name a link that is not this
// interface's.
func (d *Datapath) foreignLink(l link.Link, ifindex int) string {
	info, err := l.Info()
	if err != nil {
		return fmt.Sprintf("link info: %v", err)
	}
	if x := info.XDP(); x == nil || x.Ifindex == 0 {
		return "its interface is gone"
	}
	dev, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Sprintf("interface %d: %v", ifindex, err)
	}
	x := dev.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId != uint32(info.Program) {
		return fmt.Sprintf("the interface's XDP hook does not run the link's program %d", info.Program)
	}
	return ""
}

// nativeFallback tells whether a native-mode failure is worth a generic
// retry: anything but a busy hook, a missing device or missing privileges.
func nativeFallback(err error) bool {
	return !errIs(err, unix.EBUSY, unix.EEXIST, unix.ENODEV, unix.EPERM, unix.EACCES)
}

// Detach removes the interface from the redirect map and detaches the
// program (unpinning its link). It also detaches a link pinned by an
// earlier relayd that this one never adopted.
func (d *Datapath) Detach(ifindex int) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.life.RUnlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.links[ifindex]
	if !ok && d.pinDir != "" {
		if pinned, err := link.LoadPinnedLink(d.linkPinPath(ifindex), nil); err == nil {
			l, ok = pinned, true
		}
	}
	if !ok {
		return fmt.Errorf("detach ifindex %d: %w", ifindex, ErrNotAttached)
	}
	var errs []error
	// First stop redirects to it, then take the program off.
	if err := d.objs.TxPorts.Delete(uint32(ifindex)); err != nil && !errIs(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("remove ifindex %d from the redirect map: %w", ifindex, err))
	}
	if d.pinDir != "" {
		if err := os.Remove(d.linkPinPath(ifindex)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin link of ifindex %d: %w", ifindex, err))
		}
	}
	if err := l.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close link of ifindex %d: %w", ifindex, err))
	}
	delete(d.links, ifindex)
	return errors.Join(errs...)
}

// Attached lists the interfaces this Datapath has attached, ascending.
func (d *Datapath) Attached() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]int, 0, len(d.links))
	for ifindex := range d.links {
		out = append(out, ifindex)
	}
	sort.Ints(out)
	return out
}

// Pinned tells whether the program's maps and links outlive this process
// (Options.PinPath and PinLinks): only then can a next relayd adopt them.
func (d *Datapath) Pinned() bool { return d.pinDir != "" && d.pinLinks }

// PinnedLinks lists the interfaces with a pinned relayd link (attached by
// this process or an earlier one), ascending: after a restart, those not
// attached again are candidates for Detach.
func (d *Datapath) PinnedLinks() ([]int, error) {
	if d.pinDir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(d.pinDir)
	if err != nil {
		return nil, fmt.Errorf("list pinned links: %w", err)
	}
	var out []int
	for _, e := range entries {
		if n, ok := strings.CutPrefix(e.Name(), "link_"); ok {
			if ifindex, err := strconv.Atoi(n); err == nil {
				out = append(out, ifindex)
			}
		}
	}
	sort.Ints(out)
	return out, nil
}
