// SPDX-License-Identifier: Apache-2.0

package media

import (
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const (
	defaultLearningWindow = 3 * time.Second
	defaultBatchSize      = 64
	defaultMaxPacketSize  = 2048
	maxBatchSize          = 1024 // UIO_MAXIOV caps recvmmsg/sendmmsg vectors
	maxPacketSize         = 65535
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
}

// Engine is the media plane: a fixed set of workers that receive, check and
// forward packets for every attached Stream.
type Engine struct {
	log     *slog.Logger
	window  time.Duration
	batch   int
	pktSize int
	base    time.Time // origin of the monotonic arrival clock used for jitter

	nextID atomic.Uint64

	mu      sync.Mutex
	closed  bool
	workers []*worker

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
		base:    time.Now(),
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.log = e.log.With("component", "media")
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

// Close stops the workers. Streams still attached stop forwarding; their
// sockets stay open (the caller owns them). Close is idempotent.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	workers := e.workers
	e.mu.Unlock()
	if e.off != nil {
		e.off.close()
	}
	for _, w := range workers {
		w.stop()
	}
	return nil
}

// Attach starts receiving on conn. The caller keeps ownership of conn and
// closes it after Detach. The socket must be bound (IPv4 or IPv6).
func (e *Engine) Attach(conn *net.UDPConn) (*Stream, error) {
	if conn == nil {
		return nil, ErrNilConn
	}
	ua, _ := conn.LocalAddr().(*net.UDPAddr)
	if ua == nil || ua.Port == 0 {
		return nil, ErrNotBound
	}
	local := ua.AddrPort()
	if !local.Addr().IsValid() {
		return nil, ErrNotBound
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", local, err)
	}
	v6, err := socketIsIPv6(rc)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", local, err)
	}
	s := newStream(local)
	s.eng, s.rc, s.ipv6 = e, rc, v6
	if v6 {
		s.bw = ipv6.NewPacketConn(conn)
	} else {
		s.bw = ipv4.NewPacketConn(conn)
	}
	s.id = e.nextID.Add(1)

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	w := e.workers[0]
	for _, c := range e.workers[1:] {
		if c.load.Load() < w.load.Load() {
			w = c
		}
	}
	w.load.Add(1)
	e.mu.Unlock()

	s.w = w
	if err := w.submit(opAdd, s); err != nil {
		w.load.Add(-1)
		return nil, fmt.Errorf("attach %s: %w", local, err)
	}
	if e.off != nil {
		e.off.add(s)
	}
	return s, nil
}

// Detach stops receiving on the stream and removes it from its worker; when
// it returns, nothing received on the socket is forwarded any more, and
// packets other streams forward to it are dropped. Idempotent.
func (s *Stream) Detach() {
	s.detachOnce.Do(func() {
		s.detached.Store(true)
		if o := s.off(); o != nil {
			o.remove(s)
		}
		if s.w != nil {
			if s.w.submit(opDel, s) == nil {
				s.w.load.Add(-1)
			}
		}
	})
}

// SetTOS sets the IPv4 TOS / IPv6 traffic class of packets sent from this
// stream's socket (DSCP of the media sent to its party).
func (s *Stream) SetTOS(tos int) error {
	if tos < 0 || tos > 255 {
		return fmt.Errorf("tos %d: %w", tos, ErrBadTOS)
	}
	if s.rc == nil {
		return ErrDetached
	}
	if err := setTOS(s.rc, s.ipv6, tos); err != nil {
		return fmt.Errorf("set tos on %s: %w", s.local, err)
	}
	s.tos.Store(int32(tos))
	if o := s.off(); o != nil {
		o.queue(s) // the rules sending from this socket carry its TOS
	}
	return nil
}
