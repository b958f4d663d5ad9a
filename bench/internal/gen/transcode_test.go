// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/pkg/transcode"
)

// tcBehaviour is what the test's transcoding relay does, right or wrong.
type tcBehaviour int

// relayLagSkip is how far behind its input the test's relay may fall
// before a subtest's counts are not judged.
const relayLagSkip = 15 * time.Millisecond

const (
	transcodes tcBehaviour = iota // decodes and re-encodes both ways
	forwards                      // passes both ways untouched
	mirrors                       // sends each party its own packets back
	dropsTenth                    // transcodes, and loses every tenth packet it made
	slowStart                     // transcodes, but holds its first packet each way 25 ms
	conceals                      // loses every tenth packet before its decoder, which conceals it
)

// startTranscodingRelay bridges one call on loopback as a transcoding relay
// would, with relayd's own transcoder (pkg/transcode), and returns where
// the caller and the callee must send. lag keeps the most the relay fell
// behind its input's media clock, beyond what the behaviour meant to: on a
// busy machine (the race detector, other programs) the relay is starved
// and the exact counts mean nothing.
func startTranscodingRelay(t *testing.T, b tcBehaviour, p audio.Pair, cs CallSlot, lag *atomic.Int64) (toCaller, toCallee netip.AddrPort) {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	fromCaller, fromCallee := listen(), listen()
	leg := func(c audio.Codec) transcode.Leg {
		return transcode.Leg{Format: transcode.Format{Name: c.Name, ClockRate: c.Clock, Channels: c.Channels}, PT: uint8(c.PT)}
	}
	newTr := func(in, out audio.Codec, ssrc uint32) *transcode.Transcoder {
		tr, err := transcode.NewTranscoder(transcode.Config{In: leg(in), Out: leg(out), SSRC: ssrc, Seq: 40000, TS: 1 << 31})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	var wg sync.WaitGroup
	run := func(in, out *net.UDPConn, self, dst netip.AddrPort, tr *transcode.Transcoder, clock int) {
		defer wg.Done()
		buf := make([]byte, 2048)
		n := 0
		var start time.Time
		var ts0 uint32
		for {
			k, err := in.Read(buf)
			if err != nil {
				return
			}
			n++
			pkt := buf[:k]
			if k >= 12 {
				now, ts := time.Now(), binary.BigEndian.Uint32(pkt[4:8])
				if n == 1 {
					start, ts0 = now, ts
				} else {
					media := time.Duration(int32(ts-ts0)) * time.Second / time.Duration(clock)
					late := now.Sub(start) - media
					if b == slowStart {
						late -= 25 * time.Millisecond
					}
					for {
						old := lag.Load()
						if int64(late) <= old || lag.CompareAndSwap(old, int64(late)) {
							break
						}
					}
				}
			}
			switch b {
			case forwards:
				_, _ = out.WriteToUDPAddrPort(pkt, dst)
				continue
			case mirrors:
				_, _ = in.WriteToUDPAddrPort(pkt, self)
				continue
			case conceals:
				if n%10 == 5 {
					continue
				}
			case slowStart:
				if n == 1 {
					time.Sleep(25 * time.Millisecond)
				}
			}
			outs, err := tr.Process(pkt, nil)
			if err != nil {
				t.Errorf("transcoder: %v", err)
				return
			}
			for _, o := range outs {
				if b == dropsTenth && n%10 == 5 {
					continue
				}
				_, _ = out.WriteToUDPAddrPort(o, dst)
			}
		}
	}
	wg.Add(2)
	go run(fromCaller, fromCallee, cs.Caller, cs.Callee, newTr(p.Caller, p.Callee, 0x1234), p.Caller.Clock)
	go run(fromCallee, fromCaller, cs.Callee, cs.Caller, newTr(p.Callee, p.Caller, 0x5678), p.Callee.Clock)
	t.Cleanup(func() {
		fromCaller.Close()
		fromCallee.Close()
		wg.Wait()
	})
	return addr(fromCaller), addr(fromCallee)
}

func newTCGen(t *testing.T, calls int) *Generator {
	t.Helper()
	g, err := New(Config{
		Sides: [2]Side{
			{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}},
			{Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.4")}},
		},
		MaxCalls: calls, PPS: 50, Run: 0x7c, Transcode: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	return g
}

// TestTranscodedCalls runs transcoded calls through relays that transcode
// and relays that do not: the generator must measure the first exactly
// (loss, latency, the content of both directions) and catch the others.
func TestTranscodedCalls(t *testing.T) {
	type result struct {
		r   *Report
		tot TranscodeTotals
	}
	tests := []struct {
		name  string
		b     tcBehaviour
		exact bool // judges exact counts or ties
		want  func(t *testing.T, x result, calls int)
	}{
		{"transcodes", transcodes, true, func(t *testing.T, x result, calls int) {
			if x.r.Sent == 0 || x.r.Received != x.r.Sent || x.r.Duplicates != 0 || x.r.Stray != 0 {
				t.Errorf("window: sent %d received %d duplicates %d stray %d, want all received once", x.r.Sent, x.r.Received, x.r.Duplicates, x.r.Stray)
			}
			if x.r.Latency.Count() == 0 || x.r.Latency.Quantile(0.5) > 20e6 {
				t.Errorf("latency: %d samples, median %.0f ns", x.r.Latency.Count(), x.r.Latency.Quantile(0.5))
			}
			if x.tot.WrongPT+x.tot.Unmatched+x.tot.Failed[0]+x.tot.Failed[1] != 0 {
				t.Errorf("totals %+v, want no wrong payload type, unmatched packet or failed check", x.tot)
			}
			if x.tot.Passed[0] < uint64(calls) || x.tot.Passed[1] < uint64(calls) {
				t.Errorf("checks passed %v, want at least one per call each way", x.tot.Passed)
			}
		}},
		{"passes through", forwards, false, func(t *testing.T, x result, calls int) {
			if x.r.Received != 0 || x.tot.WrongPT == 0 {
				t.Errorf("received %d, wrong payload type %d: want nothing received, every packet in the wrong codec", x.r.Received, x.tot.WrongPT)
			}
		}},
		{"mirrors", mirrors, false, func(t *testing.T, x result, calls int) {
			if x.tot.Failed[0] == 0 || x.tot.Failed[1] == 0 || x.tot.Passed[0]+x.tot.Passed[1] != 0 || x.tot.Failure == "" {
				t.Errorf("checks passed %v failed %v (%q): want every check to fail", x.tot.Passed, x.tot.Failed, x.tot.Failure)
			}
		}},
		{"drops a tenth", dropsTenth, true, func(t *testing.T, x result, calls int) {
			if l := x.r.Loss(); l < 0.07 || l > 0.13 {
				t.Errorf("loss %.3f, want about 0.1 (sent %d received %d)", l, x.r.Sent, x.r.Received)
			}
		}},
		{"slow first packet", slowStart, true, func(t *testing.T, x result, calls int) {
			if x.r.Received != x.r.Sent || x.tot.Unmatched != 0 {
				t.Errorf("sent %d received %d unmatched %d: a late start must not shift the stream", x.r.Sent, x.r.Received, x.tot.Unmatched)
			}
			if x.tot.Retied == 0 {
				t.Errorf("the late first packet was tied one packet too late and never moved back: %+v", x.tot)
			}
		}},
		{"conceals", conceals, true, func(t *testing.T, x result, calls int) {
			// What a receiver cannot see (the runner asks the relay).
			if x.r.Received != x.r.Sent {
				t.Errorf("sent %d received %d: concealed packets arrive like the lost ones", x.r.Sent, x.r.Received)
			}
		}},
	}
	for _, p := range audio.Pairs() {
		if err := p.Available(); err != nil {
			if errors.Is(err, transcode.ErrCodecUnavailable) && os.Getenv("RELAYD_WANT_OPUS") == "" {
				t.Logf("%s: %v", p.Name, err)
				continue
			}
			t.Fatal(err)
		}
		caller, err := audio.Encode(p.Caller, audio.CallerTone)
		if err != nil {
			t.Fatal(err)
		}
		callee, err := audio.Encode(p.Callee, audio.CalleeTone)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			// One at a time: the relays' codecs run in the test, and a
			// generator starved of CPU skips packets (then the exact
			// counts are not checked).
			t.Run(p.Name+"/"+tc.name, func(t *testing.T) {
				const calls = 3
				g := newTCGen(t, calls)
				var slots []CallSlot
				var lag atomic.Int64
				for range calls {
					cs, err := g.Allocate()
					if err != nil {
						t.Fatal(err)
					}
					toCaller, toCallee := startTranscodingRelay(t, tc.b, p, cs, &lag)
					call := &TranscodeCall{Caller: caller, Callee: callee, CallerPT: p.Caller.PT, CalleePT: p.Callee.PT}
					if err := g.ActivateTranscode(cs, toCaller, toCallee, call); err != nil {
						t.Fatal(err)
					}
					slots = append(slots, cs)
				}
				before := g.TranscodeTotals()
				time.Sleep(200 * time.Millisecond)
				g.BeginWindow(time.Now())
				time.Sleep(600 * time.Millisecond)
				g.EndWindow(time.Now())
				time.Sleep(100 * time.Millisecond)
				for _, cs := range slots {
					g.Deactivate(cs)
				}
				time.Sleep(50 * time.Millisecond)
				r, err := g.Report(context.Background(), slots)
				if err != nil {
					t.Fatal(err)
				}
				if r.Skipped > 0 {
					t.Skipf("the generator fell %.0f ms behind and skipped %d packets (a busy machine): counts not comparable", r.MaxLagMs, r.Skipped)
				}
				// The window's packets get 100 ms to arrive, and a relay
				// late by more than a packet interval ties its output to
				// the wrong packet sent: the exact counts are judged only
				// when the relay kept up (a generator sending late delays
				// the relay's input as much, and shifts nothing).
				l := time.Duration(lag.Load()) - time.Duration(r.MaxLagMs*float64(time.Millisecond))
				if tc.exact && l > relayLagSkip {
					t.Skipf("the test's relay fell %v behind its input (a busy machine): counts not comparable", l.Round(time.Millisecond))
				}
				tc.want(t, result{r, g.TranscodeTotals().Sub(before)}, calls)
			})
		}
	}
}

// TestTranscodeNeedsConfig refuses a transcoded call on a generator whose
// sockets cannot tell them apart.
func TestTranscodeNeedsConfig(t *testing.T) {
	g := newLoopGen(t, 1, 1)
	cs, _ := g.Allocate()
	f, err := audio.Encode(audio.PCMU, audio.CalleeTone)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ActivateTranscode(cs, cs.Callee, cs.Caller, &TranscodeCall{Caller: f, Callee: f}); err == nil {
		t.Fatal("a transcoded call was accepted without Config.Transcode")
	}
}
