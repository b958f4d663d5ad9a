// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/bench/internal/relay"
	"github.com/relayd/relayd/bench/internal/report"
)

func TestJudgeRestart(t *testing.T) {
	kernel := report.Restart{Relay: "relayd:xdp", Calls: 10, Streams: 20, Restored: 10, Kernel: true, KernelBefore: 20, KernelAfter: 20}
	user := report.Restart{Relay: "relayd:userspace", Calls: 10, Streams: 20, Restored: 10, GapMaxMs: 120, LostMax: 6, StreamsWithLoss: 20}
	tests := []struct {
		name   string
		x      report.Restart
		failed []string
	}{
		{"kernel streams lost nothing", kernel, nil},
		{"a kernel stream lost a packet", func() report.Restart { x := kernel; x.LostMax, x.StreamsWithLoss = 1, 1; return x }(),
			[]string{"restart: kernel streams lose nothing"}},
		{"streams left the kernel", func() report.Restart { x := kernel; x.KernelAfter = 10; return x }(),
			[]string{"restart: streams back in the kernel"}},
		{"userspace gap under a second, losses allowed", user, nil},
		{"userspace gap of a second", func() report.Restart { x := user; x.GapMaxMs = 1000; return x }(),
			[]string{"restart: every stream's gap under 1s"}},
		{"a call not restored", func() report.Restart { x := user; x.Restored = 9; return x }(),
			[]string{"restart: every call restored"}},
		{"a stream missing", func() report.Restart { x := kernel; x.Streams = 19; return x }(),
			[]string{"restart: every stream measured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{run: &report.Run{}, progress: newProgress(io.Discard, false)}
			defer e.progress.close()
			e.judgeRestart(tc.x)
			var failed []string
			for _, c := range e.run.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if strings.Join(failed, "|") != strings.Join(tc.failed, "|") {
				t.Errorf("failed checks %q, want %q (all: %+v)", failed, tc.failed, e.run.Checks)
			}
		})
	}
}

func TestRestartConfig(t *testing.T) {
	base := Config{Relays: []relay.Spec{{Name: "relayd:xdp", Kind: relay.Relayd}}, Modes: []string{ModeRestart},
		PPS: 50, Window: time.Second, Reps: 1, LossTarget: 0.001, Deadline: time.Minute, RestartCalls: 100, RestartAfter: time.Second}
	if err := base.Validate(); err != nil {
		t.Fatalf("restart alone: %v", err)
	}
	if base.sessionModes() {
		t.Error("restart alone runs the session modes")
	}
	if n := base.maxCalls(); n != 100 {
		t.Errorf("maxCalls %d, want 100", n)
	}
	bad := base
	bad.RestartCalls = 0
	if err := bad.Validate(); err == nil {
		t.Error("no restart calls accepted")
	}
	both := base
	both.Modes, both.Calls = []string{ModeFixed, ModeRestart}, []int{20}
	if err := both.Validate(); err != nil || !both.sessionModes() {
		t.Errorf("fixed and restart: %v, session modes %v", err, both.sessionModes())
	}
	for _, s := range []relay.Spec{{Kind: relay.Rtpengine}, {Kind: relay.Relayd, Ceiling: "generic"}} {
		if restartable(s) {
			t.Errorf("%+v is restartable", s)
		}
	}
}
