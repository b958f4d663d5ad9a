// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"time"
)

// Sample is one reading of every CPU counter the bench uses.
type Sample struct {
	At   time.Time
	CPUs map[int]CPUTimes
	// Relay holds the times of the relay's processes and kernel threads
	// (its NAPI threads), by PID.
	Relay map[int]ProcTimes
	// Gen holds the bench's own times and those of the endpoint-side
	// kernel threads, by PID.
	Gen          map[int]ProcTimes
	SoftnetDrops []uint64 // per CPU
}

// TakeSample reads /proc/stat, the times of the relay's PIDs and of the
// bench with the generator's kernel threads, and the backlog drops. The
// first relay PID must exist; the others (kernel threads) are read when
// they do.
func TakeSample(relayPIDs, genThreads []int) (Sample, error) {
	s := Sample{At: time.Now(), Relay: map[int]ProcTimes{}, Gen: map[int]ProcTimes{}}
	var err error
	if s.CPUs, err = ReadCPUs(); err != nil {
		return s, err
	}
	for i, pid := range relayPIDs {
		t, err := ReadProc(pid)
		if err != nil {
			if i == 0 {
				return s, err
			}
			continue
		}
		s.Relay[pid] = t
	}
	self, err := ReadProc(0)
	if err != nil {
		return s, err
	}
	s.Gen[0] = self
	for _, pid := range genThreads {
		if t, err := ReadProc(pid); err == nil {
			s.Gen[pid] = t
		}
	}
	s.SoftnetDrops, _ = ReadSoftnetDrops() // informative only
	return s, nil
}

// Accounting says which CPUs belong to whom.
type Accounting struct {
	RelayCPUs, GenCPUs []int
	NumCPU             int
}

// Exclusive reports whether relay and generator run on disjoint, non-empty
// CPU sets, which makes a CPU's busy time attributable to one of them.
func (a Accounting) Exclusive() bool {
	if len(a.RelayCPUs) == 0 || len(a.GenCPUs) == 0 {
		return false
	}
	for _, r := range a.RelayCPUs {
		for _, g := range a.GenCPUs {
			if r == g {
				return false
			}
		}
	}
	return true
}

// Usage is the CPU time spent between two samples.
type Usage struct {
	Wall time.Duration
	// RelayProc is the relay process's own user+system time.
	RelayProc time.Duration
	// RelaySoftirq is softirq time on the relay's CPUs (all CPUs when they
	// are shared): receive and transmit processing of its packets.
	RelaySoftirq time.Duration
	// Relay is the figure the bench reports: the process (and its kernel
	// threads) plus the softirq time of its CPUs, within bounds. The
	// process time is exact: the kernel scales a task's sampled user and
	// system ticks to its scheduler runtime. Softirq and per-CPU busy time
	// are tick samples (HZ=250), and biased both ways: softirq work done
	// while the relay runs is charged to the relay and to the softirq
	// column, so adding them double counts; and with a tickless idle a CPU
	// that wakes for bursts of microseconds is rarely sampled busy, so busy
	// time under-counts a lightly loaded relay. Relay is therefore
	// max(process, min(process + softirq, busy)): never less than the
	// exact process time, never more than the CPU's busy time unless the
	// process alone exceeds it; other programs on a shared machine inflate
	// the busy time only, and are excluded by the sum.
	Relay time.Duration
	// RelayForeign is busy time on the relay's CPUs that neither the relay
	// nor softirq work explains: other programs (a lower bound).
	RelayForeign time.Duration
	// Gen, GenProc and GenForeign are the same for the generator (the
	// bench process and the softirq time of its CPUs).
	Gen, GenProc, GenForeign time.Duration
	RelayCPUCount            int
	GenCPUCount              int
	Exclusive                bool
	// RelayBacklogDrops and GenBacklogDrops are packets dropped because a
	// CPU's input backlog was full, on the relay's and the generator's
	// CPUs (all of them in GenBacklogDrops when CPUs are shared).
	RelayBacklogDrops, GenBacklogDrops uint64
}

func ticks(n uint64) time.Duration { return time.Duration(n) * Tick }

// Usage computes the CPU time spent between before and after.
func (a Accounting) Usage(before, after Sample) Usage {
	u := Usage{
		Wall:      after.At.Sub(before.At),
		RelayProc: ticks(relayDelta(before.Relay, after.Relay)),
		GenProc:   ticks(relayDelta(before.Gen, after.Gen)),
		Exclusive: a.Exclusive(),
	}
	drops := func(cpus []int) (n uint64) {
		for _, c := range cpus {
			if c < len(after.SoftnetDrops) && c < len(before.SoftnetDrops) {
				n += after.SoftnetDrops[c] - before.SoftnetDrops[c]
			}
		}
		return n
	}
	sum := func(cpus []int) (busy, softirq uint64) {
		for _, c := range cpus {
			d := after.CPUs[c].Sub(before.CPUs[c])
			busy += d.Busy()
			softirq += d.SoftIRQ
		}
		return busy, softirq
	}
	if u.Exclusive {
		busy, soft := sum(a.RelayCPUs)
		u.RelaySoftirq, u.RelayCPUCount = ticks(soft), len(a.RelayCPUs)
		u.Relay, u.RelayForeign = capped(u.RelayProc, u.RelaySoftirq, ticks(busy))
		gbusy, gsoft := sum(a.GenCPUs)
		u.GenCPUCount = len(a.GenCPUs)
		u.Gen, u.GenForeign = capped(u.GenProc, ticks(gsoft), ticks(gbusy))
		u.RelayBacklogDrops, u.GenBacklogDrops = drops(a.RelayCPUs), drops(a.GenCPUs)
		return u
	}
	all := make([]int, 0, len(after.CPUs))
	for c := range after.CPUs {
		all = append(all, c)
	}
	busy, soft := sum(all)
	u.GenBacklogDrops = drops(all)
	n := max(a.NumCPU, len(all), 1)
	u.RelaySoftirq = ticks(soft)
	u.Relay, _ = capped(u.RelayProc, u.RelaySoftirq, ticks(busy))
	u.Gen = u.GenProc
	u.RelayCPUCount, u.GenCPUCount = n, n
	return u
}

// relayDelta sums the CPU time of the PIDs present in both samples (the
// relay's or the generator's).
func relayDelta(before, after map[int]ProcTimes) uint64 {
	var d uint64
	for pid, a := range after {
		if b, ok := before[pid]; ok && a.Total() >= b.Total() {
			d += a.Total() - b.Total()
		}
	}
	return d
}

// capped returns max(proc, min(proc+soft, busy)) (see Usage.Relay) and
// what busy holds beyond proc+soft: other programs.
func capped(proc, soft, busy time.Duration) (time.Duration, time.Duration) {
	if busy < proc+soft {
		return max(proc, busy), 0
	}
	return proc + soft, busy - proc - soft
}

// RelayUtil is the relay's share of its CPUs, 0..1.
func (u Usage) RelayUtil() float64 { return util(u.Relay, u.Wall, u.RelayCPUCount) }

// GenUtil is the generator's share of its CPUs, 0..1.
func (u Usage) GenUtil() float64 { return util(u.Gen, u.Wall, u.GenCPUCount) }

func util(d, wall time.Duration, n int) float64 {
	if wall <= 0 || n <= 0 {
		return 0
	}
	return d.Seconds() / wall.Seconds() / float64(n)
}
