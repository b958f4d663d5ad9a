// SPDX-License-Identifier: Apache-2.0

package sysinfo

import "testing"

func TestParseCPUInfo(t *testing.T) {
	in := `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC
flags		: fpu vme hypervisor lahf_lm

processor	: 1
model name	: AMD EPYC
flags		: fpu vme hypervisor lahf_lm
`
	got := ParseCPUInfo([]byte(in))
	want := CPUInfo{Model: "AMD EPYC", Count: 2, Hypervisor: true}
	if got != want {
		t.Errorf("ParseCPUInfo = %+v, want %+v", got, want)
	}
	if got := ParseCPUInfo([]byte("garbage\n")); got != (CPUInfo{}) {
		t.Errorf("ParseCPUInfo(garbage) = %+v", got)
	}
}

func TestParseMemTotalMB(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"MemTotal:       24681060 kB\nMemFree: 1 kB\n", 24102},
		{"MemFree: 1 kB\n", 0},
		{"MemTotal: x kB\n", 0},
	}
	for _, tc := range tests {
		if got := ParseMemTotalMB([]byte(tc.in)); got != tc.want {
			t.Errorf("ParseMemTotalMB(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
