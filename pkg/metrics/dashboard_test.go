// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// exportedNames are the metric names relayd's registry can serve, with the
// series a histogram adds.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	r := New(Sources{})
	ch := make(chan *prometheus.Desc, 256)
	go func() { r.reg.Describe(ch); close(ch) }()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in %s", d)
		}
		names[m[1]] = true
	}
	// The latency histogram's series.
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		names["relayd_control_request_duration_seconds"+s] = true
	}
	return names
}

// collectExprs walks any JSON value and returns every "expr" string.
func collectExprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "expr" {
				*out = append(*out, s)
				continue
			}
			collectExprs(e, out)
		}
	case []any:
		for _, e := range x {
			collectExprs(e, out)
		}
	}
}

// TestDashboardQueriesExist parses the Grafana dashboard shipped in the
// package and requires every metric its queries name to be one relayd
// exports, so the dashboard cannot silently show empty panels.
func TestDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile("../../packaging/grafana/relayd.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	var exprs []string
	collectExprs(dash, &exprs)
	if len(exprs) < 10 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	names := exportedNames(t)
	metric := regexp.MustCompile(`\b(?:rtpengine|relayd)_[a-zA-Z0-9_]+`)
	used := map[string]bool{}
	for _, e := range exprs {
		found := metric.FindAllString(e, -1)
		if len(found) == 0 {
			t.Errorf("query %q names no relayd metric", e)
		}
		for _, n := range found {
			used[n] = true
			if !names[n] {
				t.Errorf("query %q uses %s, which relayd does not export", e, n)
			}
		}
	}
	// The variable query too.
	if !strings.Contains(string(raw), "label_values(relayd_build_info, instance)") {
		t.Error("instance variable does not query relayd_build_info")
	}
	for _, must := range []string{"rtpengine_sessions", "rtpengine_packets_total", "relayd_max_sessions", "relayd_xdp_packets_total"} {
		if !used[must] {
			t.Errorf("dashboard has no panel on %s", must)
		}
	}
}
