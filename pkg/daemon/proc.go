// SPDX-License-Identifier: Apache-2.0

// Package daemon runs relayd: wiring of config, sessions, media and control server.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// WritePidFile writes the process id to path, creating the parent directory
// (0755) if it is missing, and returns a function that removes the file. An
// empty path writes nothing and returns a no-op remove.
//
// The file is written under a temporary name and renamed into place, so a
// reader (an init script, a monitoring probe) never sees it half-written.
// remove deletes the file only while it still holds this process's id: a
// successor that already wrote its own pid file must keep it. Calling remove
// again, or after the file is gone, returns nil.
func WritePidFile(path string) (remove func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: creating pid file directory: %w", err)
	}
	content := []byte(strconv.Itoa(os.Getpid()) + "\n")

	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("daemon: writing pid file: %w", err)
	}
	tmpName := tmp.Name()
	_, werr := tmp.Write(content)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmpName, 0o644)); err != nil {
		_ = os.Remove(tmpName)
		return nil, fmt.Errorf("daemon: writing pid file %s: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		_ = os.Remove(tmpName)
		return nil, fmt.Errorf("daemon: writing pid file: %w", err)
	}

	remove = func() error {
		got, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("daemon: removing pid file: %w", err)
		case !bytes.Equal(got, content):
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("daemon: removing pid file: %w", err)
		}
		return nil
	}
	return remove, nil
}

// RaiseFileLimit raises the RLIMIT_NOFILE soft limit to the hard limit and
// returns the limits in force afterwards. Each call needs two sockets per
// media stream, so the common 1024 soft limit caps a relay at a few hundred
// calls. The Go runtime already raises the soft limit at start-up on Linux;
// calling this anyway makes the limits known for the start-up log and covers
// platforms and embedders where that did not happen. On error the returned
// limits are the unchanged current ones.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("daemon: reading RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur >= rl.Max {
		return rl.Cur, rl.Max, nil
	}
	raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
		return rl.Cur, rl.Max, fmt.Errorf("daemon: raising RLIMIT_NOFILE soft limit %d to %d: %w", rl.Cur, rl.Max, err)
	}
	return raised.Cur, raised.Max, nil
}

// NewLogger returns a text logger writing records at level and above to w.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
