// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultQueueBytes is each recording's queue: about five seconds of a
	// G.711 call (both parties, both directions) if the writer stalls.
	DefaultQueueBytes = 256 << 10
	// minQueueBytes keeps a tiny configured queue usable for audio; a
	// datagram bigger than the queue is dropped (and counted).
	minQueueBytes = 4 << 10
	defaultTick   = 20 * time.Millisecond
	// flushEvery bounds how long written packets may wait in the file
	// buffer, so a running recording is on disk up to a second ago.
	flushEvery = time.Second
	fileBuffer = 64 << 10
	maxNameLen = 180 // of the call-id part of a file name
)

// Config configures a Recorder.
type Config struct {
	// Dir is the recording directory (recording-dir); its pcaps, metadata
	// and tmp subdirectories are created if missing.
	Dir    string
	Format Format
	// QueueBytes is the size of each recording's queue; 0 means
	// DefaultQueueBytes (4 KiB at least).
	QueueBytes int
	// Tick is how often the writer drains the queues; 0 means 20 ms.
	Tick   time.Duration
	Logger *slog.Logger
	// Now is the clock of the metadata's times; nil means time.Now.
	Now func() time.Time
}

// Recorder writes recordings; it owns the writer goroutine.
type Recorder struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	wake chan struct{} // cap 1: a queue passed half full, or a recording changed
	quit chan struct{}
	done chan struct{}

	mu     sync.Mutex
	active []*Recording
	closed bool

	started, finished               atomic.Uint64
	packets, bytes, dropped, failed atomic.Uint64
}

// New checks the directory, creating its subdirectories, and starts the
// writer.
func New(cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, ErrNoDir
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = DefaultQueueBytes
	}
	if cfg.QueueBytes < minQueueBytes {
		cfg.QueueBytes = minQueueBytes
	}
	if cfg.Tick <= 0 {
		cfg.Tick = defaultTick
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger, now: cfg.Now, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "recording")
	if r.now == nil {
		r.now = time.Now
	}
	if st, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("recording directory %s: not a directory", cfg.Dir)
	}
	for _, sub := range []string{"pcaps", "metadata", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("recording directory: %w", err)
		}
	}
	// Prove the directory is writable now rather than at the first call.
	f, err := os.CreateTemp(filepath.Join(cfg.Dir, "tmp"), "relayd-check-")
	if err != nil {
		return nil, fmt.Errorf("recording directory: %w", err)
	}
	_ = f.Close()
	_ = os.Remove(f.Name())
	go r.run()
	return r, nil
}

// Format is the link layer the files are written with.
func (r *Recorder) Format() Format { return r.cfg.Format }

// Dir is the recording directory.
func (r *Recorder) Dir() string { return r.cfg.Dir }

// Recording is one call's recording from a start to its stop. Its methods
// are safe for concurrent use and never wait for the disk.
type Recording struct {
	r      *Recorder
	callID string
	name   string // file name without extension
	q      *ring
	paused atomic.Bool
	done   chan struct{}

	packets, bytes, dropped, failed atomic.Uint64

	mu       sync.Mutex
	meta     Meta
	started  time.Time
	pauses   []Pause
	stopped  time.Time
	stop     bool
	discard  bool
	endedBy  string
	flushReq bool

	// The writer's own.
	file     *os.File
	w        *bufio.Writer
	opened   bool
	broken   bool // opening or writing failed: the rest is counted as failed
	dirty    bool
	lastSync time.Time
	ipID     uint16
	scratch  [maxFrame]byte
}

// Pause is one pause of a recording.
type Pause struct {
	Paused  time.Time `json:"paused"`
	Resumed time.Time `json:"resumed,omitzero"`
}

// Start begins a recording of callID. The file is created by the writer
// within a tick; its path is known at once.
func (r *Recorder) Start(callID string) (*Recording, error) {
	rec := &Recording{r: r, callID: callID, name: fileName(callID), q: newRing(r.cfg.QueueBytes),
		done: make(chan struct{}), started: r.now()}
	rec.meta.CallID = callID
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.active = append(r.active, rec)
	r.mu.Unlock()
	r.started.Add(1)
	r.kick()
	return rec, nil
}

func (r *Recorder) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Path is the pcap file.
func (rec *Recording) Path() string {
	return filepath.Join(rec.r.cfg.Dir, "pcaps", rec.name+".pcap")
}

// MetaPath is where the metadata file appears when the recording ends.
func (rec *Recording) MetaPath() string {
	return filepath.Join(rec.r.cfg.Dir, "metadata", rec.name+".json")
}

// SetMeta replaces what the metadata file will say about the call.
func (rec *Recording) SetMeta(m Meta) {
	rec.mu.Lock()
	rec.meta = m
	rec.mu.Unlock()
}

