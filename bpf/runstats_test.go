// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import "testing"

func TestRunStats(t *testing.T) {
	privileged(t)
	d, err := Open(Options{MaxShared: 64})
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	defer d.Close()
	c, err := OpenCeiling()
	if err != nil {
		t.Fatalf("OpenCeiling: %v", err)
	}
	defer c.Close()
	stats, err := EnableRunStats()
	if err != nil {
		t.Fatalf("EnableRunStats: %v", err)
	}
	defer stats.Close()

	before, err := ReadRunStats()
	if err != nil {
		t.Fatal(err)
	}
	f := frame{srcMAC: macAlice, dstMAC: macRelay, src: eps4.alice, dst: eps4.relayIn, payload: rtpPacket(0, 1, 1, 1, 40)}
	for range 10 {
		run(t, d.objs.RelayXdp, f.build())
	}
	for range 3 {
		run(t, c.objs.BareBounce, f.build())
	}
	after, err := ReadRunStats()
	if err != nil {
		t.Fatal(err)
	}
	// Other tests running in parallel packages may add runs of their own.
	if r := after.Relay.Sub(before.Relay); r.Runs < 10 || r.Runtime <= 0 {
		t.Errorf("relay program: %+v, want at least 10 runs and some time", r)
	}
	if r := after.Ceiling.Sub(before.Ceiling); r.Runs < 3 || r.Runtime <= 0 {
		t.Errorf("ceiling program: %+v, want at least 3 runs and some time", r)
	}
}
