// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/relayd/relayd/pkg/cli"
	"github.com/relayd/relayd/pkg/config"
	"github.com/relayd/relayd/pkg/fastpath"
	"github.com/relayd/relayd/pkg/metrics"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/notify"
	"github.com/relayd/relayd/pkg/sdnotify"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/statestore"
	"github.com/relayd/relayd/pkg/transcode"
)

// This file wires the operator's side: metrics, CLI, teardown notices,
// systemd notification and SIGHUP.

// logLevel is the run-time log level: the syslog-scale number the CLI shows
// and the slog level the handler filters on.
type logLevel struct {
	mu sync.Mutex
	n  int
	v  slog.LevelVar
}

func newLogLevel(n int) *logLevel {
	l := &logLevel{}
	l.SetLevel(n)
	return l
}

func (l *logLevel) Level() int { l.mu.Lock(); defer l.mu.Unlock(); return l.n }

func (l *logLevel) SetLevel(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n = n
	l.v.Set((&config.Config{LogLevel: n}).SlogLevel())
}

// ops are the operator-facing services of one running relayd.
type ops struct {
	log      *slog.Logger
	level    *logLevel
	notifier *notify.Notifier
	registry *metrics.Registry
	http     *metrics.Server
	cli      *cli.Server
	sd       *sdnotify.Notifier
	store    func() statestore.Stats // nil without a state store
	// transcode reports the transcoding workers.
	transcode func() transcode.PoolStats
	// setNGAllow applies a reloaded ng-allow-from to the running server.
	setNGAllow func([]netip.Prefix)
}

// newNotifier makes the teardown notifier when b2b-url is set; the manager
// needs its CallEnded before it exists, so it comes first.
func newNotifier(cfg *config.Config, log *slog.Logger) (*notify.Notifier, error) {
	if cfg.B2BURL == "" {
		return nil, nil
	}
	n, err := notify.New(notify.Config{URL: cfg.B2BURL, Format: cfg.XMLRPCFormat, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("b2b-url: %w", err)
	}
	return n, nil
}

// onCallEnd is the manager's OnCallEnd: notices for timeouts, nothing else.
func onCallEnd(n *notify.Notifier) func(session.CallEnd) {
	if n == nil {
		return nil
	}
	return n.CallEnded
}

// startOps binds listen-http and listen-cli; the handler to serve ng with is
// returned instrumented when metrics are on.
func startOps(cfg *config.Config, o *ops, mgr *session.Manager, ctrl *ngproto.Control,
	srv func() ngproto.ServerStats, fp *fastpath.FastPath) error {
	if cfg.ListenHTTP.IsValid() {
		src := metrics.Sources{Sessions: mgr.Statistics, Durations: mgr.DurationStats, MOS: mgr.MOSStats, Limits: mgr.Limits,
			Control: srv, Version: Version}
		if fp != nil {
			src.Kernel = fp.Reasons
		}
		if o.notifier != nil {
			src.Notices = o.notifier.Counters
		}
		src.Store = o.store
		src.Transcode = o.transcode
		o.registry = metrics.New(src)
		h, err := metrics.Listen(cfg.ListenHTTP, o.registry, o.log)
		if err != nil {
			return err
		}
		o.http = h
	}
	if cfg.ListenCLI.IsValid() {
		if !cfg.ListenCLI.Addr().IsLoopback() {
			o.log.Warn("listen-cli is not on a loopback address: anyone who can reach it can end calls (the CLI has no authentication)",
				"listen-cli", cfg.ListenCLI)
		}
		c, err := cli.Listen(cli.Config{Addr: cfg.ListenCLI, Sessions: mgr, LogLevel: o.level,
			JSONStats: ctrl.Statistics, Logger: o.log})
		if err != nil {
			if o.http != nil {
				o.http.Close()
			}
			return err
		}
		o.cli = c
	}
	return nil
}

// run serves the operator's side until ctx is done; wg tracks it.
func (o *ops) run(ctx context.Context, wg *sync.WaitGroup, mgr *session.Manager, running *config.Config, args []string) {
	serve := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				o.log.Error(name+" stopped", "error", err)
			}
		}()
	}
	if o.http != nil {
		serve("listen-http", o.http.Serve)
	}
	if o.cli != nil {
		serve("listen-cli", o.cli.Serve)
	}
	if o.notifier != nil {
		wg.Add(1)
		go func() { defer wg.Done(); o.notifier.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		if err := o.sd.Stopping(); err != nil {
			o.log.Warn("could not tell systemd relayd is stopping", "error", err)
		}
	}()
	// SIGHUP re-reads the configuration.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				o.reload(mgr, running, args)
			}
		}
	}()
	o.watchdog(ctx, wg, mgr)
}

