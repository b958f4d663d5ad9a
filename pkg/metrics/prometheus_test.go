// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/test/testenv"
)

// TestRealPrometheusScrapes runs Debian's Prometheus server against relayd's
// /metrics: it must scrape the target successfully and answer queries on the
// incumbent's names with the values the control plane produced.
func TestRealPrometheusScrapes(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		testenv.Unavailable(t, "prometheus not found (%v); install the prometheus package (scripts/test-deps.txt)", err)
	}
	st := newStack(t, nil)
	st.traffic(t)

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: relayd
    static_configs:
      - targets: ['%s']
`, st.metrics.Addr())
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	web := "127.0.0.1:" + strconv.Itoa(port)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+web, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", testenv.Tail(string(out), 40))
		}
	})

	query := func(q string) (float64, bool) {
		resp, err := http.Get("http://" + web + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct {
				Result []struct {
					Value [2]any
				}
			}
		}
		if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" || len(r.Data.Result) != 1 {
			return 0, false
		}
		s, _ := r.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	// Prometheus starts, scrapes once a second; give it a generous while.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if v, ok := query(`up{job="relayd"}`); ok && v == 1 {
			if _, ok := query(`rtpengine_sessions{type="own"}`); ok {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus did not scrape relayd within 60 s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	for q, want := range map[string]float64{
		`rtpengine_sessions{type="own"}`:                                  1,
		`rtpengine_requests_total{request="offer",proxy="127.0.0.1"}`:     2,
		`rtpengine_closed_sessions_total{reason="terminated"}`:            1,
		`sum(rtpengine_ports_used)`:                                       4,
		`relayd_control_request_duration_seconds_count{command="answer"}`: 1,
	} {
		got, ok := query(q)
		if !ok || got != want {
			t.Errorf("prometheus query %s = %v (ok %v), want %v", q, got, ok, want)
		}
	}
	if n, ok := query(`scrape_samples_scraped{job="relayd"}`); !ok || n < 50 {
		t.Errorf("prometheus scraped %v samples (ok %v), want the whole exposition (>= 50)", n, ok)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
