// SPDX-License-Identifier: Apache-2.0

package relay

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	tests := []struct {
		name     string
		list     string
		args     []string
		want     []string // names
		wantArgs [][]string
		wantErr  bool
	}{
		{"standard", "relayd:userspace,relayd:xdp,rtpengine", nil,
			[]string{"relayd:userspace", "relayd:xdp", "rtpengine"}, [][]string{{"--xdp=off"}, {"--xdp=auto"}, nil}, false},
		{"spaces", " relayd:xdp-native , rtpengine ", nil,
			[]string{"relayd:xdp-native", "rtpengine"}, [][]string{{"--xdp=native"}, nil}, false},
		{"override built-in args", "relayd:xdp", []string{"relayd:xdp=--xdp=native --foo"},
			[]string{"relayd:xdp"}, [][]string{{"--xdp=native", "--foo"}}, false},
		{"new mode with args", "relayd:tc", []string{"relayd:tc=--xdp=tc"}, []string{"relayd:tc"}, [][]string{{"--xdp=tc"}}, false},
		{"new mode without args", "relayd:tc", nil, nil, nil, true},
		{"unknown kind", "kamailio", nil, nil, nil, true},
		{"duplicate", "rtpengine,rtpengine", nil, nil, nil, true},
		{"empty", " , ", nil, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args, err := ParseArgs(tc.args)
			if err != nil {
				t.Fatalf("ParseArgs: %v", err)
			}
			got, err := ParseList(tc.list, args)
			if tc.wantErr {
				if !errors.Is(err, ErrBadSpec) {
					t.Errorf("error = %v, want ErrBadSpec", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, s := range got {
				names = append(names, s.Name)
				if !slices.Equal(s.Args, tc.wantArgs[i]) {
					t.Errorf("%s args = %q, want %q", s.Name, s.Args, tc.wantArgs[i])
				}
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("names = %q, want %q", names, tc.want)
			}
		})
	}
	if _, err := ParseArgs([]string{"no-equals"}); !errors.Is(err, ErrBadSpec) {
		t.Errorf("ParseArgs without '=': %v", err)
	}
}

func TestArgs(t *testing.T) {
	o := Options{Interfaces: []string{"callers/198.51.100.1", "callees/203.0.113.1"}, NG: "127.0.0.1:2223",
		PortMin: 20000, PortMax: 59999, LogLevel: 6, CPUs: []int{1}}
	specs, _ := ParseList("relayd:xdp,rtpengine", nil)
	rd := strings.Join(Args(specs[0], o), " ")
	for _, want := range []string{"--config-file=none", "--interface=callers/198.51.100.1", "--interface=callees/203.0.113.1",
		"--listen-ng=127.0.0.1:2223", "--num-threads=1", "--delete-delay=0"} {
		if !strings.Contains(rd, want) {
			t.Errorf("relayd args %q lack %q", rd, want)
		}
	}
	if !strings.HasSuffix(rd, "--xdp=auto") {
		t.Errorf("mode args must come last (they win): %q", rd)
	}
	if strings.Contains(rd, "--table") {
		t.Errorf("relayd got rtpengine-only flags: %q", rd)
	}
	re := strings.Join(Args(specs[1], o), " ")
	if !strings.Contains(re, "--table=-1 --foreground --log-stderr") {
		t.Errorf("rtpengine args %q lack the userspace/foreground flags", re)
	}
}

func TestParseBuildInfo(t *testing.T) {
	tests := []struct {
		name, out string
		want      BuildInfo
	}{
		{"cgo with opus", "relayd: go1.26.8\n\tpath\tgithub.com/relayd/relayd/cmd/relayd\n\tbuild\t-tags=nolibopusfile,spandsp\n\tbuild\tCGO_ENABLED=1\n",
			BuildInfo{Known: true, CGO: true, Tags: []string{"nolibopusfile", "spandsp"}, Opus: true}},
		{"cgo without the tag", "\tbuild\tCGO_ENABLED=1\n", BuildInfo{Known: true, CGO: true}},
		{"static", "\tbuild\t-tags=nolibopusfile\n\tbuild\tCGO_ENABLED=0\n", BuildInfo{Known: true, Tags: []string{"nolibopusfile"}}},
		{"not a go binary", "", BuildInfo{}},
	}
	for _, tc := range tests {
		got := parseBuildInfo([]byte(tc.out))
		if got.Known != tc.want.Known || got.CGO != tc.want.CGO || got.Opus != tc.want.Opus || !slices.Equal(got.Tags, tc.want.Tags) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if s := (BuildInfo{Known: true}).String(); !strings.Contains(s, "no Opus") {
		t.Errorf("a static build says %q", s)
	}
}
