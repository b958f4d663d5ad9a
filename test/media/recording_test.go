// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// TestXDPRecording: a call forwarded by the XDP program that starts being
// recorded comes back to userspace (the kernel forwards none of its packets
// while the recording runs, and every one of them is in the pcap file, both
// ways, with the real addresses), and goes back to the kernel when the
// recording stops, without a packet or a re-INVITE to latch it again.
func TestXDPRecording(t *testing.T) {
	requireEnvironment(t)
	if incumbentUnderTest(t) {
		t.Skip("relayd's own recording: the incumbent here runs without a kernel module")
	}
	t.Parallel()
	dir := testenv.ArtifactDir(t, "MEDIA_ARTIFACTS")
	recDir := filepath.Join(dir, "recordings")
	if err := os.MkdirAll(recDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tp := newTopology(t)
	r := startRelayd(t, tp, dir, "--timeout=20", "--xdp=auto", "--recording-dir="+recDir)
	a, b := newParty(t, tp.a, "a", partyA4), newParty(t, tp.b, "b", partyB4)
	c := setupCall(t, r, a, b, callOptions{})
	aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
	exchange(t, "latch", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
	waitKernelized(t, r, c)
	exchange(t, "kernel", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 20)

	cmd := func(name string) {
		t.Helper()
		rep := r.must(t, map[string]any{"command": name, "call-id": c.id, "from-tag": c.aTag, "to-tag": c.bTag})
		if rep["warning"] != nil {
			t.Fatalf("%s: %v", name, rep)
		}
	}
	cmd("start recording")
	waitState(t, r, c, "recording", false)
	before := streamKernelState(t, r, c, c.toA.port)
	atB, atA := exchange(t, "recorded", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
	after := streamKernelState(t, r, c, c.toA.port)
	if after.packets-before.packets != 50 || after.kernel != before.kernel {
		t.Errorf("while recording: before %+v after %+v, want 50 packets, none in the kernel", before, after)
	}
	rec, _ := r.query(t, c.id)["recording"].(map[string]any)
	file, _ := rec["file"].(string)
	if rec["state"] != "recording" || !strings.HasPrefix(file, filepath.Join(recDir, "pcaps")) {
		t.Fatalf("query recording: %v", rec)
	}
	cmd("stop recording")
	waitState(t, r, c, "stopped", true)
	before = streamKernelState(t, r, c, c.toA.port)
	exchange(t, "kernel after recording", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 30)
	after = streamKernelState(t, r, c, c.toA.port)
	if after.kernel-before.kernel != 30 {
		t.Errorf("after the recording: before %+v after %+v, want 30 more kernel packets", before, after)
	}

	meta := filepath.Join(recDir, "metadata", strings.TrimSuffix(filepath.Base(file), ".pcap")+".json")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(meta); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata %s never appeared", meta)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rows := testenv.TSharkFields(t, file, nil, "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload")
	got := map[[2]netip.AddrPort][]string{}
	for _, row := range rows {
		sp, _ := strconv.Atoi(row[1])
		dp, _ := strconv.Atoi(row[3])
		k := [2]netip.AddrPort{ap(row[0], sp), ap(row[2], dp)}
		got[k] = append(got[k], row[4])
	}
	check := func(what string, src, dst netip.AddrPort, want []packet) {
		t.Helper()
		g := got[[2]netip.AddrPort{src, dst}]
		if len(g) != len(want) {
			t.Errorf("%s (%v -> %v): %d packets in the recording, want %d", what, src, dst, len(g), len(want))
			return
		}
		for i := range want {
			if g[i] != hex.EncodeToString(want[i].data) {
				t.Errorf("%s: packet %d differs from what was sent", what, i+1)
				return
			}
		}
	}
	check("a -> relay", a.rtp.local, aT.rtp, atB)
	check("relay -> b", bT.rtp, b.rtp.local, atB)
	check("b -> relay", b.rtp.local, bT.rtp, atA)
	check("relay -> a", aT.rtp, a.rtp.local, atA)
	if len(rows) != 200 {
		t.Errorf("%d packets in the recording, want 200 (50 each way, in and out)", len(rows))
	}
}

// waitState waits until both relay sockets of the call are (or are not) in
// the kernel, and still latched.
func waitState(t *testing.T, r *relayd, c *call, what string, kernel bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		sa, sb := streamKernelState(t, r, c, c.toA.port), streamKernelState(t, r, c, c.toB.port)
		if sa.kernelized == kernel && sb.kernelized == kernel {
			for _, port := range []int{c.toA.port, c.toB.port} {
				s := streamAt(t, queryStreams(t, r.query(t, c.id)), port)
				if flags, _ := s.raw["flags"].([]any); !containsAny(flags, "confirmed") {
					t.Errorf("%s: socket on port %d lost its latch: %v", what, port, flags)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: facing a %+v, facing b %+v, want kernelized=%v", what, sa, sb, kernel)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAny(list []any, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
