// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/relayd/relayd/bpf"
	"github.com/relayd/relayd/pkg/config"
	"github.com/relayd/relayd/pkg/fastpath"
	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/sdnotify"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/transcode"
	"github.com/relayd/relayd/pkg/webrtc"
)

// Version is stamped at build time (make build).
var Version = "dev"

// Run starts relayd with the command-line args and serves until ctx is done.
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, warnings, err := config.Load(args)
	if errors.Is(err, config.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level := newLogLevel(cfg.LogLevel) // the CLI and SIGHUP change it at run time
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &level.v}))
	for _, w := range warnings {
		log.Warn(w)
	}
	if !cfg.Foreground {
		log.Debug("relayd does not daemonize itself; run it under a service manager (foreground = false ignored)")
	}
	if soft, hard, err := RaiseFileLimit(); err != nil {
		log.Warn("could not raise the open-file limit", "soft", soft, "hard", hard, "error", err)
	} else {
		log.Debug("open-file limit", "soft", soft, "hard", hard)
	}
	if cfg.PidFile != "" {
		remove, err := WritePidFile(cfg.PidFile)
		if err != nil {
			return fmt.Errorf("pidfile: %w", err)
		}
		defer func() { _ = remove() }()
	}
	return serve(ctx, cfg, args, log, level)
}

func serve(ctx context.Context, cfg *config.Config, args []string, log *slog.Logger, level *logLevel) error {
	ifaces := make([]session.Interface, len(cfg.Interfaces))
	for i, in := range cfg.Interfaces {
		ifaces[i] = session.Interface{Name: in.Name, Local: in.Addr, Advertised: in.Advertised}
	}
	keep, err := openKeeper(cfg, log)
	if err != nil {
		return err
	}
	// With a store the kernel rules of the previous run are adopted: the
	// calls they carry come back from the store.
	fp, err := openFastPath(cfg, log, keep != nil)
	if err != nil {
		if keep != nil {
			keep.close()
		}
		return err
	}
	engine, err := media.NewEngine(media.Config{Workers: cfg.NumThreads, Logger: log, FastPath: fastPathOrNil(fp),
		SocketSends: cfg.SocketSends})
	if err != nil {
		if fp != nil {
			fp.Close()
		}
		return fmt.Errorf("media plane: %w", err)
	}
	// What stops the media plane: at a hand-over the kernel keeps
	// forwarding, otherwise every stream leaves the kernel. The fast path
	// goes last, after every stream has left it.
	// Transcoding on workers of its own; closed before the media plane so
	// that no bridge delivers into a closed engine.
	codecReg := transcode.NewRegistry()
	transcoders := transcode.NewPool(transcode.PoolConfig{Workers: cfg.CodecThreads, Registry: codecReg, Logger: log})
	logCodecs(log, codecReg)
	handingOver := false
	defer func() {
		transcoders.Close()
		if handingOver {
			engine.HandOver()
			if fp != nil {
				fp.HandOver()
			}
			return
		}
		engine.Close() // after the manager has released every socket
		if fp != nil {
			fp.Close()
		}
	}()
	o := &ops{log: log, level: level, sd: sdnotify.FromEnv(), transcode: transcoders.Stats}
	if o.notifier, err = newNotifier(cfg, log); err != nil {
		return err
	}
	identity, err := webrtc.NewKeeper(nil)
	if err != nil {
		return fmt.Errorf("DTLS certificate: %w", err)
	}
	var onChange func(string)
	if keep != nil {
		keep.adoptIdentity(identity)
		onChange = keep.changed
		o.store = keep.stats
		if len(keep.subscribe) > 0 {
			o.follow = keep.followStats
		}
	}
	if keep.sharesIdentity() {
		go keep.runIdentity(ctx) // the group's certificate, renewed by one relay for all
	} else {
		go identity.Run(ctx, log.With("component", "webrtc"))
	}
	recorder, err := newRecorder(cfg, log)
	if err != nil {
		return err
	}
	if recorder != nil {
		defer recorder.Close() // after the manager has ended every call
	}
	mgr, err := session.NewManager(session.Config{
		Interfaces: ifaces, PortMin: cfg.PortMin, PortMax: cfg.PortMax,
		Timeout: cfg.Timeout, SilentTimeout: cfg.SilentTimeout, OfferTimeout: cfg.OfferTimeout,
		FinalTimeout: cfg.FinalTimeout, DeleteDelay: cfg.DeleteDelay, TOS: cfg.TOS,
		MaxSessions: cfg.MaxSessions, EndpointLearning: cfg.EndpointLearning, Logger: log,
		Media: engine, OnCallEnd: onCallEnd(o.notifier), Identity: identity, FingerprintHash: cfg.DTLSSignature,
		Recorder: recorder,
		OnChange: onChange, Codecs: session.TranscodeCapability(codecReg), Transcoders: transcoders,
		ActiveSwitchover: cfg.ActiveSwitchover,
		// A relay that holds other relays' calls binds their floating
		// address before it moves here.
		FreeBind: len(cfg.SubscribeKeyspace) > 0,
	})
	if err != nil {
		if keep != nil {
			keep.close()
		}
		return fmt.Errorf("sessions: %w", err)
	}
	if keep != nil {
		// Before ng is served: the proxy's retransmissions of requests
		// the old relayd never answered find the calls in place.
		keep.restore(ctx, mgr, fp)
	}
	// The kernel rules the previous relayd left forwarded untouched while
	// their calls came back; from here each is its stream's to rewrite or
	// withdraw.
	engine.EndAdoption()
	fail := func(err error) error {
		if keep != nil {
			keep.close()
		}
		mgr.Close()
		return err
	}
	ctrl := ngproto.NewControl(mgr, log)
	var srv *ngproto.Server
	if err := startOps(cfg, o, mgr, ctrl, func() ngproto.ServerStats { return srv.Stats() }, fp); err != nil {
		return fail(err)
	}
	var handler ngproto.Handler = ctrl
	if o.registry != nil {
		handler = o.registry.InstrumentNG(ctrl)
		if recorder != nil {
			if err := registerRecordingMetrics(o.registry, recorder); err != nil {
				log.Warn("recording metrics not exported", "error", err)
			}
		}
	}
	srv, err = ngproto.NewServer(ngproto.ServerConfig{Addr: cfg.ListenNG, Logger: log, Allow: cfg.NGAllowFrom}, handler)
	if err != nil {
		o.close()
		return fail(fmt.Errorf("listen-ng %s: %w", cfg.ListenNG, err))
	}
	o.setNGAllow = srv.SetAllow
	if len(cfg.NGAllowFrom) == 0 && !cfg.ListenNG.Addr().IsLoopback() {
		log.Warn("listen-ng is not on a loopback address and ng-allow-from is empty: any host that reaches it can set up and end calls",
			"listen-ng", cfg.ListenNG)
	}
	ctrl.AttachServer(srv)
	if keep != nil {
		keep.importReplies(srv)
	}
	for _, in := range cfg.Interfaces {
		log.Info("interface", "name", in.Name, "address", in.Addr, "advertised", in.Advertised)
	}
	log.Info("relayd started", "version", Version, "listen-ng", srv.LocalAddr(),
		"ports", fmt.Sprintf("%d-%d", cfg.PortMin, cfg.PortMax), "media", mediaMode(fp), "workers", cfg.NumThreads,
		"listen-http", o.httpAddr(), "listen-cli", o.cliAddr(), "b2b-url", cfg.B2BURL, "state-dir", cfg.StateDir)

	// The manager stops on its own signal: at a hand-over it must learn
	// so before its Run would end every call.
	mgrCtx, stopMgr := context.WithCancel(context.Background())
	defer stopMgr()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		mgr.Run(mgrCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		keepMemory(ctx, log)
	}()
	tuneGC(ctx, log)
	o.run(ctx, &wg, mgr, cfg, args)
	// Sockets are bound and the media plane is up: calls can be taken.
	if err := o.sd.Ready(fmt.Sprintf("relaying; ng on %s, media %s", srv.LocalAddr(), mediaMode(fp))); err != nil {
		log.Warn("could not tell systemd relayd is ready", "error", err)
	}
	err = srv.Serve(ctx)
	if keep != nil {
		handingOver = true
		keep.handOver(mgr, srv, identity, func() { engine.HandOver() })
	}
	stopMgr()
	wg.Wait()
	log.Info("relayd stopped")
	return err
}

