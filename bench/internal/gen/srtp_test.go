// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/sdes"
)

// relayBehaviour is what the test's SRTP-to-RTP relay does wrong, if
// anything.
type relayBehaviour int

const (
	terminates  relayBehaviour = iota // decrypts from the caller, encrypts to it with its own key
	passThrough                       // forwards both ways untouched
	wrongKey                          // encrypts to the caller with a key it did not announce
	noAuth                            // forwards the caller's packets even when the tag is broken
	garbles                           // decrypts with the right key but damages the payload
)

// testRelay bridges one call on loopback: an SRTP caller on one socket, a
// plain callee on the other, like a relay terminating SDES-SRTP per leg.
type testRelay struct {
	toCaller, toCallee *net.UDPConn
	wg                 sync.WaitGroup
}

func startTestRelay(t *testing.T, b relayBehaviour, callerKey, relayKey sdes.Key, caller, callee netip.AddrPort) *testRelay {
	t.Helper()
	r := &testRelay{}
	var err error
	if r.toCaller, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if r.toCallee, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	in, err := callerKey.Context()
	if err != nil {
		t.Fatal(err)
	}
	outKey := relayKey
	if b == wrongKey {
		outKey, _ = sdes.NewKey(relayKey.Suite)
	}
	out, err := outKey.Context()
	if err != nil {
		t.Fatal(err)
	}
	forward := func(from, to *net.UDPConn, dst netip.AddrPort, f func([]byte) []byte) {
		defer r.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, err := from.Read(buf)
			if err != nil {
				return
			}
			if p := f(append([]byte(nil), buf[:n]...)); p != nil {
				_, _ = to.WriteToUDPAddrPort(p, dst)
			}
		}
	}
	r.wg.Add(2)
	go forward(r.toCaller, r.toCallee, callee, func(p []byte) []byte {
		if b == passThrough {
			return p
		}
		dec, err := in.DecryptRTP(nil, p, nil)
		if err != nil && b == noAuth {
			p[len(p)-1] ^= 0x5a // undo the generator's forgery, as if the tag had not been checked
			dec, err = in.DecryptRTP(nil, p, nil)
		}
		if err != nil {
			return nil
		}
		if b == garbles {
			dec[len(dec)-1] ^= 1
		}
		return dec
	})
	go forward(r.toCallee, r.toCaller, caller, func(p []byte) []byte {
		if b == passThrough {
			return p
		}
		enc, err := out.EncryptRTP(nil, p, nil)
		if err != nil {
			return nil
		}
		return enc
	})
	t.Cleanup(func() {
		r.toCaller.Close()
		r.toCallee.Close()
		r.wg.Wait()
	})
	return r
}

func addr(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// TestSRTPLeg runs calls whose caller leg is SRTP through relays that do
// it right and relays that do not: the generator must measure the first
// exactly and catch every way the others fail.
func TestSRTPLeg(t *testing.T) {
	for _, suite := range []string{"AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"} {
		s, err := sdes.Lookup(suite)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			b    relayBehaviour
			want func(t *testing.T, r *Report, tot SRTPTotals, calls int)
		}{
			{"terminates", terminates, func(t *testing.T, r *Report, tot SRTPTotals, calls int) {
				if r.Sent == 0 || r.Received != r.Sent || r.Stray != 0 {
					t.Errorf("window: sent %d received %d stray %d, want all received", r.Sent, r.Received, r.Stray)
				}
				if tot.Failures() != 0 || tot.Encrypted == 0 || tot.Decrypted == 0 {
					t.Errorf("SRTP totals %+v, want traffic and no failures", tot)
				}
				if tot.ForgedSent != uint64(calls) {
					t.Errorf("forged %d packets, want one per call (%d)", tot.ForgedSent, calls)
				}
			}},
			{"pass-through", passThrough, func(t *testing.T, r *Report, tot SRTPTotals, calls int) {
				if r.Received != 0 || r.Stray == 0 || tot.PlainOnSRTP == 0 {
					t.Errorf("received %d, stray %d, plain on the SRTP leg %d: want nothing received, ciphertext at the callee and clear text at the caller",
						r.Received, r.Stray, tot.PlainOnSRTP)
				}
			}},
			{"wrong key", wrongKey, func(t *testing.T, r *Report, tot SRTPTotals, calls int) {
				if tot.AuthFailed == 0 || tot.Decrypted != 0 {
					t.Errorf("SRTP totals %+v: want every packet to the caller rejected", tot)
				}
			}},
			{"no authentication", noAuth, func(t *testing.T, r *Report, tot SRTPTotals, calls int) {
				if tot.ForgedPassed != uint64(calls) {
					t.Errorf("forged packets passed %d, want %d", tot.ForgedPassed, calls)
				}
			}},
			{"garbled payload", garbles, func(t *testing.T, r *Report, tot SRTPTotals, calls int) {
				if tot.Corrupt == 0 {
					t.Errorf("SRTP totals %+v: want the damaged payloads counted", tot)
				}
			}},
		}
		for _, tc := range tests {
			t.Run(suite+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				const calls = 3
				g := newLoopGen(t, calls, 1)
				var slots []CallSlot
				for range calls {
					cs, err := g.Allocate()
					if err != nil {
						t.Fatal(err)
					}
					callerKey, _ := sdes.NewKey(s)
					relayKey, _ := sdes.NewKey(s)
					r := startTestRelay(t, tc.b, callerKey, relayKey, cs.Caller, cs.Callee)
					sec := &SRTPCall{Send: callerKey, Recv: relayKey, Forge: 3}
					if err := g.ActivateSRTP(cs, addr(r.toCaller), addr(r.toCallee), 8, sec); err != nil {
						t.Fatal(err)
					}
					slots = append(slots, cs)
				}
				before := g.SRTPTotals()
				time.Sleep(100 * time.Millisecond)
				g.BeginWindow(time.Now())
				time.Sleep(500 * time.Millisecond)
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
				tc.want(t, r, g.SRTPTotals().Sub(before), calls)
			})
		}
	}
}

// TestSRTPSlotReuse makes sure a slot that carried an SRTP call carries a
// plain one afterwards (and the other way round) without its old key.
func TestSRTPSlotReuse(t *testing.T) {
	g := newLoopGen(t, 1, 1)
	s, _ := sdes.Lookup("AES_CM_128_HMAC_SHA1_80")
	cs, _ := g.Allocate()
	callerKey, _ := sdes.NewKey(s)
	relayKey, _ := sdes.NewKey(s)
	r := startTestRelay(t, terminates, callerKey, relayKey, cs.Caller, cs.Callee)
	if err := g.ActivateSRTP(cs, addr(r.toCaller), addr(r.toCallee), 8, &SRTPCall{Send: callerKey, Recv: relayKey}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	g.Deactivate(cs)
	time.Sleep(50 * time.Millisecond)
	g.Release(cs)
	cs, _ = g.Allocate()
	if err := g.Activate(cs, cs.Callee, cs.Caller, 8); err != nil {
		t.Fatal(err)
	}
	before := g.SRTPTotals()
	time.Sleep(50 * time.Millisecond)
	g.BeginWindow(time.Now())
	time.Sleep(300 * time.Millisecond)
	g.EndWindow(time.Now())
	time.Sleep(50 * time.Millisecond)
	rep, err := g.Report(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent == 0 || rep.Received != rep.Sent {
		t.Errorf("plain call after an SRTP one: sent %d received %d", rep.Sent, rep.Received)
	}
	if d := g.SRTPTotals().Sub(before); d != (SRTPTotals{}) {
		t.Errorf("a plain call moved the SRTP counters: %+v", d)
	}
}
