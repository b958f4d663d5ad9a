// SPDX-License-Identifier: Apache-2.0

package topo

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseLinkDrops(t *testing.T) {
	in := `[{"ifindex":1,"ifname":"lo","stats64":{"rx":{"bytes":1,"dropped":0},"tx":{"dropped":0}}},
{"ifindex":2,"ifname":"rbxr0","stats64":{"rx":{"dropped":7},"tx":{"dropped":3}}}]`
	got, err := ParseLinkDrops([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got["rbxr0"] != [2]uint64{7, 3} || got["lo"] != [2]uint64{0, 0} {
		t.Errorf("ParseLinkDrops = %v", got)
	}
	if _, err := ParseLinkDrops([]byte("not json")); !errors.Is(err, ErrBadTopology) {
		t.Errorf("bad input: %v", err)
	}
}

func TestCPUMask(t *testing.T) {
	tests := []struct {
		cpus []int
		want string
	}{
		{nil, ""},
		{[]int{0}, "00000001"},
		{[]int{1}, "00000002"},
		{[]int{0, 3}, "00000009"},
		{[]int{33}, "00000002,00000000"},
	}
	for _, tc := range tests {
		if got := cpuMask(tc.cpus); got != tc.want {
			t.Errorf("cpuMask(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
}

func TestParseKindAndSteering(t *testing.T) {
	for _, k := range []string{"veth2", "veth1", "loopback"} {
		if _, err := ParseKind(k); err != nil {
			t.Errorf("ParseKind(%q): %v", k, err)
		}
	}
	if _, err := ParseKind("veth3"); !errors.Is(err, ErrBadTopology) {
		t.Errorf("ParseKind(veth3): %v", err)
	}
	for _, s := range []string{"napi", "rps", "none"} {
		if _, err := ParseSteering(s); err != nil {
			t.Errorf("ParseSteering(%q): %v", s, err)
		}
	}
	if _, err := ParseSteering("xps"); !errors.Is(err, ErrBadTopology) {
		t.Errorf("ParseSteering(xps): %v", err)
	}
}

func TestAddrRange(t *testing.T) {
	got := addrRange(mustAddr("198.51.100.254"), 3)
	if len(got) != 3 || got[2].String() != "198.51.101.0" {
		t.Errorf("addrRange = %v", got)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
