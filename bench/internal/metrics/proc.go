// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// UserHZ is the unit of every tick count in /proc (USER_HZ, 100 on Linux
// whatever the kernel's HZ).
const UserHZ = 100

// Tick is the duration of one USER_HZ tick.
const Tick = time.Second / UserHZ

// CPUTimes is one "cpuN" line of /proc/stat, in ticks.
type CPUTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// Busy is the time the CPU did work: everything but idle, iowait and time
// stolen by the hypervisor.
func (c CPUTimes) Busy() uint64 { return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ }

// Sub returns c - o, field by field.
func (c CPUTimes) Sub(o CPUTimes) CPUTimes {
	return CPUTimes{
		User: c.User - o.User, Nice: c.Nice - o.Nice, System: c.System - o.System, Idle: c.Idle - o.Idle,
		IOWait: c.IOWait - o.IOWait, IRQ: c.IRQ - o.IRQ, SoftIRQ: c.SoftIRQ - o.SoftIRQ, Steal: c.Steal - o.Steal,
	}
}

// ParseStat reads /proc/stat's per-CPU lines, keyed by CPU number.
func ParseStat(data []byte) (map[int]CPUTimes, error) {
	out := map[int]CPUTimes{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			return nil, fmt.Errorf("%w: /proc/stat line %q", ErrFormat, sc.Text())
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("%w: /proc/stat line %q: %v", ErrFormat, sc.Text(), err)
			}
		}
		out[n] = CPUTimes{User: v[0], Nice: v[1], System: v[2], Idle: v[3], IOWait: v[4], IRQ: v[5], SoftIRQ: v[6], Steal: v[7]}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no cpuN lines in /proc/stat", ErrFormat)
	}
	return out, nil
}

// ProcTimes is a process's CPU time in ticks, all threads included.
type ProcTimes struct {
	UTime, STime uint64
}

// Total is user plus system time.
func (p ProcTimes) Total() uint64 { return p.UTime + p.STime }

// ParsePIDStat reads utime and stime from /proc/PID/stat. The command name
// may hold spaces and parentheses, so fields are counted from the last ')'.
func ParsePIDStat(data []byte) (ProcTimes, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return ProcTimes{}, fmt.Errorf("%w: no ')' in /proc/PID/stat", ErrFormat)
	}
	// After ")": state is field 3; utime and stime are fields 14 and 15.
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return ProcTimes{}, fmt.Errorf("%w: /proc/PID/stat has %d fields after the name", ErrFormat, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return ProcTimes{}, fmt.Errorf("%w: /proc/PID/stat utime %q stime %q", ErrFormat, f[11], f[12])
	}
	return ProcTimes{UTime: u, STime: s}, nil
}

// ParseVmRSS reads the resident set size in bytes from /proc/PID/status.
func ParseVmRSS(data []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: VmRSS line %q", ErrFormat, sc.Text())
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: VmRSS %q", ErrFormat, f[0])
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: no VmRSS in /proc/PID/status", ErrFormat)
}

// UDPCounters are the "Udp:" counters of a namespace's /proc/net/snmp.
type UDPCounters struct {
	InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors, SndbufErrors, InCsumErrors uint64
}

// Sub returns u - o.
func (u UDPCounters) Sub(o UDPCounters) UDPCounters {
	return UDPCounters{
		InDatagrams: u.InDatagrams - o.InDatagrams, NoPorts: u.NoPorts - o.NoPorts, InErrors: u.InErrors - o.InErrors,
		OutDatagrams: u.OutDatagrams - o.OutDatagrams, RcvbufErrors: u.RcvbufErrors - o.RcvbufErrors,
		SndbufErrors: u.SndbufErrors - o.SndbufErrors, InCsumErrors: u.InCsumErrors - o.InCsumErrors,
	}
}

// Add returns u + o.
func (u UDPCounters) Add(o UDPCounters) UDPCounters {
	return UDPCounters{
		InDatagrams: u.InDatagrams + o.InDatagrams, NoPorts: u.NoPorts + o.NoPorts, InErrors: u.InErrors + o.InErrors,
		OutDatagrams: u.OutDatagrams + o.OutDatagrams, RcvbufErrors: u.RcvbufErrors + o.RcvbufErrors,
		SndbufErrors: u.SndbufErrors + o.SndbufErrors, InCsumErrors: u.InCsumErrors + o.InCsumErrors,
	}
}

// ParseSNMPUDP reads the Udp: header and value lines of /proc/net/snmp.
func ParseSNMPUDP(data []byte) (UDPCounters, error) {
	var names, values []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Udp: ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
		} else {
			values = strings.Fields(rest)
			break
		}
	}
	if names == nil || len(names) != len(values) {
		return UDPCounters{}, fmt.Errorf("%w: no Udp: header and values in snmp", ErrFormat)
	}
	var u UDPCounters
	dst := map[string]*uint64{
		"InDatagrams": &u.InDatagrams, "NoPorts": &u.NoPorts, "InErrors": &u.InErrors, "OutDatagrams": &u.OutDatagrams,
		"RcvbufErrors": &u.RcvbufErrors, "SndbufErrors": &u.SndbufErrors, "InCsumErrors": &u.InCsumErrors,
	}
	for i, n := range names {
		p, ok := dst[n]
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(values[i], 10, 64)
		if err != nil {
			return UDPCounters{}, fmt.Errorf("%w: Udp %s = %q", ErrFormat, n, values[i])
		}
		*p = v
	}
	return u, nil
}

// ParseSoftnetDrops reads the "dropped" column (the second) of
// /proc/net/softnet_stat, one value per line (per CPU, in CPU order):
// packets thrown away because that CPU's input backlog
// (net.core.netdev_max_backlog) was full.
func ParseSoftnetDrops(data []byte) ([]uint64, error) {
	var out []uint64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			return nil, fmt.Errorf("%w: softnet_stat line %q", ErrFormat, sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: softnet_stat dropped %q", ErrFormat, f[1])
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty softnet_stat", ErrFormat)
	}
	return out, nil
}

// ReadCPUs reads /proc/stat.
func ReadCPUs() (map[int]CPUTimes, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return ParseStat(data)
}

// ReadProc reads a process's CPU time; pid 0 is the bench itself.
func ReadProc(pid int) (ProcTimes, error) {
	data, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		return ProcTimes{}, err
	}
	return ParsePIDStat(data)
}

// ReadRSS reads a process's resident set size in bytes.
func ReadRSS(pid int) (uint64, error) {
	data, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		return 0, err
	}
	return ParseVmRSS(data)
}

// ReadSoftnetDrops reads the backlog drop counts per CPU.
func ReadSoftnetDrops() ([]uint64, error) {
	data, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return nil, err
	}
	return ParseSoftnetDrops(data)
}

// ReadUDP reads the UDP counters of the namespace a process lives in.
func ReadUDP(pid int) (UDPCounters, error) {
	data, err := os.ReadFile(procPath(pid, "net/snmp"))
	if err != nil {
		return UDPCounters{}, err
	}
	return ParseSNMPUDP(data)
}

func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}
