// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestWritePidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "relayd", "relayd.pid")
	remove, err := WritePidFile(path)
	if err != nil {
		t.Fatalf("WritePidFile(%q) error = %v", path, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(os.Getpid()) + "\n"; string(got) != want {
		t.Errorf("pid file = %q, want %q", got, want)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || !st.IsDir() {
		t.Fatalf("parent directory: %v, %v", st, err)
	}
	if perm := st.Mode().Perm(); perm&^0o755 != 0 {
		t.Errorf("parent directory mode = %v, want at most 0755", perm)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the pid file (temp file left behind?)", len(entries))
	}

	if err := remove(); err != nil {
		t.Fatalf("remove() error = %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pid file still exists after remove: %v", err)
	}
	if err := remove(); err != nil {
		t.Errorf("second remove() error = %v, want nil", err)
	}
}

func TestWritePidFileOverwritesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relayd.pid")
	if err := os.WriteFile(path, []byte("999999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	remove, err := WritePidFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = remove() })
	got, _ := os.ReadFile(path)
	if want := strconv.Itoa(os.Getpid()) + "\n"; string(got) != want {
		t.Errorf("pid file = %q, want %q", got, want)
	}
}

func TestWritePidFileRemoveKeepsSuccessorsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relayd.pid")
	remove, err := WritePidFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("12345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := remove(); err != nil {
		t.Fatalf("remove() error = %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != "12345\n" {
		t.Errorf("successor's pid file = %q, %v; want it untouched", got, err)
	}
}

func TestWritePidFileErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		filepath.Join(file, "relayd.pid"), // parent is a regular file
		dir,                               // path is a directory
	} {
		if remove, err := WritePidFile(path); err == nil {
			_ = remove()
			t.Errorf("WritePidFile(%q) error = nil, want an error", path)
		} else if !strings.HasPrefix(err.Error(), "daemon: ") {
			t.Errorf("WritePidFile(%q) error = %q, want daemon: prefix", path, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after failures, want 1 (temp files left behind?)", len(entries))
	}
}

func TestWritePidFileEmptyPath(t *testing.T) {
	remove, err := WritePidFile("")
	if err != nil || remove == nil {
		t.Fatalf("WritePidFile(\"\") = (remove != nil) %t, %v; want a no-op remove", remove != nil, err)
	}
	if err := remove(); err != nil {
		t.Errorf("no-op remove() error = %v", err)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	// Lower the soft limit a little so that the raise is observable even
	// though the Go runtime already raised it at start-up; only by one, so
	// nothing else in the process runs short of descriptors meanwhile.
	if before.Max > 1024 {
		lowered := syscall.Rlimit{Cur: before.Max - 1, Max: before.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lowered); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &before) })
	}
	soft, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatalf("RaiseFileLimit() error = %v", err)
	}
	if soft != hard || hard != before.Max {
		t.Errorf("RaiseFileLimit() = %d, %d; want soft = hard = %d", soft, hard, before.Max)
	}
	var after syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after); err != nil {
		t.Fatal(err)
	}
	if after.Cur != soft || after.Max != hard {
		t.Errorf("limits in force = %d, %d; RaiseFileLimit reported %d, %d", after.Cur, after.Max, soft, hard)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, slog.LevelInfo)
	log.Debug("hidden")
	log.Info("started", "component", "test")
	out := buf.String()
	if strings.Contains(out, "hidden") {
		t.Errorf("debug record written at info level: %q", out)
	}
	if !strings.Contains(out, "level=INFO") || !strings.Contains(out, "msg=started") || !strings.Contains(out, "component=test") {
		t.Errorf("log output = %q, want a text record for the info message", out)
	}
}
