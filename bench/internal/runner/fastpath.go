// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
	"github.com/relayd/relayd/bpf"
)

// attachCeiling hooks the bare rewrite-and-bounce program into the relay's
// interfaces (a ceiling entry: relayd only allocates ports and rewrites
// SDP). It runs before any call carries media.
func (s *session) attachCeiling() error {
	mode := bpf.ModeGeneric
	if s.spec.Ceiling == "native" {
		mode = bpf.ModeNative
	}
	c, err := bpf.OpenCeiling()
	if err != nil {
		return fmt.Errorf("%s: %w", s.spec.Name, err)
	}
	var names []string
	for _, side := range s.e.topo.Sides {
		if !slices.Contains(names, side.Dev) {
			names = append(names, side.Dev)
		}
	}
	err = netns.Do(netns.Path(s.e.topo.RelayNS), func() error {
		for _, name := range names {
			ifc, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			if err := c.Attach(ifc.Index, mode); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = c.Close()
		return fmt.Errorf("%s: attach the bounce program to %v: %w", s.spec.Name, names, err)
	}
	s.ceiling = c
	return nil
}

// pinnedRules opens the running relayd's rule table. relayd pins under
// /sys/fs/bpf/relayd in its own mount namespace (`ip netns exec` gives it
// one, with a bpffs it mounted itself), reached through /proc/PID/root.
func (s *session) pinnedRules() (*bpf.PinnedRules, error) {
	return bpf.OpenPinnedRules("/proc/" + strconv.Itoa(s.proc.PID()) + "/root" + bpf.DefaultPinPath)
}

// scaling measures the fast path at ScalingCalls calls with the rule table
// grown to each InstalledStreams size by filler rules: local addresses in
// 198.18.0.0/15 (RFC 2544's benchmark range, on no interface), so no
// packet ever matches them, but every lookup of the real streams searches
// a table that big. The fillers are removed again after each size, and
// relayd clears whatever a killed bench would leave at its next start.
func (s *session) scaling(ctx context.Context) error {
	if err := s.ensureCalls(ctx, s.e.cfg.ScalingCalls); err != nil {
		return err
	}
	// Give every stream time to latch and go to the kernel, and the relay
	// time to settle after the setups.
	if err := sleep(ctx, s.e.cfg.Warmup+2*time.Second); err != nil {
		return err
	}
	rules, err := s.pinnedRules()
	if err != nil {
		return err
	}
	defer rules.Close()
	own, err := rules.Count()
	if err != nil {
		return err
	}
	ifindex, err := s.relayIfindex()
	if err != nil {
		return err
	}
	// Every size twice, up then down (1k 10k 100k 100k 10k 1k): a relay
	// still settling after the setups and deletes before (CPU per packet
	// drifting down by ~10 % over the first windows) then weighs on every
	// size alike instead of reading as a trend with table size.
	sizes := slices.Clone(s.e.cfg.InstalledStreams)
	slices.Sort(sizes)
	down := slices.Clone(sizes)
	slices.Reverse(down)
	sizes = append(sizes, down...)
	for _, n := range sizes {
		if n > rules.Capacity() {
			s.e.warn("%s: %d installed streams exceed the rule table's %d entries; skipped", s.spec.Name, n, rules.Capacity())
			continue
		}
		fill := fillers(max(0, n-own), ifindex)
		sp := report.ScalingPoint{Asked: n, Installed: max(n, own), Fillers: len(fill), InstallMs: math.NaN()}
		if len(fill) > 0 {
			took, err := onCPUs(s.e.cfg.RelayCPUs, func() error {
				_, err := rules.Upsert(fill)
				return err
			})
			if err != nil {
				removeFillers(rules, fill)
				return fmt.Errorf("install %d filler rules: %w", len(fill), err)
			}
			sp.InstallMs = float64(took.Microseconds()) / 1e3
		}
		p, err := s.measure(ctx, ModeScaling)
		if got, cerr := rules.Count(); cerr == nil {
			sp.Installed = got
		}
		removeFillers(rules, fill)
		if err != nil {
			return err
		}
		sp.Point = p
		s.e.run.Scaling = append(s.e.run.Scaling, sp)
	}
	return nil
}

// onCPUs runs fn on a thread moved to cpus for the call and reports how
// long fn took: relayd installs its rules from the relay's CPUs, which the
// streams mode leaves mostly idle, while the bench's own are busy
// generating media.
func onCPUs(cpus []int, fn func() error) (time.Duration, error) {
	if len(cpus) == 0 {
		t0 := time.Now()
		err := fn()
		return time.Since(t0), err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		return 0, fmt.Errorf("read affinity: %w", err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return 0, fmt.Errorf("move to CPUs %v: %w", cpus, err)
	}
	// The thread returns to the pool as it came.
	defer func() { _ = unix.SchedSetaffinity(0, &orig) }()
	t0 := time.Now()
	err := fn()
	return time.Since(t0), err
}

// relayIfindex is the ifindex of the relay's first interface, which the
// fillers name as their egress (they are never used).
func (s *session) relayIfindex() (int, error) {
	var idx int
	err := netns.Do(netns.Path(s.e.topo.RelayNS), func() error {
		ifc, err := net.InterfaceByName(s.e.topo.Sides[0].Dev)
		if err == nil {
			idx = ifc.Index
		}
		return err
	})
	return idx, err
}

// fillers returns n rules whose local addresses are on no interface.
func fillers(n, ifindex int) []bpf.Rule {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	out := make([]bpf.Rule, n)
	for i := range out {
		// 2^17 addresses × 16 ports: unique for any table size.
		a := netip.AddrFrom4([4]byte{198, 18 + byte(i>>20&1), byte(i >> 12), byte(i >> 4)})
		port := uint16(20000 + i&0xf)
		out[i] = bpf.Rule{
			Local: netip.AddrPortFrom(a, port), Peer: netip.AddrPortFrom(a, port+1),
			Source: netip.AddrPortFrom(a, port+2), Dest: netip.AddrPortFrom(a, port+3),
			NextHop: bpf.NextHop{Ifindex: ifindex, SrcMAC: mac, DstMAC: mac},
			Flags:   bpf.FlagCheckSource | bpf.FlagRTPCheck,
		}
	}
	return out
}

func removeFillers(rules *bpf.PinnedRules, fill []bpf.Rule) {
	locals := make([]netip.AddrPort, len(fill))
	for i, r := range fill {
		locals[i] = r.Local
	}
	_, _ = rules.Remove(locals)
}

// scales says whether the streams mode applies: a relayd fast path, whose
// rule table the bench can grow.
func scales(spec relay.Spec) bool {
	return spec.Kind == relay.Relayd && spec.ExpectKernel
}