// Pause stops taking packets from now on; the file stays open and what was
// queued is written and flushed.
func (rec *Recording) Pause() {
	if rec.paused.Swap(true) {
		return
	}
	rec.mu.Lock()
	rec.pauses = append(rec.pauses, Pause{Paused: rec.r.now()})
	rec.flushReq = true
	rec.mu.Unlock()
	rec.r.kick()
}

// Resume takes packets again after a Pause, into the same file.
func (rec *Recording) Resume() {
	rec.mu.Lock()
	if n := len(rec.pauses); n > 0 && rec.pauses[n-1].Resumed.IsZero() {
		rec.pauses[n-1].Resumed = rec.r.now()
	}
	rec.mu.Unlock()
	rec.paused.Store(false)
}

// Paused reports whether the recording is paused.
func (rec *Recording) Paused() bool { return rec.paused.Load() }

// Stop ends the recording: from now on no packet is taken, and the writer
// writes what was queued, closes the file and writes the metadata file
// (discard: removes the pcap file instead and writes no metadata). endedBy
// says why, for the metadata. Idempotent.
func (rec *Recording) Stop(endedBy string, discard bool) {
	rec.mu.Lock()
	if rec.stop {
		rec.mu.Unlock()
		return
	}
	rec.stop, rec.discard, rec.endedBy, rec.stopped = true, discard, endedBy, rec.r.now()
	rec.mu.Unlock()
	rec.paused.Store(true) // the taps take nothing more
	rec.r.kick()
}

// Done is closed once the writer has finished the recording's files.
func (rec *Recording) Done() <-chan struct{} { return rec.done }

// RecordingStats are one recording's counters.
type RecordingStats struct {
	// Packets and Bytes were written to the file (Bytes counts the
	// datagrams, not the synthetic headers).
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Dropped are copies the queue had no room for (the writer fell
	// behind, or a flood); forwarding was not affected.
	Dropped uint64 `json:"dropped"`
	// Failed are packets lost to the file: it could not be created or
	// written, or a datagram too big for one IP packet.
	Failed uint64 `json:"failed"`
}

// Stats reads the recording's counters.
func (rec *Recording) Stats() RecordingStats {
	return RecordingStats{Packets: rec.packets.Load(), Bytes: rec.bytes.Load(),
		Dropped: rec.dropped.Load(), Failed: rec.failed.Load()}
}

// Stats are a Recorder's counters over every recording it ran.
type Stats struct {
	Active            int    // recordings not yet finished (running or paused)
	Started, Finished uint64 // recordings
	RecordingStats
}

// Stats reads the Recorder's counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	n := len(r.active)
	r.mu.Unlock()
	return Stats{Active: n, Started: r.started.Load(), Finished: r.finished.Load(),
		RecordingStats: RecordingStats{Packets: r.packets.Load(), Bytes: r.bytes.Load(),
			Dropped: r.dropped.Load(), Failed: r.failed.Load()}}
}

// Close finishes every recording still running (as stopped at shutdown)
// and stops the writer. Idempotent.
func (r *Recorder) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closed = true
	active := append([]*Recording(nil), r.active...)
	r.mu.Unlock()
	for _, rec := range active {
		rec.Stop("shutdown", false)
	}
	close(r.quit)
	<-r.done
}

func (r *Recorder) snapshot(into []*Recording) []*Recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(into[:0], r.active...)
}

// run is the writer: it drains every recording on each tick, sooner when
// kicked, and sleeps while there is none.
func (r *Recorder) run() {
	defer close(r.done)
	timer := time.NewTimer(r.cfg.Tick)
	timer.Stop()
	var active []*Recording
	for {
		active = r.snapshot(active)
		if len(active) > 0 {
			timer.Reset(r.cfg.Tick)
		}
		select {
		case <-r.quit:
			for _, rec := range r.snapshot(active) {
				r.service(rec, true)
			}
			return
		case <-r.wake:
		case <-timer.C:
		}
		for _, rec := range r.snapshot(active) {
			r.service(rec, false)
		}
	}
}

// service writes what rec queued and, when it has been stopped (or the
// recorder is closing), finishes it.
func (r *Recorder) service(rec *Recording, closing bool) {
	if !rec.opened && !rec.broken {
		r.open(rec)
	}
	rec.q.drain(rec.write)
	rec.mu.Lock()
	stop, flush := rec.stop, rec.flushReq
	rec.flushReq = false
	rec.mu.Unlock()
	if stop || closing {
		r.finish(rec)
		return
	}
	if rec.dirty && (flush || r.now().Sub(rec.lastSync) >= flushEvery) {
		rec.flush()
	}
}

