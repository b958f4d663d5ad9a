// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bpf"
	"github.com/relayd/relayd/test/testenv"
)

// A relayd that runs without the fast path removes the pins a previous one
// left: its program would otherwise go on forwarding the calls it handed
// over with rules nobody ever withdraws.
func TestXDPOffRemovesPreviousPins(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "needs root to pin a fast path on a bpffs")
	}
	base := filepath.Join(t.TempDir(), "bpffs")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", base, "bpf", 0, "mode=0700"); err != nil {
		testenv.Unavailable(t, "mount bpffs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(base, unix.MNT_DETACH) })
	pins := filepath.Join(base, "relayd")
	d, err := bpf.Open(bpf.Options{PinPath: pins, PinLinks: true, MaxShared: 1024})
	if errors.Is(err, bpf.ErrUnavailable) && os.Getenv("CI") == "" {
		t.Skipf("no fast path on this kernel: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(pins, bpf.PinVersion)
	if _, err := os.Stat(layout); err != nil {
		t.Fatalf("no pins to remove: %v", err)
	}

	logs, stop := runDaemon(t, "--config-file=none", "--listen-ng=127.0.0.1:24298", "--interface=127.0.0.1",
		"--port-min=42500", "--port-max=42599", "--xdp=off", "--xdp-pin-path="+pins)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "relayd started") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if _, err := os.Stat(layout); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous run's pins are still there (%v):\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "removed the fast path pins a previous relayd left") {
		t.Errorf("no log line about the removed pins:\n%s", logs.String())
	}
}
