// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/media"
)

// stagePath drives a bridge's stages the way a media worker does (a
// media.Packet handed to RTPStage) and waits for its pool worker, which
// transcodes and hands the result to the far side's stream with Deliver;
// the media engine sends it on a real socket.
type stagePath struct {
	call   *bridgeCall
	w      *worker
	pkts   [2][][]byte
	clocks [2]int
	n      [2]int
	sent   uint64 // packets handed over and accepted
}

func newStagePath(t testing.TB, a, b Format) *stagePath {
	t.Helper()
	e := testEngine(t, media.Config{})
	pool := testPool(t, PoolConfig{Workers: 1})
	call := attachCall(t, e, pool, relayPorts(t), BridgeConfig{Sides: [2]BridgeSide{{Leg: leg(a)}, {Leg: leg(b)}}},
		[2]bool{true, true}, false)
	sp := &stagePath{call: call, w: call.b.w}
	for i, f := range []Format{a, b} {
		s := newSender(t, f, "", 20, sourceRate(f))
		sp.pkts[i] = s.audio(speechLike(sourceRate(f), sourceRate(f)))
		sp.clocks[i] = s.clock
	}
	return sp
}

// send hands side s's next 20 ms packet to its stage, waiting while the
// worker has more than inflight packets to go (a full queue would drop).
func (sp *stagePath) send(s, inflight int) {
	i := sp.n[s]
	sp.n[s]++
	p := sp.pkts[s][i%len(sp.pkts[s])]
	binary.BigEndian.PutUint16(p[2:], uint16(i))
	binary.BigEndian.PutUint32(p[4:], uint32(i*sp.clocks[s]/50))
	pkt := media.Packet{Data: p, Kind: media.KindRTP, NowNs: time.Now().UnixNano()}
	for sp.sent-sp.w.cnt[kIn].Load() >= uint64(inflight) {
		runtime.Gosched()
	}
	if sp.call.b.RTPStage(s).Handle(&pkt) == media.Consume {
		sp.sent++
	}
}

func (sp *stagePath) wait() {
	for sp.w.cnt[kIn].Load() < sp.sent {
		runtime.Gosched()
	}
}

// BenchmarkBridge is one 20 ms packet through the transcoded leg: the
// stage's copy into the worker's queue, the worker's wake-up, parsing, the
// receive statistics, transcoding, and Deliver's copy into the media
// worker's queue (whose sendto runs on the media worker). Pipelined up to 8
// packets, as a loaded relay runs it: ns/op is what the pool worker spends
// per packet; "⇄" alternates the directions (one call's mean).
func BenchmarkBridge(b *testing.B) {
	for _, pr := range [][2]Format{{fG722, fPCMU}, {fOpus, fPCMU}} {
		if hasOpus(pr[0], pr[1]) && !opusBuilt {
			b.Logf("%s: opus unavailable in this build", pr[0].Name)
			continue
		}
		sp := newStagePath(b, pr[0], pr[1])
		for _, dir := range []struct {
			name  string
			sides []int
		}{
			{pr[0].Name + "→" + pr[1].Name, []int{0}},
			{pr[1].Name + "→" + pr[0].Name, []int{1}},
			{pr[0].Name + "⇄" + pr[1].Name, []int{0, 1}},
		} {
			b.Run(dir.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					sp.send(dir.sides[i%len(dir.sides)], 8)
					i++
				}
				sp.wait()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/packet")
			})
		}
		// The media worker's sends share the 2 CPUs; when it falls behind,
		// its queue refuses (Deliver fails, counted): say so with the figures.
		if st := sp.call.b.Stats(); st.Sides[0].Errors.Total()+st.Sides[1].Errors.Total() != 0 {
			b.Logf("%s⇄%s errors: %v %v", pr[0].Name, pr[1].Name, st.Sides[0].Errors.ByReason(), st.Sides[1].Errors.ByReason())
		}
	}
}

// The stage and the worker allocate nothing per packet in the steady state,
// whichever goroutine would (the count is the process's).
func TestBridgeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts: the race detector allocates in time.Sleep")
	}
	pairs := [][2]Format{{fG722, fPCMU}, {fPCMU, fPCMA}}
	if opusBuilt {
		pairs = append(pairs, [2]Format{fOpus, fPCMU})
	}
	for _, pr := range pairs {
		sp := newStagePath(t, pr[0], pr[1])
		// One packet at a time, with a pause for the media worker's send:
		// faster, the engine's queue of datagrams to send (256) overflows.
		step := func(i int) {
			sp.send(i%2, 1)
			sp.wait()
			time.Sleep(200 * time.Microsecond)
		}
		for i := range 200 { // warm up: the report timers start, buffers grow
			step(i)
		}
		i := 0
		n := testing.AllocsPerRun(400, func() {
			step(i)
			i++
		})
		if n > 0.01 {
			t.Errorf("%s⇄%s: %.3f allocations per packet", pr[0].Name, pr[1].Name, n)
		}
		if out := sp.call.b.Stats().Sides[1].Out; out < 300 {
			t.Errorf("%s⇄%s: only %d packets out: %+v", pr[0].Name, pr[1].Name, out, sp.call.b.Stats())
		}
	}
}
