// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dir keeps one file per call in a directory: what a single node needs to
// come back from a restart or an upgrade. Files are replaced by rename, so a
// relayd killed mid-write leaves the previous record whole. They are not
// fsynced: the records serve a process that restarts on a running machine
// (the page cache survives it), and after a power cut the calls are gone
// anyway.
type Dir struct {
	path string
}

// dirSuffix names the record files; anything else in the directory is not
// relayd's and is left alone.
const dirSuffix = ".call"

// OpenDir creates path (0700) when missing and checks it can be written.
func OpenDir(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory: empty path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	probe, err := os.CreateTemp(path, ".probe-*")
	if err != nil {
		return nil, fmt.Errorf("state directory not writable: %w", err)
	}
	_ = probe.Close()
	_ = os.Remove(probe.Name())
	d := &Dir{path: path}
	d.removeTemps()
	return d, nil
}

// fileOf names callID's record: a hash, because a call-id may hold any
// byte and be longer than a file name may. The call-id itself is the
// record's first line.
func (d *Dir) fileOf(callID string) string {
	h := sha256.Sum256([]byte(callID))
	return filepath.Join(d.path, hex.EncodeToString(h[:20])+dirSuffix)
}

// Put writes the record beside its final name and renames it into place.
func (d *Dir) Put(_ context.Context, callID string, record []byte) error {
	if strings.ContainsAny(callID, "\n") {
		return fmt.Errorf("call-id %q: holds a line break", callID)
	}
	f, err := os.CreateTemp(d.path, ".tmp-*")
	if err != nil {
		return fmt.Errorf("write state of %s: %w", callID, err)
	}
	_, err = f.Write(append(append([]byte(callID), '\n'), record...))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), d.fileOf(callID))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write state of %s: %w", callID, err)
	}
	return nil
}

// Delete removes callID's record.
func (d *Dir) Delete(_ context.Context, callID string) error {
	if err := os.Remove(d.fileOf(callID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state of %s: %w", callID, err)
	}
	return nil
}

// Get reads callID's record.
func (d *Dir) Get(_ context.Context, callID string) ([]byte, error) {
	id, rec, err := d.read(d.fileOf(callID))
	if errors.Is(err, os.ErrNotExist) || (err == nil && id != callID) {
		return nil, fmt.Errorf("%s: %w", callID, ErrNotFound)
	}
	return rec, err
}

// IDs reads the call-id line of every record. A file that cannot be read
// is named in the error and skipped: the other calls are still listed.
func (d *Dir) IDs(_ context.Context) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(d.path, "*"+dirSuffix))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(names))
	var errs []error
	for _, n := range names {
		id, _, err := d.read(n)
		switch {
		case errors.Is(err, os.ErrNotExist):
			// deleted since the listing
		case err != nil:
			errs = append(errs, err)
		default:
			ids = append(ids, id)
		}
	}
	return ids, errors.Join(errs...)
}

func (d *Dir) read(name string) (callID string, record []byte, err error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", nil, err
	}
	id, rec, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return "", nil, fmt.Errorf("state file %s: no call-id line", name)
	}
	return string(id), rec, nil
}

// removeTemps clears what a relayd killed mid-write left.
func (d *Dir) removeTemps() {
	names, _ := filepath.Glob(filepath.Join(d.path, ".tmp-*"))
	for _, n := range names {
		_ = os.Remove(n)
	}
}

// Close does nothing: every write is complete when Put returns.
func (d *Dir) Close() error { return nil }

func (d *Dir) String() string { return "dir " + d.path }
