// SPDX-License-Identifier: Apache-2.0

//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// sysBPFFS is where systemd mounts bpffs; relayd mounts it there when a pin
// path below it is not on bpffs yet.
const sysBPFFS = "/sys/fs/bpf"

// preparePinBase makes sure base is on bpffs (mounting it when needed) and
// returns it as an absolute path.
func preparePinBase(base string, log *slog.Logger) (string, error) {
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("pin path: %w", err)
	}
	if err := ensureBPFFS(base, log); err != nil {
		return "", err
	}
	return base, nil
}

// removeOtherLayouts removes the pin directories of other layout versions
// under base (base/v1 after the v2 layout came): a relayd never adopts maps
// it cannot read, nor leaves an old program attached through a pinned link
// (its interface would refuse ours). Each is locked first; one still held
// by a running relayd fails with ErrPinDirBusy and is left alone. It logs
// one line per directory removed.
func removeOtherLayouts(base string, log *slog.Logger) error {
	entries, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("%w: list pin directory: %w", ErrUnavailable, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || name == PinVersion || !isLayoutVersion(name) {
			continue
		}
		pins, err := removeLayout(filepath.Join(base, name))
		if errors.Is(err, ErrPinDirBusy) {
			return fmt.Errorf("%w (pins of the older layout %s, in use: stop that relayd first)", err, name)
		}
		if err != nil {
			return err
		}
		log.Warn("removed fast path pins of an older layout: its rules and counters are dropped, its program detached",
			"dir", filepath.Join(base, name), "pins", pins, "layout", PinVersion)
	}
	return nil
}

// removeLayout removes one layout directory's pins and the directory,
// under its lock, and lists the pins removed. Links whose pin was their
// last reference detach.
func removeLayout(dir string) ([]string, error) {
	lock, err := lockPinDir(dir)
	if errors.Is(err, ErrPinDirBusy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer lock.Close()
	pins, err := os.ReadDir(dir)
	var names []string
	for _, p := range pins {
		if rerr := os.Remove(filepath.Join(dir, p.Name())); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		names = append(names, p.Name())
	}
	if rerr := os.Remove(dir); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return names, fmt.Errorf("%w: remove pins in %s: %w", ErrUnavailable, dir, err)
	}
	return names, nil
}

// RemovePins removes what relayds pinned under base — every layout's maps
// and links, whose programs detach — unless a running relayd holds it
// (ErrPinDirBusy; that directory is left alone). A relayd that runs
// without the fast path calls it: a predecessor that handed its calls over
// left its program forwarding them with its rules, and nobody would ever
// withdraw those (a deleted call's media would go on being forwarded). A
// base that does not exist or is not on bpffs holds no pins and is left
// alone (not mounted). It returns the directories it removed.
func RemovePins(base string, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return nil, fmt.Errorf("pin path: %w", err)
	}
	if ok, err := isBPFFS(base); err != nil || !ok {
		return nil, nil // nothing there, or nothing this process may see
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("list pin directory %s: %w", base, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !isLayoutVersion(e.Name()) {
			continue
		}
		dir := filepath.Join(base, e.Name())
		pins, err := removeLayout(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
		log.Warn("removed the fast path pins a previous relayd left: its program is detached, its rules dropped",
			"dir", dir, "pins", pins)
	}
	return removed, errors.Join(errs...)
}

// isLayoutVersion tells whether name is a layout version directory (v1,
// v2, ...).
func isLayoutVersion(name string) bool {
	if len(name) < 2 || name[0] != 'v' {
		return false
	}
	for _, c := range name[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// removeMapPins removes the pins of spec's maps from dir (links stay: the
// next Attach adopts them and swaps in the new program) and lists those
// it removed.
func removeMapPins(dir string, spec *ebpf.CollectionSpec) ([]string, error) {
	var removed []string
	for name, m := range spec.Maps {
		if m.Pinning != ebpf.PinByName {
			continue
		}
		err := os.Remove(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	slices.Sort(removed)
	return removed, nil
}

// ensureBPFFS mounts bpffs when base's nearest existing ancestor is not on
// it: at /sys/fs/bpf for paths below that, else at base itself.
func ensureBPFFS(base string, log *slog.Logger) error {
	p := base
	for {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pin path: %w", err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	onBPFFS, err := isBPFFS(p)
	if err != nil {
		return err
	}
	if onBPFFS {
		return nil
	}
	target := base
	if base == sysBPFFS || strings.HasPrefix(base, sysBPFFS+"/") {
		target = sysBPFFS
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return fmt.Errorf("create bpffs mount point: %w", err)
	}
	if err := unix.Mount("bpf", target, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", target, err)
	}
	log.Info("mounted bpffs", "path", target)
	return nil
}

func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == unix.BPF_FS_MAGIC, nil
}

// lockPinDir takes an exclusive flock on the pin directory, held until the
// returned file is closed: a second relayd adopting the same pins would
// clear the first one's rules at start and then overwrite them. The kernel
// drops the lock with the descriptor, so a crashed relayd never leaves it
// behind. Another holder fails it at once with ErrPinDirBusy.
func lockPinDir(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open pin directory %s: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err == nil {
		return f, nil
	}
	_ = f.Close()
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, fmt.Errorf("%w: %s%s", ErrPinDirBusy, dir, lockHolder(dir))
	}
	return nil, fmt.Errorf("lock pin directory %s: %w", dir, err)
}

// lockHolder names the process holding the flock on path, from
// /proc/locks, as " (pid N, comm)"; "" when it cannot tell (another pid
// namespace, a race with the holder's exit).
func lockHolder(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return ""
	}
	// "1: FLOCK  ADVISORY  WRITE 1234 00:2b:5678 0 EOF"
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[1] != "FLOCK" || fields[5] != id {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", fields[4], "comm"))
		if c := strings.TrimSpace(string(comm)); c != "" {
			return fmt.Sprintf(" (pid %s, %s)", fields[4], c)
		}
		return fmt.Sprintf(" (pid %s)", fields[4])
	}
	return ""
}
