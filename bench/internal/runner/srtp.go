// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bench/internal/sdes"
)

// forgeSeq is the sequence number of the one packet per SRTP caller sent
// with a broken authentication tag: 100 ms into the call at 50 packets/s,
// after the relay has latched and well before any measurement window (the
// warm-up is longer), so it never counts as loss.
const forgeSeq = 5

// srtpState is what a relay instance did with SRTP calls, for the checks.
type srtpState struct {
	base gen.SRTPTotals // the generator's SRTP counters when the instance started

	mu sync.Mutex
	// calls were set up with SRTP on the caller's leg; sameKey of them
	// were answered with the caller's own key instead of the relay's.
	calls, sameKey int
}

// srtpLoads measures every fixed load with the caller's leg of every call
// SDES-SRTP, once per suite, and profiles the first suite under load.
func (s *session) srtpLoads(ctx context.Context) error {
	cfg := s.e.cfg
	loads := slices.Clone(cfg.SRTPCalls)
	slices.Sort(loads)
	for i, suite := range cfg.SRTPSuites {
		if err := s.useSuite(ctx, suite); err != nil {
			return err
		}
		for _, n := range loads {
			if err := s.ensureCalls(ctx, n); err != nil {
				if fatal(ctx, err) {
					return err
				}
				s.e.warn("%s rep %d: SRTP (%s) loads stop at %d calls: %v", s.spec.Name, s.rep, suite, n, err)
				s.e.run.Checks = append(s.e.run.Checks, report.Check{Relay: s.spec.Name, Rep: s.rep,
					Name: fmt.Sprintf("set up %d SRTP calls (%s)", n, suite), OK: false, Detail: err.Error()})
				break
			}
			p, err := s.measure(ctx, ModeSRTP)
			if err != nil {
				return err
			}
			s.e.run.Points = append(s.e.run.Points, p)
		}
		if cfg.Profile && s.rep == 1 && i == 0 {
			if err := s.profile(ctx, cfg.ProfileCalls); err != nil {
				s.e.warn("%s: SRTP profile: %v", s.spec.Name, err)
			}
		}
	}
	return s.useSuite(ctx, "")
}

// useSuite makes the calls set up from now on SRTP with suite ("": plain),
// first removing live calls of another kind.
func (s *session) useSuite(ctx context.Context, suite string) error {
	return s.useKind(ctx, suite, nil)
}

// useKind makes the calls set up from now on SRTP with suite ("": plain)
// or transcoded calls of m's pair (nil: not transcoded), first removing
// live calls of another kind.
func (s *session) useKind(ctx context.Context, suite string, m *tcMedia) error {
	if suite == s.suite && m == s.pair {
		return nil
	}
	if err := s.removeCalls(ctx, s.live); err != nil {
		return err
	}
	s.live = nil
	s.suite, s.pair = suite, m
	return nil
}

// keyCall gives a call of an SRTP session its caller's key.
func (s *session) keyCall(c *calls.Call) error {
	if s.suite == "" {
		return nil
	}
	suite, err := sdes.Lookup(s.suite)
	if err != nil {
		return err
	}
	k, err := sdes.NewKey(suite)
	if err != nil {
		return err
	}
	c.SRTP = &calls.SRTP{Local: k}
	return nil
}

// reset starts the figures of a new relay instance.
func (st *srtpState) reset(base gen.SRTPTotals) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.base, st.calls, st.sameKey = base, 0, 0
}

// srtpCall is the generator's keying of a set-up call (nil when plain).
func (s *session) srtpCall(c *calls.Call) *gen.SRTPCall {
	if c.SRTP == nil {
		return nil
	}
	s.srtp.mu.Lock()
	s.srtp.calls++
	if c.SRTP.Relay.Equal(c.SRTP.Local) {
		s.srtp.sameKey++
	}
	s.srtp.mu.Unlock()
	return &gen.SRTPCall{Send: c.SRTP.Local, Recv: c.SRTP.Relay, Forge: forgeSeq}
}

// srtpChecks records what the instance's SRTP calls showed: that the relay
// decrypted the caller's packets (they reached the plain callee intact),
// encrypted towards the caller with the key it announced, authenticated
// (the forged packets went nowhere) and keyed its leg itself.
func (s *session) srtpChecks(add func(name string, ok bool, detail string)) {
	s.srtp.mu.Lock()
	n, same := s.srtp.calls, s.srtp.sameKey
	s.srtp.mu.Unlock()
	if n == 0 {
		return
	}
	d := s.e.gen.SRTPTotals().Sub(s.srtp.base)
	add("SRTP: the relay encrypts towards the SRTP caller with the key it announced", d.AuthFailed == 0 && d.PlainOnSRTP == 0 && d.Decrypted > 0,
		fmt.Sprintf("%d packets decrypted and authenticated with the key of the relay's answer; %d failed to authenticate, %d arrived in the clear", d.Decrypted, d.AuthFailed, d.PlainOnSRTP))
	add("SRTP: payloads intact across decryption", d.Corrupt == 0,
		fmt.Sprintf("%d packets of %d SRTP calls with a damaged payload (%d encrypted by the callers)", d.Corrupt, n, d.Encrypted))
	add("SRTP: packets with a forged tag dropped", d.ForgedPassed == 0 && d.ForgedSent > 0,
		fmt.Sprintf("%d of %d caller packets with a broken authentication tag reached the callee", d.ForgedPassed, d.ForgedSent))
	add("SRTP: the relay keys its own leg", same == 0,
		fmt.Sprintf("%d of %d calls answered with the caller's own key", same, n))
}