// openFastPath attaches the XDP program per the xdp key. With auto, anything
// that stops it (not root, no BPF, no driver support) leaves relayd in
// userspace with one log line saying why; an explicit mode must work.
func openFastPath(cfg *config.Config, log *slog.Logger, adopt bool) (*fastpath.FastPath, error) {
	if cfg.XDP == config.XDPOff {
		removePins(cfg, log)
		return nil, nil
	}
	addrs := make([]netip.Addr, 0, len(cfg.Interfaces))
	for _, in := range cfg.Interfaces {
		addrs = append(addrs, in.Addr)
	}
	fp, err := fastpath.Open(fastpath.Config{Mode: cfg.XDP, Addrs: addrs, PinPath: cfg.XDPPinPath, Adopt: adopt, Logger: log})
	if err != nil {
		if cfg.XDP != config.XDPAuto {
			return nil, fmt.Errorf("xdp = %s: %w", cfg.XDP, err)
		}
		log.Info("XDP fast path unavailable: all media in userspace", "reason", err)
		if !errors.Is(err, bpf.ErrPinDirBusy) {
			removePins(cfg, log)
		}
		return nil, nil
	}
	return fp, nil
}

// logCodecs says once what this build can transcode, and why not the rest.
func logCodecs(log *slog.Logger, reg *transcode.Registry) {
	var have []string
	for _, c := range reg.Codecs() {
		if err := c.Available(); err != nil {
			log.Warn("codec unavailable for transcoding", "codec", c.Name, "reason", err)
			continue
		}
		have = append(have, c.Name)
	}
	log.Info("transcoding", "codecs", have)
}

// removePins takes away the fast path a previous relayd left pinned (it
// handed its calls over) when this one runs without: nobody would ever
// withdraw its rules, and the calls restored here would be forwarded by
// two relays — one of which never learns of their deletion.
func removePins(cfg *config.Config, log *slog.Logger) {
	if cfg.XDPPinPath == "" {
		return
	}
	if _, err := bpf.RemovePins(cfg.XDPPinPath, log); err != nil {
		if errors.Is(err, bpf.ErrPinDirBusy) {
			log.Info("fast path pins held by another running relayd: left alone", "reason", err)
			return
		}
		log.Warn("could not remove the fast path pins a previous relayd left", "path", cfg.XDPPinPath, "error", err)
	}
}

// fastPathOrNil keeps a nil *FastPath from becoming a non-nil interface.
func fastPathOrNil(fp *fastpath.FastPath) media.FastPath {
	if fp == nil {
		return nil
	}
	return fp
}

func mediaMode(fp *fastpath.FastPath) string {
	if fp == nil {
		return "userspace"
	}
	return "xdp+userspace"
}
