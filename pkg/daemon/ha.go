// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/relayd/relayd/pkg/config"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/statestore"
	"github.com/relayd/relayd/pkg/webrtc"
)

// This file wires the relays of a group sharing a Redis database: calls
// written to it, read back at start, the other relays' calls followed and
// held as foreign, and one DTLS certificate for all of them.

// redisTimeout bounds each Redis command and the start's check.
const redisTimeout = 2 * time.Second

func redisConfig(a config.RedisAddr, expires time.Duration) statestore.RedisConfig {
	return statestore.RedisConfig{Addr: a.Addr, Password: a.Password, DB: a.DB, Expires: expires, Timeout: redisTimeout}
}

// openRedisKeeper opens the group's databases. A Redis that does not
// answer stops the start, unless no-redis-required says to go on (the
// writer and the followers catch up once it answers).
func openRedisKeeper(cfg *config.Config, log *slog.Logger) (*keeper, error) {
	node := cfg.NodeName
	if node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("node-name: not set and no host name (%v)", err)
		}
		node = h
	}
	statestore.RouteRedisLogs(log)
	k := &keeper{log: log.With("node", node), dir: cfg.StateDir, node: node, expires: cfg.RedisExpires}
	if cfg.Redis.IsSet() {
		k.read = statestore.OpenRedis(redisConfig(cfg.Redis, cfg.RedisExpires))
	}
	switch {
	case cfg.RedisWrite.IsSet():
		k.redis = statestore.OpenRedis(redisConfig(cfg.RedisWrite, cfg.RedisExpires))
	case k.read != nil:
		k.redis = k.read
	}
	sub := cfg.RedisSubscribe
	if !sub.IsSet() {
		sub = cfg.Redis
	}
	for _, db := range cfg.SubscribeKeyspace {
		c := redisConfig(sub, 0)
		c.DB = db
		k.subscribe = append(k.subscribe, c)
	}
	if k.redis != nil {
		k.backend = k.redis
	} else {
		// Following only: a call taken over here is not saved anywhere.
		k.backend = discard{}
		log.Warn("subscribe-keyspace without redis or redis-write: calls this relay takes over are not saved")
	}
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	for _, r := range []*statestore.Redis{k.read, k.redis} {
		if r == nil {
			continue
		}
		if err := r.Ping(ctx); err != nil {
			if !cfg.NoRedisRequired {
				k.closeBackends()
				return nil, fmt.Errorf("redis: %w (no-redis-required starts relayd without it)", err)
			}
			log.Warn("Redis does not answer: calls go on, their state is written once it does", "error", err)
		}
	}
	log.Info("call state in Redis", "node", node, "redis", cfg.Redis.String(), "redis-write", cfg.RedisWrite.String(),
		"subscribe", sub.String(), "subscribe-keyspace", cfg.SubscribeKeyspace, "expires", cfg.RedisExpires)
	return k, nil
}

// startFollowers follows the subscribed keyspaces; it returns how many run.
func (k *keeper) startFollowers(ctx context.Context, mgr *session.Manager) int {
	for _, c := range k.subscribe {
		f := statestore.NewFollower(statestore.FollowerConfig{Redis: c, Node: k.node, Target: mgr,
			OnIdentity: k.identityChanged, Logger: k.log})
		k.follow = append(k.follow, f)
		go func() { f.Run(ctx); k.done <- struct{}{} }()
	}
	return len(k.subscribe)
}

// followStats sums the followers' counters; Subscribed only while every
// one is.
func (k *keeper) followStats() statestore.FollowerStats {
	st := statestore.FollowerStats{Subscribed: true}
	for _, f := range k.follow {
		s := f.Stats()
		st.Updates += s.Updates
		st.Drops += s.Drops
		st.Rejected += s.Rejected
		st.Failures += s.Failures
		st.Stale += s.Stale
		st.Resyncs += s.Resyncs
		st.Pending += s.Pending
		st.Subscribed = st.Subscribed && s.Subscribed
	}
	return st
}