// watchdog pings systemd at half of WatchdogSec while the session manager
// answers: a control plane stuck on a lock stops the pings and systemd
// restarts relayd.
func (o *ops) watchdog(ctx context.Context, wg *sync.WaitGroup, mgr *session.Manager) {
	interval, ok, err := sdnotify.WatchdogInterval()
	if err != nil {
		o.log.Warn("systemd watchdog ignored", "error", err)
	}
	if !ok || !o.sd.Enabled() {
		return
	}
	o.log.Info("systemd watchdog on", "interval", interval)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			alive := make(chan struct{})
			go func() { mgr.Statistics(); close(alive) }()
			select {
			case <-alive:
				if err := o.sd.Watchdog(); err != nil {
					o.log.Warn("systemd watchdog ping failed", "error", err)
				}
			case <-time.After(interval / 4):
				o.log.Error("session manager did not answer within a quarter of WatchdogSec: skipping the watchdog ping")
			case <-ctx.Done():
				return
			}
		}
	}()
}

// reload applies the keys that may change at run time and names the others.
// running holds the configuration in force, updated for what was applied,
// so a key that needs a restart keeps being named until one happens.
func (o *ops) reload(mgr *session.Manager, running *config.Config, args []string) {
	next, warnings, err := config.Load(args)
	if err != nil {
		o.log.Error("SIGHUP: configuration not reloaded, keeping the running one", "error", err)
		return
	}
	for _, w := range warnings {
		o.log.Warn(w)
	}
	lim := mgr.Limits()
	var applied, restart []string
	for _, key := range config.Changed(running, next) {
		switch key {
		case "log-level":
			o.level.SetLevel(next.LogLevel)
			running.LogLevel = next.LogLevel
		case "timeout":
			lim.Timeout, running.Timeout = next.Timeout, next.Timeout
		case "silent-timeout":
			lim.SilentTimeout, running.SilentTimeout = next.SilentTimeout, next.SilentTimeout
		case "offer-timeout":
			lim.OfferTimeout, running.OfferTimeout = next.OfferTimeout, next.OfferTimeout
		case "final-timeout":
			lim.FinalTimeout, running.FinalTimeout = next.FinalTimeout, next.FinalTimeout
		case "delete-delay":
			lim.DeleteDelay, running.DeleteDelay = next.DeleteDelay, next.DeleteDelay
		case "max-sessions":
			lim.MaxSessions, running.MaxSessions = next.MaxSessions, next.MaxSessions
		case "ng-allow-from":
			if o.setNGAllow == nil {
				restart = append(restart, key)
				continue
			}
			o.setNGAllow(next.NGAllowFrom)
			running.NGAllowFrom = next.NGAllowFrom
		default:
			restart = append(restart, key)
			continue
		}
		applied = append(applied, key)
	}
	if len(applied) > 0 {
		mgr.SetLimits(lim)
	}
	o.log.Info("SIGHUP: configuration reloaded", "file", next.ConfigFile, "applied", applied)
	if len(restart) > 0 {
		o.log.Warn("SIGHUP: changed keys need a restart to take effect", "keys", restart)
	}
}

// close releases listeners that were bound but never served.
func (o *ops) close() {
	if o.http != nil {
		o.http.Close()
	}
	if o.cli != nil {
		o.cli.Close()
	}
}

func (o *ops) httpAddr() string {
	if o.http == nil {
		return "off"
	}
	return o.http.Addr().String()
}

func (o *ops) cliAddr() string {
	if o.cli == nil {
		return "off"
	}
	return o.cli.Addr().String()
}
