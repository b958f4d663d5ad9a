// SPDX-License-Identifier: Apache-2.0

package media

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	defaultLearningWindow = 3 * time.Second
	defaultBatchSize      = 64
	defaultMaxPacketSize  = 2048
	maxBatchSize          = 1024 // UIO_MAXIOV caps recvmmsg/sendmmsg vectors
	maxPacketSize         = 65535
	// tailroom is what a stage may grow a datagram by in place (an SRTP
	// authentication tag and MKI, an RTP header extension).
	tailroom = 128
)

// Config configures an Engine. The zero value is usable.
type Config struct {
	// Workers is the number of forwarding goroutines (num-threads); sockets are
	// spread over them. Zero means GOMAXPROCS.
	Workers int
	Logger  *slog.Logger // nil discards
	// LearningWindow is how long after each Configure sources are learned;
	// zero means 3 s.
	LearningWindow time.Duration
	// BatchSize is how many datagrams one recvmmsg/sendmmsg moves; zero means 64.
	BatchSize int
	// FastPath, when set, takes latched plain streams over in the kernel;
	// nil forwards everything in userspace.
	FastPath FastPath
	// MaxPacketSize is the largest datagram forwarded; a bigger one arrives
	// truncated and is dropped and counted as an error. Zero means 2048 (RTP is
	// kept under the path MTU). Every worker holds BatchSize × MaxPacketSize
	// bytes of buffers, whatever the number of sockets.
	MaxPacketSize int
	// SocketSends sends every datagram through its stream's own socket.
	// Otherwise each worker sends the IPv4 datagrams of a pass through one
	// raw socket in one sendmmsg when it can open one (CAP_NET_RAW).
	SocketSends bool
	// Now is the clock of learning windows, packet times and the fast
	// path's retries; nil means time.Now. Tests drive it.
	Now func() time.Time
}

// Socket is a bound, non-blocking UDP socket (a plain descriptor, in no Go
// runtime poller) that Attach takes over.
type Socket struct {
	FD    int
	Local netip.AddrPort
}

// Engine is the media plane: a fixed set of workers that receive, check and
// forward packets for every attached Stream.
type Engine struct {
	log     *slog.Logger
	window  time.Duration
	batch   int
	pktSize int
	rawSend bool
	now     func() time.Time
	base    time.Time // origin of the monotonic arrival clock used for jitter

	table streamTable

	mu     sync.Mutex
	closed atomic.Bool
	// handOver keeps the kernel rules in place at Close (HandOver).
	handOver atomic.Bool
	workers  []*worker

	off *offloader // nil without a fast path
}

// NewEngine validates cfg and starts the workers.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Workers < 0 || cfg.LearningWindow < 0 || cfg.BatchSize < 0 || cfg.BatchSize > maxBatchSize ||
		cfg.MaxPacketSize < 0 || cfg.MaxPacketSize > maxPacketSize {
		return nil, fmt.Errorf("workers %d, learning window %v, batch %d, max packet %d: %w",
			cfg.Workers, cfg.LearningWindow, cfg.BatchSize, cfg.MaxPacketSize, ErrBadConfig)
	}
	e := &Engine{
		log:     cfg.Logger,
		window:  cfg.LearningWindow,
		batch:   cfg.BatchSize,
		pktSize: cfg.MaxPacketSize,
		rawSend: !cfg.SocketSends,
		now:     cfg.Now,
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "media")
	if e.now == nil {
		e.now = time.Now
	}
	e.base = e.now()
	if e.window == 0 {
		e.window = defaultLearningWindow
	}
	if e.batch == 0 {
		e.batch = defaultBatchSize
	}
	if e.pktSize == 0 {
		e.pktSize = defaultMaxPacketSize
	}
	n := cfg.Workers
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for i := range n {
		w, err := newWorker(e, i)
		if err != nil {
			for _, w := range e.workers {
				w.discard()
			}
			return nil, fmt.Errorf("start media worker %d: %w", i, err)
		}
		e.workers = append(e.workers, w)
	}
	for _, w := range e.workers {
		go w.run()
	}
	e.log.Info("media plane started", "workers", n, "batch", e.batch, "max_packet", e.pktSize,
		"learning_window", e.window)
	if cfg.FastPath != nil {
		e.off = newOffloader(e, cfg.FastPath)
	}
	return e, nil
}

// Close stops the workers and the fast path's writer, closes the sockets of
// the streams still attached and reports them closed. Idempotent.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	if e.off != nil {
		e.off.close()
	}
	for _, w := range e.workers {
		w.stop()
	}
	// Nobody reads any socket now: what is left is closed here.
	e.table.each(func(s *Stream) { s.closeSocket() })
	return nil
}

// HandOver closes the engine like Close but leaves every kernel rule
// forwarding: the relayd that comes next adopts them, and the streams they
// carry lose nothing in between. Streams in userspace stop until the next
// relayd binds their ports again.
func (e *Engine) HandOver() error {
	e.handOver.Store(true)
	return e.Close()
}

