// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/test/testenv"
)

// managerOn is a signalling-only manager whose logical interface "default"
// is addr: two of them on 127.0.0.1 and 127.0.0.2 are an active relay and
// its standby, the standby holding the active's calls on the same ports.
func managerOn(t *testing.T, addr string, portMin int, onChange func(string)) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Config{
		Interfaces: []session.Interface{{Name: "default", Local: netip.MustParseAddr(addr)}},
		PortMin:    portMin, PortMax: portMin + 200,
		Timeout: time.Minute, SilentTimeout: time.Hour, OfferTimeout: time.Hour, MaxSessions: -1,
		OnChange: onChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// node is one relay of a group: its manager, writer and follower on one
// Redis database.
type node struct {
	name string
	m    *session.Manager
	w    *Writer
	f    *Follower
	b    *Redis
}

func startNode(t *testing.T, srv *testenv.Redis, name, addr string, portMin int) *node {
	t.Helper()
	n := &node{name: name}
	n.m = managerOn(t, addr, portMin, func(id string) { n.w.Changed(id) })
	cfg := RedisConfig{Addr: srv.Addr(), DB: 3, Expires: time.Hour, Timeout: 500 * time.Millisecond}
	n.b = OpenRedis(cfg)
	t.Cleanup(func() { n.b.Close() })
	log := slog.New(slog.NewTextHandler(testLog{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n.w = NewWriter(WriterConfig{Backend: n.b, Source: n.m, Sweep: 50 * time.Millisecond, Node: name,
		Timeout: 500 * time.Millisecond, Logger: log})
	n.f = NewFollower(FollowerConfig{Redis: cfg, Node: name, Target: n.m, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { n.w.Run(ctx); done <- struct{}{} }()
	go func() { n.f.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	waitFor(t, name+" following the keyspace", func() bool { return n.f.Stats().Subscribed })
	return n
}

type testLog struct {
	t    *testing.T
	name string
}

func (l testLog) Write(b []byte) (int, error) { l.t.Logf("%s: %s", l.name, b); return len(b), nil }

func sortedIDs(t *testing.T, b Backend) []string { return ids(t, b) }

func TestRedisBackend(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx := context.Background()
	r := OpenRedis(RedisConfig{Addr: srv.Addr(), DB: 2, Expires: time.Hour})
	defer r.Close()
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	odd := "weird/call id\x00with bytes\r\n"
	for _, id := range []string{"abc@host", odd} {
		if err := r.Put(ctx, id, []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		got, err := r.Get(ctx, id)
		if err != nil || string(got) != `{"x":1}` {
			t.Fatalf("Get(%q) = %s, %v", id, got, err)
		}
	}
	if _, err := r.ShareIdentity(ctx, nil, []byte("pem-1")); err != nil {
		t.Fatal(err)
	}
	if got := sortedIDs(t, r); !slices.Equal(got, []string{"abc@host", odd}) {
		t.Errorf("IDs = %q (the identity key must not be listed)", got)
	}
	// Records expire: the key carries the configured lifetime.
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 2, Protocol: 2})
	defer raw.Close()
	if ttl := raw.TTL(ctx, "abc@host").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("TTL %v, want about an hour", ttl)
	}
	if err := r.Delete(ctx, "abc@host"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "abc@host"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	// The identity: stored once, a second relay gets the first one's, a
	// renewal replaces only the identity it read.
	got, err := r.ShareIdentity(ctx, nil, []byte("pem-2"))
	if err != nil || string(got) != "pem-1" {
		t.Errorf("second ShareIdentity = %s, %v; want the first relay's", got, err)
	}
	if got, _ := r.ShareIdentity(ctx, []byte("stale"), []byte("pem-3")); string(got) != "pem-1" {
		t.Errorf("renewal from a stale identity won: %s", got)
	}
	if got, _ := r.ShareIdentity(ctx, []byte("pem-1"), []byte("pem-3")); string(got) != "pem-3" {
		t.Errorf("renewal = %s", got)
	}
	g1, err := r.Generation(ctx)
	if err != nil || g1 == "" {
		t.Fatalf("Generation = %q, %v", g1, err)
	}
	srv.Restart()
	if g2, err := r.Generation(ctx); err != nil || g2 == g1 {
		t.Errorf("generation after a restart %q (before %q), %v", g2, g1, err)
	}
	if got := sortedIDs(t, r); len(got) != 0 {
		t.Errorf("a restarted server kept %q", got)
	}
}

// Redis killed and restarted empty under signalling: nothing waits for it,
// failures are counted, and once it is back every live call is in it again
// and no ended one is.
func TestWriterRewritesAfterRedisRestart(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := startNode(t, srv, "a", "127.0.0.1", 42000)
	for i := range 20 {
		call(t, a.m, fmt.Sprint("c", i))
	}
	waitFor(t, "20 records", func() bool { return len(ids(t, a.b)) == 20 })

	srv.Kill()
	start := time.Now()
	for i := 20; i < 30; i++ {
		call(t, a.m, fmt.Sprint("c", i))
	}
	zero := 0
	for _, id := range []string{"c0", "c25"} {
		if _, err := a.m.Delete(session.DeleteRequest{CallID: id, Options: session.Options{DeleteDelay: &zero}}); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("signalling took %v with Redis down", took)
	}
	waitFor(t, "failures counted", func() bool { st := a.w.Stats(); return st.Failures > 0 && !st.Healthy })
	srv.Start()
	want := []string{}
	for i := range 30 {
		if i != 0 && i != 25 {
			want = append(want, fmt.Sprint("c", i))
		}
	}
	slices.Sort(want)
	waitFor(t, "every live call back in Redis", func() bool {
		return slices.Equal(ids(t, a.b), want) && a.w.Stats().Healthy
	})
	if n := len(a.m.List(0)); n != 28 {
		t.Errorf("relay has %d calls, want 28", n)
	}
	// A restart too quick to fail a write (no signalling meanwhile): the
	// sweep sees another server and writes everything again.
	resyncs := a.w.Stats().Resyncs
	srv.Restart()
	waitFor(t, "records back after a quiet restart", func() bool {
		return slices.Equal(ids(t, a.b), want)
	})
	if a.w.Stats().Resyncs <= resyncs {
		t.Error("no resync counted")
	}
}

// The standby holds the active's calls as foreign, follows their updates
// and deletes, takes them over and writes them as its own; the old active,
// still there, sees that and holds them as foreign in turn.
func TestFollowerHoldsTheActivesCalls(t *testing.T) {
	srv := testenv.StartRedis(t)
	a := startNode(t, srv, "a", "127.0.0.1", 42400)
	b := startNode(t, srv, "b", "127.0.0.2", 42400)
	for i := range 10 {
		call(t, a.m, fmt.Sprint("c", i))
	}
	waitFor(t, "10 foreign calls on the standby", func() bool { return b.m.Statistics().SessionsForeign == 10 })
	if st := a.m.Statistics(); st.SessionsOwn != 10 || st.SessionsForeign != 0 {
		t.Errorf("active: own %d foreign %d (its own writes came back as foreign?)", st.SessionsOwn, st.SessionsForeign)
	}
	// The standby's sockets are the active's ports.
	for _, id := range []string{"c0", "c9"} {
		ca, _ := a.m.Snapshot(id)
		qb, err := b.m.Query(id, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := qb.Tags[0].Medias[0].Streams[0].Local.Port(), uint16(ca.Monologues[0].Medias[0].Sets[0].Port); got != want {
			t.Errorf("%s: standby port %d, active %d", id, got, want)
		}
	}
	zero := 0
	if _, err := a.m.Delete(session.DeleteRequest{CallID: "c3", Options: session.Options{DeleteDelay: &zero}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted call dropped on the standby", func() bool { return !b.m.IsForeign("c3") })
	// Redis restarts empty: the active writes everything again, the
	// standby reads everything again and keeps its foreign calls.
	srv.Restart()
	// The standby may read the empty database before the active has
	// written again, dropping what it does not find; the active's writes
	// then bring every call back.
	waitFor(t, "the standby resubscribed, resynced and holds the 9 calls again", func() bool {
		st := b.f.Stats()
		return st.Subscribed && st.Resyncs >= 2 && len(ids(t, a.b)) == 9 &&
			b.m.Statistics().SessionsForeign == 9
	})

	// The standby becomes active: every call is its own, written under
	// its name; the old active holds them as foreign.
	if n := b.m.TakeOverAll(); n != 9 {
		t.Fatalf("TakeOverAll = %d", n)
	}
	waitFor(t, "the old active holds the calls as foreign", func() bool {
		st := a.m.Statistics()
		return st.SessionsForeign == 9 && st.SessionsOwn == 0
	})
	for _, id := range ids(t, b.b) {
		rec, err := b.b.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if cs, _ := Decode(rec); cs.Node != "b" {
			t.Errorf("%s written by %q after the takeover", id, cs.Node)
		}
	}
	if st := b.f.Stats(); st.Rejected != 0 {
		t.Errorf("standby follower failures: %+v", st)
	}
}
