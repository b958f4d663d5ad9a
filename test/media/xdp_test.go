// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"slices"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// kernelState is what query says of the relay socket facing a party.
type kernelState struct {
	kernelized bool
	packets    int64 // stats.packets: every packet received from the party
	kernel     int64 // "kernel packets": the part the XDP program forwarded
}

func streamKernelState(t *testing.T, r *relayd, c *call, port int) kernelState {
	t.Helper()
	s := streamAt(t, queryStreams(t, r.query(t, c.id)), port)
	flags, _ := s.raw["flags"].([]any)
	k, _ := num(s.raw["kernel packets"])
	return kernelState{kernelized: slices.Contains(flags, any("kernelized")), packets: s.stats["packets"], kernel: k}
}

// waitKernelized waits until both relay sockets of the call are in the kernel.
func waitKernelized(t *testing.T, r *relayd, c *call) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, b := streamKernelState(t, r, c, c.toA.port), streamKernelState(t, r, c, c.toB.port)
		if a.kernelized && b.kernelized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams not handed to the kernel after latching: facing a %+v, facing b %+v", a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestXDP: calls set up over ng forward in the kernel once their peers are
// latched — the userspace socket sees no packet (every packet received is one
// the kernel forwarded), counters move, a re-INVITE takes the streams back to
// userspace and they return to the kernel — and with xdp=off everything stays
// in userspace.
func TestXDP(t *testing.T) {
	requireEnvironment(t)
	t.Parallel()
	for _, mode := range []string{"auto", "off"} {
		t.Run("xdp="+mode, func(t *testing.T) {
			dir := testenv.ArtifactDir(t, "MEDIA_ARTIFACTS")
			tp := newTopology(t)
			r := startRelayd(t, tp, dir, "--timeout=20", "--xdp="+mode)
			a, b := newParty(t, tp.a, "a", partyA4), newParty(t, tp.b, "b", partyB4)
			c := setupCall(t, r, a, b, callOptions{})
			aT, bT := target(relayExt4, c.toA), target(relayInt4, c.toB)
			// Latch both sides in userspace.
			exchange(t, "latch", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
			if mode == "off" {
				time.Sleep(time.Second)
				exchange(t, "after", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
				for _, port := range []int{c.toA.port, c.toB.port} {
					if s := streamKernelState(t, r, c, port); s.kernelized || s.kernel != 0 || s.packets != 60 {
						t.Errorf("xdp=off: stream on port %d %+v, want 60 userspace packets and no kernel", port, s)
					}
				}
				if n := currentStatistic(t, r, "media_kernel"); n != 0 {
					t.Errorf("xdp=off: media_kernel %d", n)
				}
				return
			}
			waitKernelized(t, r, c)
			before := streamKernelState(t, r, c, c.toA.port)
			exchange(t, "kernel", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 100)
			after := streamKernelState(t, r, c, c.toA.port)
			if after.packets-before.packets != 100 || after.kernel-before.kernel != 100 {
				t.Errorf("socket facing a: before %+v after %+v: want all 100 new packets forwarded by the kernel", before, after)
			}
			// RTCP stays with the userspace loop, which reads the parties'
			// reports (MOS): the kernel passes it up even from a latched
			// stream, and the loop forwards it.
			exchange(t, "RTCP latch", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 10)
			time.Sleep(300 * time.Millisecond) // any rule for the RTCP streams is in by now
			exchange(t, "RTCP", true, a.rtcp, aT.rtcp, b.rtcp, bT.rtcp, 20)
			if s := streamKernelState(t, r, c, c.toA.rtcpPort); s.kernel != 0 || s.packets != 30 {
				t.Errorf("RTCP socket facing a: %+v, want its 30 packets in userspace and none in the kernel", s)
			}
			if n := currentStatistic(t, r, "media_kernel"); n < 2 {
				t.Errorf("statistics media_kernel %d, want >= 2", n)
			}
			if n := totalStatistic(t, r.statistics(t), "relayedpackets_kernel"); n < 200 {
				t.Errorf("statistics relayedpackets_kernel %d, want >= 200", n)
			}

			// A re-INVITE takes both streams back to userspace (learning
			// restarts); media keeps flowing and returns to the kernel.
			r.must(t, offerReq(c.id, c.aTag, a.spec(2), nil, map[string]any{"to-tag": c.bTag}))
			if s := streamKernelState(t, r, c, c.toA.port); s.kernelized {
				t.Errorf("still in the kernel right after the re-INVITE: %+v", s)
			}
			exchange(t, "re-INVITE", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 10)
			waitKernelized(t, r, c)
			before = streamKernelState(t, r, c, c.toA.port)
			exchange(t, "kernel again", false, a.rtp, aT.rtp, b.rtp, bT.rtp, 50)
			after = streamKernelState(t, r, c, c.toA.port)
			if after.kernel-before.kernel != 50 {
				t.Errorf("after the re-INVITE: before %+v after %+v, want 50 more kernel packets", before, after)
			}
		})
	}
}

func currentStatistic(t *testing.T, r *relayd, key string) int64 {
	t.Helper()
	stats, _ := r.statistics(t)["statistics"].(map[string]any)
	cur, _ := stats["currentstatistics"].(map[string]any)
	n, ok := num(cur[key])
	if !ok {
		t.Fatalf("statistics has no currentstatistics.%s: %v", key, cur)
	}
	return n
}