// EndAdoption says the calls a previous relayd handed over are restored:
// the kernel rules it left (Adopter), which forwarded untouched meanwhile,
// are rewritten from their streams' restored state, or withdrawn where a
// stream cannot be offloaded. It returns once that is done; later calls do
// nothing.
func (e *Engine) EndAdoption() {
	if e.off != nil {
		e.off.endAdoption()
	}
}

// Group places streams on one worker. Streams that forward to each other (the
// sockets of one call) belong in one group: a packet then leaves by its sink's
// socket on the worker that received it, with no hand-over between workers.
type Group struct{ w *worker }

// NewGroup picks the least loaded worker for a new group of streams.
func (e *Engine) NewGroup() Group {
	w := e.workers[0]
	for _, c := range e.workers[1:] {
		if c.load.Load() < w.load.Load() {
			w = c
		}
	}
	return Group{w: w}
}

// Attach starts receiving on sock, which the engine owns from now on: the
// worker of g closes it after Detach, and then calls closed (from that
// worker, or from Close). Attach never waits for a worker. On error the
// socket is still the caller's.
func (e *Engine) Attach(g Group, sock Socket, closed func()) (*Stream, error) {
	if sock.FD < 0 {
		return nil, ErrNilConn
	}
	if !sock.Local.IsValid() || sock.Local.Port() == 0 || !sock.Local.Addr().IsValid() {
		return nil, ErrNotBound
	}
	if e.closed.Load() {
		return nil, ErrClosed
	}
	w := g.w
	if w == nil || w.e != e {
		w = e.NewGroup().w
	}
	s := newStream(sock.Local)
	s.eng, s.w, s.fd = e, w, sock.FD
	s.closed = closed
	s.refs.Store(1)
	if e.off != nil {
		s.refs.Add(1) // the offloader releases it too
		s.off = &offState{retryIdx: -1}
	}
	s.idx = e.table.add(s)
	w.load.Add(1)
	if err := w.watch(s); err != nil {
		e.table.remove(s.idx)
		w.load.Add(-1)
		s.fd = -1
		return nil, fmt.Errorf("attach %s: %w", sock.Local, err)
	}
	if e.off != nil {
		e.off.queue(s) // registers it with the offloader
	}
	return s, nil
}

// Totals are running sums since the engine started, for rates without a walk
// over the streams: datagrams received and accepted (and their bytes) and
// datagrams dropped, in userspace and, when the fast path can tell, in the
// kernel.
type Totals struct {
	Packets, Bytes, Dropped uint64
}

// KernelTotaler is a FastPath that can sum what the kernel forwarded for
// every stream since it started.
type KernelTotaler interface {
	KernelTotals() KernelCounters
}

// Totals sums the workers' counters and the kernel's.
func (e *Engine) Totals() Totals {
	var t Totals
	for _, w := range e.workers {
		t.Packets += w.totals.packets.Load()
		t.Bytes += w.totals.bytes.Load()
		t.Dropped += w.totals.dropped.Load()
	}
	if e.off != nil {
		if kt, ok := e.off.fp.(KernelTotaler); ok {
			k := kt.KernelTotals()
			t.Packets += k.Packets
			t.Bytes += k.Bytes
		}
	}
	return t
}

// streamTable maps the index an epoll event carries to its Stream. Readers
// (workers) take no lock: chunks are published with atomics and never move.
type streamTable struct {
	mu     sync.Mutex
	free   []uint32
	next   uint32 // 0 is the wake-up index
	chunks [tableChunks]atomic.Pointer[tableChunk]
}

const (
	tableChunkBits = 10
	tableChunkSize = 1 << tableChunkBits
	tableChunks    = 1 << 12 // 4M sockets
)

type tableChunk [tableChunkSize]atomic.Pointer[Stream]

func (t *streamTable) add(s *Stream) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var i uint32
	if n := len(t.free); n > 0 {
		i = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.next++
		i = t.next
	}
	c := t.chunks[i>>tableChunkBits].Load()
	if c == nil {
		c = new(tableChunk)
		t.chunks[i>>tableChunkBits].Store(c)
	}
	c[i&(tableChunkSize-1)].Store(s)
	return i
}

func (t *streamTable) get(i uint32) *Stream {
	if i>>tableChunkBits >= tableChunks {
		return nil
	}
	c := t.chunks[i>>tableChunkBits].Load()
	if c == nil {
		return nil
	}
	return c[i&(tableChunkSize-1)].Load()
}

func (t *streamTable) remove(i uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.chunks[i>>tableChunkBits].Load(); c != nil && c[i&(tableChunkSize-1)].Swap(nil) != nil {
		t.free = append(t.free, i)
	}
}

// each calls fn for every stream in the table.
func (t *streamTable) each(fn func(*Stream)) {
	for i := range t.chunks {
		c := t.chunks[i].Load()
		if c == nil {
			continue
		}
		for j := range c {
			if s := c[j].Load(); s != nil {
				fn(s)
			}
		}
	}
}