func (r *Recorder) open(rec *Recording) {
	f, err := os.OpenFile(rec.Path(), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err == nil {
		rec.file, rec.w = f, bufio.NewWriterSize(f, fileBuffer)
		err = writeFileHeader(rec.w, r.cfg.Format)
	}
	if err != nil {
		rec.broken = true
		r.log.Error("cannot record the call", "call-id", rec.callID, "file", rec.Path(), "error", err)
		return
	}
	rec.opened, rec.dirty, rec.lastSync = true, true, r.now()
	r.log.Info("recording started", "call-id", rec.callID, "file", rec.Path())
}

// write appends one queued datagram to the file.
func (rec *Recording) write(x *record) {
	if rec.broken {
		rec.fail()
		return
	}
	rec.ipID++
	hdr, ok := frame(&rec.scratch, rec.r.cfg.Format, x.ns, x.src, x.dst, x.data, rec.ipID)
	if !ok {
		rec.fail()
		return
	}
	if _, err := rec.w.Write(hdr); err != nil {
		rec.writeFailed(err)
		return
	}
	if _, err := rec.w.Write(x.data); err != nil {
		rec.writeFailed(err)
		return
	}
	rec.dirty = true
	rec.packets.Add(1)
	rec.bytes.Add(uint64(len(x.data)))
	rec.r.packets.Add(1)
	rec.r.bytes.Add(uint64(len(x.data)))
}

func (rec *Recording) fail() {
	rec.failed.Add(1)
	rec.r.failed.Add(1)
}

func (rec *Recording) writeFailed(err error) {
	rec.fail()
	rec.broken = true
	rec.r.log.Error("recording file write failed: the rest of the call is not recorded",
		"call-id", rec.callID, "file", rec.Path(), "error", err)
}

func (rec *Recording) flush() {
	if rec.w == nil || rec.broken {
		return
	}
	if err := rec.w.Flush(); err != nil {
		rec.writeFailed(err)
		return
	}
	rec.dirty, rec.lastSync = false, rec.r.now()
}

// finish seals the queue, writes its last packets, closes the file and
// writes the metadata (or removes the files of a discarded recording).
func (r *Recorder) finish(rec *Recording) {
	rec.q.seal()
	rec.q.drain(rec.write)
	rec.flush()
	if rec.file != nil {
		if err := rec.file.Close(); err != nil && !rec.broken {
			r.log.Error("recording file close failed", "call-id", rec.callID, "file", rec.Path(), "error", err)
		}
		rec.file, rec.w = nil, nil
	}
	rec.mu.Lock()
	discard := rec.discard
	if !rec.stop { // the recorder closed under it
		rec.stop, rec.endedBy, rec.stopped = true, "shutdown", r.now()
	}
	doc := metaFile{Meta: rec.meta, PCAP: rec.Path(), Format: r.cfg.Format.String(), Started: rec.started,
		Stopped: rec.stopped, Pauses: append([]Pause(nil), rec.pauses...), EndedBy: rec.endedBy,
		RecordingStats: rec.Stats()}
	rec.mu.Unlock()
	// Counted as finished before its metadata file appears: whoever sees
	// the file sees the counts.
	r.mu.Lock()
	for i, x := range r.active {
		if x == rec {
			r.active = append(r.active[:i], r.active[i+1:]...)
			break
		}
	}
	r.mu.Unlock()
	r.finished.Add(1)
	if discard {
		if err := os.Remove(rec.Path()); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Error("cannot discard the recording", "call-id", rec.callID, "file", rec.Path(), "error", err)
		}
		r.log.Info("recording discarded", "call-id", rec.callID)
	} else {
		if err := r.writeMeta(rec, &doc); err != nil {
			r.log.Error("recording metadata not written", "call-id", rec.callID, "file", rec.MetaPath(), "error", err)
		}
		r.log.Info("recording finished", "call-id", rec.callID, "file", rec.Path(), "metadata", rec.MetaPath(),
			"packets", doc.Packets, "dropped", doc.Dropped, "failed", doc.Failed, "ended-by", doc.EndedBy)
	}
	close(rec.done)
}

// writeMeta writes the metadata to tmp/ and renames it into metadata/, so
// that a reader never sees half a file.
func (r *Recorder) writeMeta(rec *Recording, doc *metaFile) error {
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.cfg.Dir, "tmp", rec.name+".json")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o640); err != nil {
		return err
	}
	if err := os.Rename(tmp, rec.MetaPath()); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// fileName is the call-id made safe as a file name (percent-encoded but
// for letters, digits and "-_.~"; no leading dot; at most maxNameLen bytes)
// with a random suffix, so that the same call recorded twice gets two files.
func fileName(callID string) string {
	var b strings.Builder
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(callID); i++ {
		c := callID[i]
		safe := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '~' || (c == '.' && i > 0)
		if safe {
			if b.Len()+1 > maxNameLen {
				break
			}
			b.WriteByte(c)
			continue
		}
		if b.Len()+3 > maxNameLen {
			break
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return b.String() + "-" + hex.EncodeToString(rnd[:])
}
