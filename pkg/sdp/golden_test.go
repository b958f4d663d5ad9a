// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.out.sdp from the current code")

// TestGolden rewrites testdata/golden/<case>.in.sdp with <case>.plan.json
// and compares the result with <case>.out.sdp. The in and plan files are
// written by hand; -update regenerates only the out files, which must then
// be reviewed as what a SIP endpoint would receive.
func TestGolden(t *testing.T) {
	plans, err := filepath.Glob("testdata/golden/*.plan.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) < 15 {
		t.Fatalf("found %d golden cases, want at least 15", len(plans))
	}
	for _, planFile := range plans {
		name := strings.TrimSuffix(filepath.Base(planFile), ".plan.json")
		t.Run(name, func(t *testing.T) {
			base := filepath.Join("testdata", "golden", name)
			in, err := os.ReadFile(base + ".in.sdp")
			if err != nil {
				t.Fatal(err)
			}
			p := readPlan(t, planFile)
			d := mustParse(t, in)
			got, err := d.Rewrite(p)
			if err != nil {
				t.Fatalf("Rewrite = %v", err)
			}
			if _, err := Parse(got); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
			if *update {
				if err := os.WriteFile(base+".out.sdp", got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(base + ".out.sdp")
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s.out.sdp\n%s", name, lineDiff(got, want))
			}
		})
	}
}

func readPlan(t testing.TB, file string) Plan {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

// lineDiff lists the lines that differ, quoted so that line endings show.
func lineDiff(got, want []byte) string {
	g := strings.SplitAfter(string(got), "\n")
	w := strings.SplitAfter(string(want), "\n")
	var b strings.Builder
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "line %d:\n  got  %q\n  want %q\n", i+1, gl, wl)
		}
	}
	return b.String()
}
