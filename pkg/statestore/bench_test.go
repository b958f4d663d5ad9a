// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/test/testenv"
)

// Benchmarks of the Redis side, against a real redis-server on loopback
// (run them under the heavy lock; BENCHMARKS.md has the figures):
//
//	BenchmarkSetups        calls set up and deleted per second, with and
//	                       without a Writer to Redis: the store's cost on the
//	                       control plane
//	BenchmarkRedisWrites   records the Writer gets into Redis per second
//	BenchmarkTakeover      foreign calls a standby takes over (and writes as
//	                       its own) per second
//	BenchmarkFollow        records a standby's Follower takes in per second

func benchManager(b *testing.B, addr string, onChange func(string)) *session.Manager {
	b.Helper()
	m, err := session.NewManager(session.Config{
		Interfaces: []session.Interface{{Name: "default", Local: netip.MustParseAddr(addr)}},
		PortMin:    20000, PortMax: 59999, Timeout: time.Minute, SilentTimeout: time.Hour, OfferTimeout: time.Hour,
		MaxSessions: -1, OnChange: onChange,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return m
}

func runWriter(b *testing.B, w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done })
}

func setupCall(b *testing.B, m *session.Manager, id string) {
	if _, err := m.Offer(session.Signal{CallID: id, FromTag: "a", SDP: offerSDP(4000)}); err != nil {
		b.Fatal(err)
	}
	if _, err := m.Answer(session.Signal{CallID: id, FromTag: "a", ToTag: "b", SDP: offerSDP(5000)}); err != nil {
		b.Fatal(err)
	}
}

var zero = 0

// setupWindow is how many calls BenchmarkSetups keeps up: each op sets up
// a call and deletes the one set up setupWindow ops before, so the writer
// sees calls that live (and are written) before they go.
const setupWindow = 500

// BenchmarkSetups: one op is a call's offer and answer, and the delete of
// an older call.
func BenchmarkSetups(b *testing.B) {
	srv := testenv.StartRedis(b)
	for _, store := range []string{"none", "redis"} {
		b.Run("store="+store, func(b *testing.B) {
			var w *Writer
			onChange := func(id string) {
				if w != nil {
					w.Changed(id)
				}
			}
			m := benchManager(b, "127.0.0.3", onChange)
			if store == "redis" {
				r := OpenRedis(RedisConfig{Addr: srv.Addr(), DB: 9, Expires: time.Hour})
				b.Cleanup(func() { r.Close() })
				w = NewWriter(WriterConfig{Backend: r, Source: m, Node: "bench", Timeout: 10 * time.Second})
				runWriter(b, w)
			}
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuTime()
			for i := range b.N {
				setupCall(b, m, fmt.Sprint("s", i))
				if i < setupWindow {
					continue
				}
				old := fmt.Sprint("s", i-setupWindow)
				if _, err := m.Delete(session.DeleteRequest{CallID: old, Options: session.Options{DeleteDelay: &zero}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
			if w != nil {
				b.StopTimer()
				// Let it catch up: the writes it did count too.
				deadline := time.Now().Add(10 * time.Second)
				for w.Stats().Pending > 0 && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				st := w.Stats()
				b.ReportMetric(float64(st.Writes+st.Deletes)/float64(b.N), "redis-ops/call")
			}
			// relayd's CPU (this process: signalling, and the writer when
			// there is one; redis-server's own is not in it): steadier
			// than throughput on a shared machine.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
		})
	}
}

// BenchmarkRedisWrites: one op is one call's record written (a resync of
// every live call, as after a Redis restart).
func BenchmarkRedisWrites(b *testing.B) {
	srv := testenv.StartRedis(b)
	m := benchManager(b, "127.0.0.3", nil)
	const calls = 2000
	for i := range calls {
		setupCall(b, m, fmt.Sprint("w", i))
	}
	r := OpenRedis(RedisConfig{Addr: srv.Addr(), DB: 9, Expires: time.Hour})
	defer r.Close()
	w := NewWriter(WriterConfig{Backend: r, Source: m, Node: "bench"})
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	written := 0
	for written < b.N {
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		written += calls
	}
	b.ReportMetric(float64(written)/time.Since(start).Seconds(), "writes/s")
}

// BenchmarkTakeover: one op is one foreign call made own and written to
// Redis under the standby's name.
func BenchmarkTakeover(b *testing.B) {
	srv := testenv.StartRedis(b)
	active := benchManager(b, "127.0.0.3", nil)
	const calls = 1000
	var states []session.CallState
	for i := range calls {
		id := fmt.Sprint("t", i)
		setupCall(b, active, id)
		cs, _ := active.Snapshot(id)
		cs.Node, cs.Saved = "active", time.Now()
		states = append(states, cs)
	}
	r := OpenRedis(RedisConfig{Addr: srv.Addr(), DB: 9, Expires: time.Hour})
	defer r.Close()
	b.ResetTimer()
	var took time.Duration
	done := 0
	for done < b.N {
		b.StopTimer()
		var w *Writer
		standby := benchManager(b, "127.0.0.4", func(id string) { w.Changed(id) })
		w = NewWriter(WriterConfig{Backend: r, Source: standby, Node: "standby"})
		for _, cs := range states {
			if err := standby.Foreign(cs); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { w.Run(ctx); close(stopped) }()
		b.StartTimer()
		start := time.Now()
		if n := standby.TakeOverAll(); n != calls {
			b.Fatalf("took over %d", n)
		}
		for w.Stats().Writes < calls {
			time.Sleep(100 * time.Microsecond)
		}
		took += time.Since(start)
		b.StopTimer()
		cancel()
		<-stopped
		standby.Close() // its writer stopped: the records stay
		done += calls
	}
	b.ReportMetric(float64(done)/took.Seconds(), "takeovers/s")
}

// BenchmarkFollow: one op is one record a standby's Follower takes in as a
// foreign call (the active writes them all at once, as a resync would).
func BenchmarkFollow(b *testing.B) {
	srv := testenv.StartRedis(b)
	var w *Writer
	active := benchManager(b, "127.0.0.3", func(id string) { w.Changed(id) })
	r := OpenRedis(RedisConfig{Addr: srv.Addr(), DB: 8, Expires: time.Hour})
	defer r.Close()
	w = NewWriter(WriterConfig{Backend: r, Source: active, Node: "active", Timeout: 10 * time.Second})
	const calls = 1000
	for i := range calls {
		setupCall(b, active, fmt.Sprint("f", i))
	}
	b.ResetTimer()
	var took time.Duration
	done := 0
	for done < b.N {
		b.StopTimer()
		if err := r.c.FlushDB(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
		standby := benchManager(b, "127.0.0.4", nil)
		f := NewFollower(FollowerConfig{Redis: RedisConfig{Addr: srv.Addr(), DB: 8}, Node: "standby", Target: standby})
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() { f.Run(ctx); close(stopped) }()
		for !f.Stats().Subscribed {
			time.Sleep(time.Millisecond)
		}
		for f.Stats().Pending > 0 {
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
		start := time.Now()
		if err := w.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		for standby.Statistics().SessionsForeign < calls {
			time.Sleep(100 * time.Microsecond)
		}
		took += time.Since(start)
		b.StopTimer()
		cancel()
		<-stopped
		standby.Close()
		done += calls
	}
	b.ReportMetric(float64(done)/took.Seconds(), "records/s")
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
