// SPDX-License-Identifier: Apache-2.0

//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysBPFFS is where systemd mounts bpffs; relayd mounts it there when a pin
// path below it is not on bpffs yet.
const sysBPFFS = "/sys/fs/bpf"

// preparePinDir makes sure base is on bpffs (mounting it when needed) and
// returns the created base/PinVersion.
func preparePinDir(base string, log *slog.Logger) (string, error) {
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("pin path: %w", err)
	}
	if err := ensureBPFFS(base, log); err != nil {
		return "", err
	}
	dir := filepath.Join(base, PinVersion)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create pin directory: %w", err)
	}
	return dir, nil
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
