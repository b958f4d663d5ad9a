// SPDX-License-Identifier: Apache-2.0

package restart_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// restartWindow is what the test reads of the bench's results.json: one
// relay's restart window (bench/internal/report.Restart).
type restartWindow struct {
	Relay           string  `json:"relay"`
	Calls           int     `json:"calls"`
	Streams         int     `json:"streams"`
	Kernel          bool    `json:"kernel"`
	KernelBefore    int64   `json:"kernel_streams_before"`
	KernelAfter     int64   `json:"kernel_streams_after"`
	Restored        int64   `json:"restored_calls"`
	RestartSec      float64 `json:"restart_s"`
	Sent            uint64  `json:"sent"`
	Received        uint64  `json:"received"`
	LostMax         uint64  `json:"lost_per_stream_max"`
	StreamsWithLoss int     `json:"streams_with_loss"`
	GapMedianMs     float64 `json:"gap_median_ms"`
	GapMaxMs        float64 `json:"gap_max_ms"`
}

type results struct {
	Restarts []restartWindow `json:"restarts"`
	Checks   []struct {
		Relay  string `json:"relay"`
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

// TestRestartKeepsMedia runs `bench --quick --mode restart`: 100 calls with
// media through relayd (userspace, then XDP), each relayd restarted in the
// middle of a measurement window. From the bench's results: every stream the
// kernel forwarded lost nothing and every call was restored with its
// streams back in the kernel; no userspace stream was silent for a second.
func TestRestartKeepsMedia(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the restart test needs root (network namespaces, XDP, a bpffs mount); run with sudo")
	}
	for _, bin := range []string{"go", "taskset"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, "%s not found: %v", bin, err)
		}
	}
	if _, err := testenv.IPBinary(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	dir := testenv.ArtifactDir(t, "RESTART_ARTIFACTS")
	// A bench killed mid-run leaves its bpffs mounted under dir, which
	// would keep dir from being removed (and the pinned program attached).
	t.Cleanup(func() { unmountUnder(t, dir) })
	relayd := testenv.RelaydBinary(t, dir)
	bench := filepath.Join(dir, "bench")
	build := exec.Command("go", "build", "-o", bench, "./bench")
	build.Dir = moduleRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bench: %v\n%s", err, out)
	}

	out := filepath.Join(dir, "results")
	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bench, "--quick", "--mode", "restart", "--relayd-bin", relayd,
		"--out", out, "--work-dir", filepath.Join(dir, "work"), "--deadline", "100s")
	// The bench finds ip and taskset in sbin; a PATH kept by `sudo -E` may
	// lack it.
	cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
	start := time.Now()
	output, err := cmd.CombinedOutput()
	t.Logf("bench ran %v:\n%s", time.Since(start).Round(time.Second), testenv.Tail(string(output), 30))
	if err != nil {
		t.Errorf("bench --quick --mode restart: %v (relay logs in %s)", err, filepath.Join(dir, "work"))
	}

	data, rerr := os.ReadFile(filepath.Join(out, "results.json"))
	if rerr != nil {
		t.Fatalf("results: %v", rerr)
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	byRelay := map[string]restartWindow{}
	for _, w := range res.Restarts {
		byRelay[w.Relay] = w
		t.Logf("%s: restart %.0f ms, %d calls restored, %d of %d streams lost packets (worst %d), gap median %.0f ms, worst %.0f ms; in the kernel %d before, %d after",
			w.Relay, 1e3*w.RestartSec, w.Restored, w.StreamsWithLoss, w.Streams, w.LostMax, w.GapMedianMs, w.GapMaxMs, w.KernelBefore, w.KernelAfter)
	}
	for _, c := range res.Checks {
		if !c.OK {
			t.Errorf("bench check failed: %s, %s: %s", c.Relay, c.Name, c.Detail)
		}
	}

	xdp, ok := byRelay["relayd:xdp"]
	switch {
	case !ok:
		t.Error("no restart window for relayd:xdp")
	case !xdp.Kernel || xdp.KernelBefore < int64(2*xdp.Calls):
		t.Errorf("relayd:xdp: %d of %d streams in the kernel before the restart: the kernel path was not measured", xdp.KernelBefore, 2*xdp.Calls)
	case xdp.Streams != 2*xdp.Calls || xdp.Sent == 0:
		t.Errorf("relayd:xdp: %d streams measured, %d packets sent; want %d streams", xdp.Streams, xdp.Sent, 2*xdp.Calls)
	case xdp.LostMax != 0 || xdp.StreamsWithLoss != 0:
		t.Errorf("relayd:xdp: %d streams lost packets across the restart (worst %d), want none", xdp.StreamsWithLoss, xdp.LostMax)
	case xdp.Restored != int64(xdp.Calls) || xdp.KernelAfter < int64(2*xdp.Calls):
		t.Errorf("relayd:xdp: %d of %d calls restored, %d streams back in the kernel", xdp.Restored, xdp.Calls, xdp.KernelAfter)
	}
	us, ok := byRelay["relayd:userspace"]
	switch {
	case !ok:
		t.Error("no restart window for relayd:userspace")
	case us.Streams != 2*us.Calls || us.Restored != int64(us.Calls):
		t.Errorf("relayd:userspace: %d streams measured, %d of %d calls restored", us.Streams, us.Restored, us.Calls)
	case us.GapMaxMs >= 1000:
		t.Errorf("relayd:userspace: a stream was silent %.0f ms across the restart, want < 1 s", us.GapMaxMs)
	}
}

// unmountUnder lazily unmounts whatever is mounted below dir.
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			if err := syscall.Unmount(f[1], syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s left by the bench: %v", f[1], err)
			}
		}
	}
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the relayd module", gomod)
	}
	return filepath.Dir(gomod)
}