// shareIdentity makes the group's DTLS certificate this relay's (the first
// relay to start stores its own): a call taken over keeps the fingerprint
// its SDP promised, and a re-INVITE after the takeover needs no new
// handshake. It reports whether the group's certificate is in force.
func (k *keeper) shareIdentity(id *webrtc.Keeper) bool {
	k.id = id
	ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
	defer cancel()
	ok, err := k.syncIdentity(ctx)
	if err != nil {
		k.log.Warn("group DTLS certificate not read: this relay's own is used until it is", "error", err)
	}
	return ok
}

// syncIdentity adopts the group's certificate, storing this relay's when
// there is none and renewing it when it expires soon (compare-and-set: two
// relays renewing at once agree on one).
func (k *keeper) syncIdentity(ctx context.Context) (bool, error) {
	shared, err := k.redis.Identity(ctx)
	if errors.Is(err, statestore.ErrNotFound) {
		shared = nil
	} else if err != nil {
		return false, err
	}
	if shared != nil {
		ident, err := webrtc.ParseIdentityPEM(shared)
		if err == nil && k.id.Adopt(ident) {
			return true, nil
		}
		if err != nil {
			k.log.Warn("group DTLS certificate unusable: replacing it", "error", err)
		} else if _, err := k.id.Renew(); err != nil {
			return false, err
		}
	}
	mine, err := k.id.Current().MarshalPEM()
	if err != nil {
		return false, err
	}
	got, err := k.redis.ShareIdentity(ctx, shared, mine)
	if err != nil {
		return false, err
	}
	ident, err := webrtc.ParseIdentityPEM(got)
	if err != nil {
		return false, fmt.Errorf("group DTLS certificate: %w", err)
	}
	if k.id.Adopt(ident) {
		k.log.Info("group DTLS certificate in force", "not_after", ident.NotAfter)
		return true, nil
	}
	return false, errors.New("group DTLS certificate expires too soon")
}

// runIdentity keeps the group's certificate current (renewal replaces the
// Keeper's own): hourly, and whenever a follower saw another relay change
// it.
func (k *keeper) runIdentity(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		octx, cancel := context.WithTimeout(ctx, redisTimeout)
		if _, err := k.syncIdentity(octx); err != nil {
			k.log.Warn("group DTLS certificate not checked", "error", err)
		}
		cancel()
	}
}

// identityChanged is the followers' OnIdentity.
func (k *keeper) identityChanged(pem []byte) {
	if k.id == nil {
		return
	}
	ident, err := webrtc.ParseIdentityPEM(pem)
	if err != nil {
		k.log.Warn("group DTLS certificate unusable", "error", err)
		return
	}
	if cur := k.id.Current(); cur != nil && cur.NotAfter.Equal(ident.NotAfter) && sameCert(cur, ident) {
		return // this relay's own, or one it has
	}
	if k.identitySeen.Swap(ident.NotAfter.UnixNano()) != ident.NotAfter.UnixNano() && k.id.Adopt(ident) {
		k.log.Info("group DTLS certificate changed by another relay", "not_after", ident.NotAfter)
	}
}

// sharesIdentity: the group's certificate is kept by runIdentity, not by
// the Keeper's own renewal.
func (k *keeper) sharesIdentity() bool { return k != nil && k.redis != nil }

// discard is the store of a relay that follows without writing.
type discard struct{}

func (discard) Put(context.Context, string, []byte) error { return nil }
func (discard) Delete(context.Context, string) error      { return nil }
func (discard) Get(_ context.Context, id string) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", id, statestore.ErrNotFound)
}
func (discard) IDs(context.Context) ([]string, error) { return nil, nil }
func (discard) Close() error                          { return nil }
func (discard) String() string                        { return "nowhere (follow only)" }

func sameCert(a, b *webrtc.Identity) bool {
	return len(a.Cert.Certificate) > 0 && len(b.Cert.Certificate) > 0 &&
		string(a.Cert.Certificate[0]) == string(b.Cert.Certificate[0])
}
