// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"errors"
	"math"
	"testing"
	"time"
)

const statFixture = `cpu  300 0 200 1000 5 0 40 0 0 0
cpu0 100 0 50 700 5 0 10 0 0 0
cpu1 200 0 150 300 0 0 30 7 0 0
intr 12345
ctxt 999
`

func TestParseStat(t *testing.T) {
	got, err := ParseStat([]byte(statFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]CPUTimes{
		0: {User: 100, System: 50, Idle: 700, IOWait: 5, SoftIRQ: 10},
		1: {User: 200, System: 150, Idle: 300, SoftIRQ: 30, Steal: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d CPUs, want %d", len(got), len(want))
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("cpu%d = %+v, want %+v", c, got[c], w)
		}
	}
	if b := got[1].Busy(); b != 200+150+30 {
		t.Errorf("cpu1 busy = %d, want 380 (steal, idle and iowait excluded)", b)
	}
	for _, bad := range []string{"", "cpu0 1 2 3\n", "cpuX 1 2 3 4 5 6 7 8\n", "cpu0 1 2 3 4 5 6 7 x\n"} {
		if _, err := ParseStat([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseStat(%q) error = %v, want ErrFormat", bad, err)
		}
	}
}

func TestParsePIDStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want ProcTimes
		err  bool
	}{
		{"plain", "1234 (relayd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0 100 0 0", ProcTimes{UTime: 250, STime: 75}, false},
		{"name with spaces and parens", "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 9 8 0 0 20 0 1 0", ProcTimes{UTime: 9, STime: 8}, false},
		{"truncated", "1 (x) S 1 2 3", ProcTimes{}, true},
		{"no name", "1 x S", ProcTimes{}, true},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b", ProcTimes{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePIDStat([]byte(tc.in))
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("ParsePIDStat = %+v, %v; want %+v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := ParseVmRSS([]byte("Name:\trelayd\nVmPeak:\t  9999 kB\nVmRSS:\t   12345 kB\nThreads:\t5\n"))
	if err != nil || got != 12345*1024 {
		t.Errorf("ParseVmRSS = %d, %v; want %d", got, err, 12345*1024)
	}
	for _, bad := range []string{"Name: x\n", "VmRSS: 12 MB\n", "VmRSS: x kB\n"} {
		if _, err := ParseVmRSS([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseVmRSS(%q) error = %v, want ErrFormat", bad, err)
		}
	}
}

func TestParseSNMPUDP(t *testing.T) {
	in := `Ip: Forwarding DefaultTTL
Ip: 2 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 1000 3 20 990 17 0 2 0 0
UdpLite: InDatagrams NoPorts
UdpLite: 0 0
`
	got, err := ParseSNMPUDP([]byte(in))
	want := UDPCounters{InDatagrams: 1000, NoPorts: 3, InErrors: 20, OutDatagrams: 990, RcvbufErrors: 17, InCsumErrors: 2}
	if err != nil || got != want {
		t.Errorf("ParseSNMPUDP = %+v, %v; want %+v", got, err, want)
	}
	if d := got.Sub(UDPCounters{InDatagrams: 400}).Add(UDPCounters{NoPorts: 1}); d.InDatagrams != 600 || d.NoPorts != 4 {
		t.Errorf("Sub/Add = %+v", d)
	}
	for _, bad := range []string{"", "Udp: InDatagrams NoPorts\n", "Udp: InDatagrams\nUdp: x\n"} {
		if _, err := ParseSNMPUDP([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ParseSNMPUDP(%q) error = %v, want ErrFormat", bad, err)
		}
	}
}

func TestParseSoftnetDrops(t *testing.T) {
	in := "0001e240 0000000a 00000000 00000000\n00000010 00000100 00000000 00000000\n"
	got, err := ParseSoftnetDrops([]byte(in))
	if err != nil || len(got) != 2 || got[0] != 0x0a || got[1] != 0x100 {
		t.Errorf("ParseSoftnetDrops = %v, %v; want [10 256]", got, err)
	}
	if _, err := ParseSoftnetDrops([]byte("zz zz\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("bad input error = %v, want ErrFormat", err)
	}
}

func TestUsage(t *testing.T) {
	cpus := func(c0, c1 CPUTimes) map[int]CPUTimes { return map[int]CPUTimes{0: c0, 1: c1} }
	base := Sample{
		At:    time.Unix(100, 0),
		CPUs:  cpus(CPUTimes{User: 100, Idle: 1000}, CPUTimes{User: 10, System: 10, SoftIRQ: 5, Idle: 2000}),
		Relay: map[int]ProcTimes{7: {UTime: 10, STime: 10}, 8: {UTime: 5}},
		Gen:   map[int]ProcTimes{0: {UTime: 100}},
	}
	pinned := Accounting{RelayCPUs: []int{1}, GenCPUs: []int{0}, NumCPU: 2}
	tests := []struct {
		name                       string
		acc                        Accounting
		after                      Sample
		wantRelay, wantForeign     time.Duration
		wantGen                    time.Duration
		wantRelayUtil, wantGenUtil float64
	}{
		{
			// Over 2 s (200 ticks per CPU): CPU1 works 150 ticks, 40 of
			// them softirq; the relay is charged 130, 20 of which were
			// softirq in its context (counted twice): the busy time wins.
			name: "quiet machine: busy time, no double counting", acc: pinned,
			after: Sample{At: time.Unix(102, 0),
				CPUs:  cpus(CPUTimes{User: 220, Idle: 1080}, CPUTimes{User: 70, System: 60, SoftIRQ: 45, Idle: 2050}),
				Relay: map[int]ProcTimes{7: {UTime: 70, STime: 80}, 9: {UTime: 1000}}, Gen: map[int]ProcTimes{0: {UTime: 210}}},
			wantRelay: 1500 * time.Millisecond, wantGen: 1100 * time.Millisecond, wantRelayUtil: 0.75, wantGenUtil: 0.55,
		},
		{
			// Another program used CPU1: busy 175 ticks, the relay
			// 60 plus 30 softirq explain 90.
			name: "shared machine: process plus softirq", acc: pinned,
			after: Sample{At: time.Unix(102, 0),
				CPUs:  cpus(CPUTimes{User: 200, Idle: 1100}, CPUTimes{User: 150, System: 15, SoftIRQ: 35, Idle: 2010}),
				Relay: map[int]ProcTimes{7: {UTime: 50, STime: 30}}, Gen: map[int]ProcTimes{0: {UTime: 150}}},
			wantRelay: 900 * time.Millisecond, wantForeign: 850 * time.Millisecond, wantGen: 500 * time.Millisecond,
			wantRelayUtil: 0.45, wantGenUtil: 0.25,
		},
		{
			// Bursty light load: the tick rarely samples CPU1 busy (20
			// ticks) while the relay's exact runtime is 60 ticks.
			name: "light load: exact process time beats sampled busy time", acc: pinned,
			after: Sample{At: time.Unix(102, 0),
				CPUs:  cpus(CPUTimes{User: 110, Idle: 1190}, CPUTimes{User: 25, System: 20, SoftIRQ: 10, Idle: 2170}),
				Relay: map[int]ProcTimes{7: {UTime: 40, STime: 40}}, Gen: map[int]ProcTimes{0: {UTime: 130}}},
			wantRelay: 600 * time.Millisecond, wantGen: 300 * time.Millisecond, wantRelayUtil: 0.3, wantGenUtil: 0.15,
		},
		{
			name: "unpinned: process plus all softirq", acc: Accounting{NumCPU: 2},
			after: Sample{At: time.Unix(102, 0),
				CPUs:  cpus(CPUTimes{User: 220, Idle: 1080}, CPUTimes{User: 70, System: 60, SoftIRQ: 45, Idle: 2050}),
				Relay: map[int]ProcTimes{7: {UTime: 70, STime: 80}, 9: {UTime: 1000}}, Gen: map[int]ProcTimes{0: {UTime: 210}}},
			wantRelay: 1700 * time.Millisecond, wantGen: 1100 * time.Millisecond, wantRelayUtil: 1.7 / 2 / 2, wantGenUtil: 1.1 / 2 / 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.acc.Usage(base, tc.after)
			if u.Relay != tc.wantRelay || u.RelayForeign != tc.wantForeign || u.Gen != tc.wantGen {
				t.Errorf("relay %v foreign %v gen %v; want %v %v %v", u.Relay, u.RelayForeign, u.Gen, tc.wantRelay, tc.wantForeign, tc.wantGen)
			}
			if got := u.RelayUtil(); math.Abs(got-tc.wantRelayUtil) > 1e-9 {
				t.Errorf("RelayUtil = %v, want %v", got, tc.wantRelayUtil)
			}
			if got := u.GenUtil(); math.Abs(got-tc.wantGenUtil) > 1e-9 {
				t.Errorf("GenUtil = %v, want %v", got, tc.wantGenUtil)
			}
		})
	}
}
