// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/relayd/relayd/pkg/config"
	"github.com/relayd/relayd/pkg/fastpath"
	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/statestore"
	"github.com/relayd/relayd/pkg/webrtc"
)

// This file wires call survival: where call states are kept, how a relayd
// takes its predecessor's calls back at start, and how it hands them over
// at stop instead of ending them.

// Files a relayd with a state-dir keeps beside the call records.
const (
	identityFile = "dtls-identity.pem" // the certificate the calls' SDP promised
	repliesFile  = "ng-replies.json"   // the reply cache, for retransmissions across the restart
)

// flushTimeout bounds the last write of every call at stop: a store that
// does not answer must not keep the service manager waiting.
const flushTimeout = 10 * time.Second

// keeper is the running relayd's side of call survival; nil when no store
// is configured (stopping then ends every call, as before).
type keeper struct {
	log     *slog.Logger
	dir     string // state-dir, for the files beside the records
	backend statestore.Backend
	writer  *statestore.Writer
	stop    context.CancelFunc
	done    chan struct{}
}

// openKeeper opens the configured store; nil, nil when none is.
func openKeeper(cfg *config.Config, log *slog.Logger) (*keeper, error) {
	if cfg.StateDir == "" {
		return nil, nil
	}
	d, err := statestore.OpenDir(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state-dir %s: %w", cfg.StateDir, err)
	}
	return &keeper{log: log, dir: cfg.StateDir, backend: d}, nil
}

// adoptIdentity makes the predecessor's DTLS certificate current, so that
// the fingerprints in the restored calls' SDP stay true.
func (k *keeper) adoptIdentity(id *webrtc.Keeper) {
	b, err := os.ReadFile(filepath.Join(k.dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		var ident *webrtc.Identity
		if ident, err = webrtc.ParseIdentityPEM(b); err == nil {
			if id.Adopt(ident) {
				k.log.Info("DTLS certificate of the previous run kept", "not_after", ident.NotAfter)
			} else {
				k.log.Info("DTLS certificate of the previous run expires soon: a new one is used")
			}
			return
		}
	}
	k.log.Warn("DTLS certificate of the previous run unusable: restored WebRTC calls keep their keys, a re-INVITE renegotiates",
		"error", err)
}

// restore takes the saved calls back into mgr, drops the adopted kernel
// rules of calls that did not come back, and starts writing changes.
func (k *keeper) restore(ctx context.Context, mgr *session.Manager, fp *fastpath.FastPath) {
	start := time.Now()
	res, err := statestore.Restore(ctx, k.backend, mgr, k.log)
	if err != nil {
		k.log.Error("saved calls not restored", "store", k.backend.String(), "error", err)
	}
	if res.Restored+res.Failed > 0 {
		k.log.Info("calls restored", "restored", res.Restored, "lost", res.Failed, "took", time.Since(start),
			"store", k.backend.String())
	}
	if fp != nil {
		keep := map[netip.AddrPort]bool{}
		for _, cs := range mgr.SnapshotAll() {
			for _, l := range cs.Locals() {
				keep[l] = true
			}
		}
		if _, err := fp.Prune(keep); err != nil {
			k.log.Warn("kernel rules of calls not restored", "error", err)
		}
	}
	k.writer = statestore.NewWriter(statestore.WriterConfig{Backend: k.backend, Source: mgr, Logger: k.log})
	wctx, cancel := context.WithCancel(context.Background())
	k.stop, k.done = cancel, make(chan struct{})
	go func() { defer close(k.done); k.writer.Run(wctx) }()
}

// changed is the manager's OnChange.
func (k *keeper) changed(callID string) {
	if w := k.writer; w != nil {
		w.Changed(callID)
	}
}

func (k *keeper) stats() statestore.Stats {
	if k.writer == nil {
		return statestore.Stats{Healthy: true}
	}
	return k.writer.Stats()
}

// importReplies loads the predecessor's reply cache into srv.
func (k *keeper) importReplies(srv *ngproto.Server) {
	name := filepath.Join(k.dir, repliesFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	_ = os.Remove(name) // used once: a later start must not answer from it
	var entries []ngproto.CachedReply
	if err == nil {
		err = json.Unmarshal(b, &entries)
	}
	if err != nil {
		k.log.Warn("reply cache of the previous run unusable", "error", err)
		return
	}
	k.log.Info("reply cache of the previous run loaded", "replies", srv.ImportReplies(entries))
}

// handOver is the stop of a relayd whose calls go on: the manager told to
// end nothing, the media plane stopped (stopMedia; the kernel keeps
// forwarding), every call's state written with its final counters, the
// certificate and the reply cache beside them. The media plane stops
// before the last write: a packet it forwarded after that write would be
// relayed but never counted.
func (k *keeper) handOver(mgr *session.Manager, srv *ngproto.Server, id *webrtc.Keeper, stopMedia func()) {
	mgr.HandOver()
	k.stop()
	<-k.done
	stopMedia()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := k.writer.Flush(ctx); err != nil {
		k.log.Error("last write of the calls' state failed: the next relayd continues them from older state",
			"error", err)
	}
	if b, err := id.Current().MarshalPEM(); err == nil {
		err = writeFile(filepath.Join(k.dir, identityFile), b)
		if err != nil {
			k.log.Warn("DTLS certificate not saved", "error", err)
		}
	}
	if srv != nil {
		if b, err := json.Marshal(srv.ExportReplies()); err == nil {
			if err := writeFile(filepath.Join(k.dir, repliesFile), b); err != nil {
				k.log.Warn("reply cache not saved", "error", err)
			}
		}
	}
	k.log.Info("calls handed over to the next relayd", "calls", len(mgr.List(0)), "store", k.backend.String())
	_ = k.backend.Close()
}

// close stops writing without handing over (a start that failed).
func (k *keeper) close() {
	if k.stop != nil {
		k.stop()
		<-k.done
	}
	_ = k.backend.Close()
}

// writeFile replaces name atomically, readable by its owner only (the
// certificate's key is in it).
func writeFile(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}
