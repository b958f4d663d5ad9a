// SPDX-License-Identifier: Apache-2.0

// Package metrics exposes relayd's counters to Prometheus on listen-http
// /metrics: under the incumbent's rtpengine_* names and labels, so existing
// dashboards and alerts keep working, and relayd's own under relayd_*.
//
// Nothing here runs per packet. The collector reads the counters that
// already exist (session statistics, the ng server's per-proxy counters, the
// XDP program's pass reasons) when Prometheus scrapes; only the control
// plane's latency histogram is observed, once per ng request. Later
// subsystems (SRTP, STUN, DTLS, worker queues) add their counters through
// Registry.Register or Registry.CounterFuncs, again read at scrape time.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/statestore"
	"github.com/relayd/relayd/pkg/transcode"
)

// Sources are the read-only views the collector calls at scrape time; a nil
// one contributes nothing (Kernel is nil when the fast path is off).
type Sources struct {
	Sessions  func() session.Statistics
	Durations func() (total time.Duration, sumSquares float64, ended uint64)
	MOS       func() (sum, sumSquares float64, samples uint64)
	Limits    func() session.Limits
	Control   func() ngproto.ServerStats
	Kernel    func() map[string]uint64
	// Notices counts teardown notices by result (sent, failed, dropped).
	Notices func() map[string]uint64
	// Transcode reports the transcoding workers.
	Transcode func() transcode.PoolStats
	// Store reports the call state store's writer (nil without a store).
	Store   func() statestore.Stats
	Version string
}

// Registry holds every relayd metric.
type Registry struct {
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec
}

// LatencyBuckets span what an ng command costs, from a ping (tens of µs) to
// an offer on a loaded 2-core machine.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

// New builds the registry over src.
func New(src Sources) *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relayd_control_request_duration_seconds",
			Help:    "Time to handle one ng request (decode to reply), by command.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
	}
	// The standard process and Go runtime families: resident memory, heap
	// and stacks, open descriptors (what an operator watches RSS with).
	r.reg.MustRegister(&collector{src: src}, r.latency,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return r
}

// Register adds a subsystem's collector (a hook for counters that do not
// exist yet, such as SRTP authentication failures or worker queue drops).
func (r *Registry) Register(c prometheus.Collector) error { return r.reg.Register(c) }

// CounterFuncs registers a counter family read at scrape time: f returns the
// value per label value (e.g. drops per reason). f must be cheap and safe to
// call concurrently; it is how a per-packet path exposes its own atomics
// without doing anything per packet for metrics.
func (r *Registry) CounterFuncs(name, help, label string, f func() map[string]uint64) error {
	return r.reg.Register(&funcCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
}

// Gatherer is the registry for tests and embedding.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Handler serves /metrics in the Prometheus text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// InstrumentNG wraps the ng handler to observe each request's duration in
// relayd_control_request_duration_seconds.
func (r *Registry) InstrumentNG(h ngproto.Handler) ngproto.Handler {
	return ngproto.HandlerFunc(func(ctx context.Context, req *ngproto.Request, from netip.AddrPort) ngproto.Reply {
		start := time.Now()
		reply := h.HandleNG(ctx, req, from)
		cmd := req.Command
		if !ngproto.KnownCommand(cmd) {
			cmd = ngproto.StatsUnknown // bounded label set whatever clients send
		}
		r.latency.WithLabelValues(requestLabel(cmd)).Observe(time.Since(start).Seconds())
		return reply
	})
}

type funcCollector struct {
	desc *prometheus.Desc
	f    func() map[string]uint64
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	for label, v := range c.f() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(v), label)
	}
}

// requestLabel spells a command the way the incumbent's request label does
// (relayd keeps command names lower-case internally).
func requestLabel(cmd string) string {
	return strings.NewReplacer("dtmf", "DTMF").Replace(cmd)
}

// Server serves the registry on listen-http.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
	addr netip.AddrPort
}

// Listen binds addr, so that a taken port stops start-up with a clear error.
func Listen(addr netip.AddrPort, r *Registry, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen-http %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", r.Handler())
	// The incumbent answers GET /ping too; load balancers probe it.
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("pong\n"))
	})
	s := &Server{ln: ln, log: log.With("component", "metrics"),
		addr: ln.Addr().(*net.TCPAddr).AddrPort(),
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Serve answers until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	err := s.srv.Serve(s.ln)
	if !errors.Is(err, http.ErrServerClosed) {
		return err // the goroutine shuts the (failed) server down with ctx
	}
	<-done
	return nil
}

// Close releases the listener of a server that was never served.
func (s *Server) Close() error { return s.ln.Close() }
