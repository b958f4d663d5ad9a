// SPDX-License-Identifier: Apache-2.0

package sysinfo

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine is the description every report starts with.
type Machine struct {
	NumCPU     int    `json:"nproc"`
	CPUModel   string `json:"cpu_model"`
	Kernel     string `json:"kernel"`
	MemTotalMB int    `json:"mem_total_mb"`
	GoVersion  string `json:"go_version"`
	Hypervisor bool   `json:"virtualized"`
	// Versions maps a relay name to its version string.
	Versions map[string]string `json:"versions,omitempty"`
}

// Describe reads the machine's description.
func Describe() Machine {
	m := Machine{NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), Versions: map[string]string{}}
	// runtime.NumCPU honours the bench's own CPU pinning; nproc is the
	// machine's.
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		c := ParseCPUInfo(data)
		m.CPUModel, m.Hypervisor = c.Model, c.Hypervisor
		if c.Count > 0 {
			m.NumCPU = c.Count
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotalMB = ParseMemTotalMB(data)
	}
	return m
}

// CPUInfo is what the bench reads from /proc/cpuinfo.
type CPUInfo struct {
	Model      string
	Count      int
	Hypervisor bool
}

// ParseCPUInfo reads the first model name, the number of processors and
// whether the CPU flags say it runs under a hypervisor.
func ParseCPUInfo(data []byte) CPUInfo {
	var c CPUInfo
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			c.Count++
		case "model name":
			if c.Model == "" {
				c.Model = v
			}
		case "flags":
			for _, f := range strings.Fields(v) {
				if f == "hypervisor" {
					c.Hypervisor = true
				}
			}
		}
	}
	return c
}

// ParseMemTotalMB reads MemTotal from /proc/meminfo in MiB.
func ParseMemTotalMB(data []byte) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 1 {
			kb, err := strconv.Atoi(f[0])
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// Version runs a relay binary with --version and returns its first
// non-empty line (rtpengine prints "Version: 10.5...").
func Version(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return strings.TrimPrefix(l, "Version: ")
		}
	}
	return ""
}

// GitDescribe returns `git describe --always --dirty` of the working tree,
// the version relayd is built from.
func GitDescribe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
