// SPDX-License-Identifier: Apache-2.0

package topo

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// RelayNAPIThreads returns the PIDs of the NAPI kernel threads of the
// relay-side veths (named napi/rbxrN-ID), EndpointNAPIThreads those of the
// endpoint side. They exist while a device uses NAPI in threaded mode.
func RelayNAPIThreads() []int { return findThreads("napi/" + RelayDevPrefix) }

// EndpointNAPIThreads: see RelayNAPIThreads.
func EndpointNAPIThreads() []int { return findThreads("napi/" + endpointDev + "-") }

// PinNAPI pins the NAPI threads to their side's CPUs and gives them a
// real-time priority. Unthreaded NAPI runs in softirq, ahead of every
// task; a NAPI thread at normal priority instead waits behind the relay or
// the generator on its CPU, and the veth's 256-packet ring overflows
// after a few milliseconds. A relay attaching an XDP program may recreate
// the threads, so the runner calls this again before every measurement.
func (t *Topology) PinNAPI() error {
	relay, ep := RelayNAPIThreads(), EndpointNAPIThreads()
	if err := PinThreads(relay, t.relayCPUs); err != nil {
		return err
	}
	if err := PinThreads(ep, t.genCPUs); err != nil {
		return err
	}
	return realtime(append(relay, ep...))
}

// realtime sets SCHED_FIFO priority 1 (the lowest real-time one; the
// kernel's RT throttling still leaves other tasks 5 %).
func realtime(pids []int) error {
	for _, p := range pids {
		err := unix.SchedSetAttr(p, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0)
		if err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}

func findThreads(commPrefix string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		if strings.HasPrefix(strings.TrimSpace(string(comm)), commPrefix) {
			out = append(out, pid)
		}
	}
	return out
}

// PinThreads sets the CPU affinity of the given threads.
func PinThreads(pids, cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	for _, p := range pids {
		if err := unix.SchedSetaffinity(p, &set); err != nil && err != unix.ESRCH {
			return err
		}
	}
	return nil
}
