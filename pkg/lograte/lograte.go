// SPDX-License-Identifier: Apache-2.0

// Package lograte keeps log lines that untrusted input can trigger from being
// turned against the host: per kind of event and source, a few lines per
// interval are written and the rest are counted, then summed up in one line
// ("N more dropped in the last 10s") when the interval ends. The events
// themselves are counted by their owners (statistics, metrics); only the
// lines are limited.
package lograte

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// Defaults: a handful of lines per kind and source every 10 s, and a bounded
// table, so that spoofed sources cannot grow it.
const (
	DefaultInterval = 10 * time.Second
	DefaultBurst    = 5
	DefaultMaxKeys  = 1024
)

// Config configures a Limiter; zero fields take the defaults.
type Config struct {
	Interval time.Duration
	Burst    int
	// MaxKeys bounds the kinds × sources tracked at once; events of new
	// sources beyond it share one more entry per kind, with no source.
	MaxKeys int
	// Now is the clock; tests inject a fake one.
	Now func() time.Time
	// AfterFunc schedules the summary of an interval; tests inject one
	// they fire by hand. Default time.AfterFunc.
	AfterFunc func(d time.Duration, f func())
}

// Limiter writes rate-limited log lines to one logger. It is safe for
// concurrent use.
type Limiter struct {
	log *slog.Logger
	cfg Config

	mu        sync.Mutex
	keys      map[key]*window
	scheduled bool
	dropped   uint64
}

type key struct {
	msg, kind string
	source    netip.Addr
	others    bool // the shared entry of sources beyond MaxKeys
}

type window struct {
	start   time.Time
	level   slog.Level
	logged  int
	dropped int
}

// New returns a limiter writing to log (nothing when log is nil).
func New(log *slog.Logger, cfg Config) *Limiter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AfterFunc == nil {
		cfg.AfterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	return &Limiter{log: log, cfg: cfg, keys: make(map[key]*window)}
}

// Log writes msg with args at level unless Burst lines of the same msg and
// kind from source were written in the current interval; then the line is
// dropped and counted, and one summary line follows when the interval ends.
// kind must come from a small fixed set (an error class, not its text):
// it is part of the key. An invalid source (a caller that does not know
// it) is one more key, and no source is logged.
func (l *Limiter) Log(level slog.Level, msg, kind string, source netip.Addr, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	k := key{msg: msg, kind: kind, source: source.Unmap()}
	now := l.cfg.Now()
	var summaries []*summaryLine
	l.mu.Lock()
	w := l.keys[k]
	if w != nil && now.Sub(w.start) >= l.cfg.Interval {
		if s := l.summaryLocked(k, w); s != nil {
			summaries = append(summaries, s)
		}
		delete(l.keys, k)
		w = nil
	}
	if w == nil {
		if len(l.keys) >= l.cfg.MaxKeys {
			l.expireLocked(now, &summaries)
		}
		if len(l.keys) >= l.cfg.MaxKeys {
			k.source, k.others = netip.Addr{}, true
			w = l.keys[k]
		}
		if w == nil {
			w = &window{start: now, level: level}
			l.keys[k] = w
		}
	}
	write := w.logged < l.cfg.Burst
	if write {
		w.logged++
	} else {
		w.dropped++
		l.dropped++
		if !l.scheduled {
			l.scheduled = true
			l.cfg.AfterFunc(w.start.Add(l.cfg.Interval).Sub(now), l.flush)
		}
	}
	l.mu.Unlock()
	for _, s := range summaries {
		s.write(l.log)
	}
	if write {
		args = append(args, "kind", kind)
		if source.IsValid() {
			args = append(args, "source", k.source)
		}
		l.log.Log(context.Background(), level, msg, args...)
	}
}

// Dropped returns how many lines were dropped so far.
func (l *Limiter) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// Flush writes the summaries of intervals that have ended and forgets them.
func (l *Limiter) Flush() { l.flush() }

func (l *Limiter) flush() {
	var lines []*summaryLine
	l.mu.Lock()
	l.scheduled = false
	l.expireLocked(l.cfg.Now(), &lines)
	// Intervals still running with lines dropped get their summary later.
	var next time.Time
	for _, w := range l.keys {
		if end := w.start.Add(l.cfg.Interval); w.dropped > 0 && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	if !next.IsZero() {
		l.scheduled = true
		l.cfg.AfterFunc(next.Sub(l.cfg.Now()), l.flush)
	}
	l.mu.Unlock()
	for _, s := range lines {
		s.write(l.log)
	}
}

// expireLocked forgets every ended interval, collecting the summaries of
// those that dropped lines for the caller to write once unlocked.
func (l *Limiter) expireLocked(now time.Time, lines *[]*summaryLine) {
	for k, w := range l.keys {
		if now.Sub(w.start) < l.cfg.Interval {
			continue
		}
		if s := l.summaryLocked(k, w); s != nil {
			*lines = append(*lines, s)
		}
		delete(l.keys, k)
	}
}

type summaryLine struct {
	k       key
	level   slog.Level
	dropped int
	period  time.Duration
}

func (l *Limiter) summaryLocked(k key, w *window) *summaryLine {
	if w.dropped == 0 {
		return nil
	}
	return &summaryLine{k: k, level: w.level, dropped: w.dropped, period: l.cfg.Interval}
}

func (s *summaryLine) write(log *slog.Logger) {
	args := []any{"kind", s.k.kind}
	switch {
	case s.k.others:
		args = append(args, "source", "(other sources)")
	case s.k.source.IsValid():
		args = append(args, "source", s.k.source)
	}
	log.Log(context.Background(), s.level,
		fmt.Sprintf("%s: %d more dropped in the last %v", s.k.msg, s.dropped, s.period),
		append(args, "dropped", s.dropped)...)
}
