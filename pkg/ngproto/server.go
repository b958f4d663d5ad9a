// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/lograte"
)

// Handler executes one decoded request and returns its reply. It is called
// concurrently, at most once per cookie within the reply cache lifetime.
// A nil reply is answered as an internal error.
type Handler interface {
	HandleNG(ctx context.Context, req *Request, from netip.AddrPort) Reply
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request, from netip.AddrPort) Reply

// HandleNG calls f.
func (f HandlerFunc) HandleNG(ctx context.Context, req *Request, from netip.AddrPort) Reply {
	return f(ctx, req, from)
}

// DefaultMaxInFlight bounds concurrently running handlers.
const DefaultMaxInFlight = 256

// ServerConfig configures the UDP control server; zero fields take defaults.
type ServerConfig struct {
	// Addr is the listen address. An unspecified IPv6 address listens on
	// IPv4 too; with an unspecified address replies still leave from the
	// address each request was sent to.
	Addr   netip.AddrPort
	Logger *slog.Logger
	// MaxMessage is the largest accepted datagram (DefaultMaxMessage).
	MaxMessage int
	// MaxDepth is the deepest accepted dictionary nesting (DefaultMaxDepth).
	MaxDepth int
	// MaxReply is the largest reply datagram (MaxReplyDatagram, also the
	// most it may be): larger replies are sent without their bulkiest
	// optional parts (see shedReply), with a warning.
	MaxReply int
	// CacheInterval is the reply cache generation length (DefaultCacheInterval).
	CacheInterval time.Duration
	// CacheEntries and CacheBytes bound the reply cache
	// (DefaultCacheEntries, DefaultCacheBytes).
	CacheEntries int
	CacheBytes   int
	// MaxInFlight bounds concurrently running handlers (DefaultMaxInFlight);
	// when reached, the server stops reading until one finishes.
	MaxInFlight int
	// Allow, when not empty, lists the proxies (addresses or prefixes) that
	// may send requests: datagrams from any other source are dropped and
	// counted (ServerStats.Refused), never answered, not even from the
	// reply cache. Empty allows every source.
	Allow []netip.Prefix
	// LogLimit shapes the rate limit of the lines that datagrams can
	// trigger (malformed requests, refused sources, failed sends).
	LogLimit lograte.Config
}

// Server answers ng requests over UDP.
type Server struct {
	cfg     ServerConfig
	h       Handler
	log     *slog.Logger
	conn    *net.UDPConn
	local   netip.AddrPort
	v6      bool // the socket is AF_INET6
	pktinfo bool // replies need an explicit source address
	limits  Limits
	cache   *Cache
	allow   atomic.Pointer[[]netip.Prefix]
	lim     *lograte.Limiter
	// Requests run on long-lived workers: a goroutine per datagram grew
	// its stack from scratch for every request (about 8 % of the control
	// plane's CPU). sem holds one token per worker, so at most
	// MaxInFlight run; an idle worker waits on jobs and leaves after
	// workerIdle without work.
	sem     chan struct{}
	jobs    chan job
	done    chan struct{} // closed when the read loop ends: idle workers leave
	wg      sync.WaitGroup
	serving atomic.Bool
	stats   statsCollector
}

// NewServer binds the UDP socket; Serve then answers requests on it.
func NewServer(cfg ServerConfig, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("ng server needs a handler")
	}
	if !cfg.Addr.IsValid() {
		return nil, fmt.Errorf("invalid ng listen address %v", cfg.Addr)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxReply <= 0 || cfg.MaxReply > MaxReplyDatagram {
		cfg.MaxReply = MaxReplyDatagram
	}
	addr := netip.AddrPortFrom(cfg.Addr.Addr().Unmap(), cfg.Addr.Port())
	network := "udp6"
	switch {
	case addr.Addr().Is4():
		network = "udp4"
	case addr.Addr().IsUnspecified():
		// Dual-stack: Go leaves IPV6_V6ONLY off for "udp" on [::].
		network = "udp"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, fmt.Errorf("listen for ng on %v: %w", addr, err)
	}
	s := &Server{
		cfg:    cfg,
		h:      h,
		log:    cfg.Logger,
		conn:   conn,
		local:  conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		v6:     !addr.Addr().Is4(),
		limits: Limits{MaxSize: cfg.MaxMessage, MaxDepth: cfg.MaxDepth},
		cache: NewCache(CacheConfig{
			Interval:   cfg.CacheInterval,
			MaxEntries: cfg.CacheEntries,
			MaxBytes:   cfg.CacheBytes,
		}),
		sem:  make(chan struct{}, cfg.MaxInFlight),
		jobs: make(chan job),
		done: make(chan struct{}),
		lim:  lograte.New(cfg.Logger, cfg.LogLimit),
	}
	s.SetAllow(cfg.Allow)
	if addr.Addr().IsUnspecified() {
		if err := enablePktinfo(conn, s.v6); err != nil {
			conn.Close()
			return nil, fmt.Errorf("listen for ng on %v: %w", addr, err)
		}
		s.pktinfo = true
	}
	return s, nil
}

// SetAllow replaces the list of sources allowed to send requests (empty:
// every source); safe while serving (SIGHUP).
func (s *Server) SetAllow(prefixes []netip.Prefix) {
	list := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		// The socket reports IPv4 sources on a dual-stack socket as
		// IPv4-mapped; compare plain IPv4.
		if a := p.Addr(); a.Is4In6() {
			bits := p.Bits() - 96
			if bits < 0 {
				bits = 0
			}
			p = netip.PrefixFrom(a.Unmap(), bits)
		}
		list = append(list, p.Masked())
	}
	s.allow.Store(&list)
}

// allowed tells whether requests from a may be answered.
func (s *Server) allowed(a netip.Addr) bool {
	list := *s.allow.Load()
	if len(list) == 0 {
		return true
	}
	a = a.Unmap()
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// LocalAddr returns the bound address (with the actual port when 0 was asked).
func (s *Server) LocalAddr() netip.AddrPort { return s.local }

// Close releases the socket of a server that is not serving; a serving
// server stops and Serve returns.
func (s *Server) Close() error { return s.conn.Close() }

// Serve answers requests until ctx is done, waits for running handlers to
// finish (they see ctx cancelled), then closes the socket.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return ErrServing
	}
	defer s.conn.Close()
	// A read deadline in the past unblocks the read loop without closing
	// the socket, so running handlers can still send their replies.
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	s.log.Info("ng control server listening", "address", s.local)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		s.sweep(sweepCtx)
	}()
	defer func() { stopSweep(); <-sweepDone }()
	buf := make([]byte, s.cfg.MaxMessage+1) // one spare byte detects oversized datagrams
	oob := make([]byte, oobSize())
	var readErrors int
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Transient errors (ICMP-induced ECONNREFUSED, ENOBUFS): keep
			// serving, but do not spin or flood the log.
			readErrors++
			if readErrors <= 10 || readErrors%1000 == 0 {
				s.log.Warn("ng socket read failed", "error", err, "count", readErrors)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if !s.allowed(from.Addr()) {
			s.stats.refused()
			s.lim.Log(slog.LevelWarn, "refusing ng datagram from a source not in ng-allow-from", "not allowed",
				from.Addr(), "size", n)
			continue
		}
		var local netip.Addr
		if s.pktinfo {
			local = pktinfoDst(oob[:oobn])
		}
		pkt := make([]byte, n)
		copy(pkt, buf[:n])
		s.datagram(ctx, pkt, from, local)
	}
	close(s.done)
	s.wg.Wait()
	return nil
}

// sweep lets the reply cache drop aged replies while no request comes.
func (s *Server) sweep(ctx context.Context) {
	every := s.cfg.CacheInterval
	if every <= 0 {
		every = DefaultCacheInterval
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.cache.Sweep()
		}
	}
}

func (s *Server) datagram(ctx context.Context, pkt []byte, from netip.AddrPort, local netip.Addr) {
	oversized := len(pkt) > s.cfg.MaxMessage
	cookie, body, err := SplitMessage(pkt)
	if err != nil {
		s.stats.dropped()
		s.lim.Log(slog.LevelDebug, "dropping ng datagram without cookie", "no cookie", from.Addr(),
			"port", from.Port(), "size", len(pkt))
		return
	}
	reply, pend, outcome := s.cache.Begin(cookie, func(b []byte) {
		if b != nil {
			s.send(b, from, local)
		}
	})
	switch outcome {
	case Hit:
		s.stats.retransmit()
		s.lim.Log(slog.LevelDebug, "ng retransmission answered from cache", "hit", from.Addr(), "cookie", cookie, "port", from.Port())
		s.send(reply, from, local)
		return
	case Waiting, Busy:
		s.stats.retransmit()
		s.lim.Log(slog.LevelDebug, "ng retransmission of a running request", outcome.String(), from.Addr(), "cookie", cookie, "port", from.Port())
		return
	}
	j := job{pend: pend, cookie: cookie, body: body, oversized: oversized, from: from, local: local}
	select {
	case s.jobs <- j: // an idle worker took it
		return
	default:
	}
	select {
	case s.jobs <- j:
	case s.sem <- struct{}{}:
		s.wg.Add(1)
		go s.worker(ctx, j)
	case <-ctx.Done():
		pend.Abandon()
	}
}

// job is one request waiting for a worker.
type job struct {
	pend      *Pending
	cookie    string
	body      []byte
	oversized bool
	from      netip.AddrPort
	local     netip.Addr
}

// workerIdle is how long a worker waits for the next request before it
// leaves: long enough to outlast the gaps of a busy proxy's traffic, short
// enough that a burst's workers do not stay forever.
const workerIdle = 30 * time.Second

func (s *Server) worker(ctx context.Context, j job) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		s.run(ctx, j.pend, j.cookie, j.body, j.oversized, j.from, j.local)
		idle.Reset(workerIdle)
		select {
		case j = <-s.jobs:
		case <-idle.C:
			return
		case <-s.done:
			return
		}
	}
}

// run handles one request. Nothing in it may take the daemon down: a panic
// becomes an "internal error" reply.
func (s *Server) run(ctx context.Context, pend *Pending, cookie string, body []byte, oversized bool, from netip.AddrPort, local netip.Addr) {
	done := false
	defer func() {
		if done {
			return
		}
		if r := recover(); r != nil {
			s.lim.Log(slog.LevelError, "ng request processing panicked", "panic", from.Addr(),
				"cookie", cookie, "port", from.Port(), "panic", r, "stack", string(debug.Stack()))
		}
		b, err := Encode(cookie, FormatBencode, ErrorReply(ReasonInternal))
		if err != nil {
			pend.Abandon()
			return
		}
		s.send(b, from, local)
		pend.Complete(b)
	}()
	out := s.process(ctx, cookie, body, oversized, from)
	done = true
	if out == nil {
		pend.Abandon()
		return
	}
	s.send(out, from, local)
	pend.Complete(out)
}

// process turns a request body into the encoded reply datagram (nil only if
// even an error reply cannot be encoded).
func (s *Server) process(ctx context.Context, cookie string, body []byte, oversized bool, from netip.AddrPort) []byte {
	start := time.Now()
	var (
		rep    Reply
		format Format
		req    *Request
		err    error
	)
	if len(body) > 0 && body[0] == '{' {
		format = FormatJSON
	}
	if oversized {
		err = fmt.Errorf("datagram larger than %d bytes: %w", s.cfg.MaxMessage, ErrTooLarge)
	} else {
		req, format, err = decodeRequest(s.limits, body)
	}
	var command, callID string
	if req != nil {
		command, callID = req.Command, req.CallID
	}
	if err != nil {
		s.lim.Log(slog.LevelInfo, "rejecting ng request", errKind(err), from.Addr(), "reason", Reason(err),
			"error", err, "command", command, "call-id", callID, "cookie", cookie, "port", from.Port())
		rep = ErrorReply(Reason(err))
		command = ""
	} else {
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.Debug("ng request", "command", command, "call-id", callID, "cookie", cookie, "source", from)
		}
		if len(req.Ignored) > 0 {
			s.lim.Log(slog.LevelInfo, "ignoring unknown ng keys, flags or values", "ignored", from.Addr(),
				"command", command, "call-id", callID, "ignored", req.Ignored)
		}
		rep = s.callHandler(ctx, req, from)
	}
	// Typed replies always encode; only a bad cookie fails here, and
	// SplitMessage rules that out.
	b, err := Encode(cookie, format, rep)
	if err != nil {
		s.log.Error("cannot encode ng reply", "command", command, "call-id", callID, "cookie", cookie, "error", err)
		b = nil
	}
	if len(b) > s.cfg.MaxReply {
		size := len(b)
		var left []string
		b, left = shedReply(cookie, format, rep, size, s.cfg.MaxReply)
		s.stats.shed()
		s.lim.Log(slog.LevelWarn, "ng reply too large for one datagram: sent without its bulkiest parts", "shed",
			from.Addr(), "command", command, "call-id", callID, "size", size, "sent", len(b), "left_out", left)
	}
	s.stats.request(command, from.Addr().Unmap(), rep.IsError(), time.Since(start))
	return b
}

// decodeRequest decodes and types one request body. On error the Format is
// still the body's (for the error reply) and the Request, when not nil, holds
// what was decoded (for the log line).
func decodeRequest(l Limits, body []byte) (*Request, Format, error) {
	dict, f, err := l.DecodeValue(body)
	if err != nil {
		return nil, f, err
	}
	req, err := parseRequest(dict)
	return req, f, err
}

func (s *Server) callHandler(ctx context.Context, req *Request, from netip.AddrPort) (rep Reply) {
	defer func() {
		if r := recover(); r != nil {
			s.lim.Log(slog.LevelError, "ng handler panicked", "panic", from.Addr(), "command", req.Command, "call-id", req.CallID,
				"panic", r, "stack", string(debug.Stack()))
			rep = ErrorReply(ReasonInternal)
		}
	}()
	rep = s.h.HandleNG(ctx, req, from)
	if rep.IsZero() {
		s.log.Error("ng handler returned no reply", "command", req.Command, "call-id", req.CallID)
		rep = ErrorReply(ReasonInternal)
	}
	return rep
}

func (s *Server) send(b []byte, to netip.AddrPort, local netip.Addr) {
	var oob []byte
	if s.pktinfo {
		oob = pktinfoSrc(local, s.v6)
	}
	if _, _, err := s.conn.WriteMsgUDPAddrPort(b, oob, to); err != nil {
		s.stats.sendError()
		s.lim.Log(slog.LevelWarn, "cannot send ng reply", "send", to.Addr(), "port", to.Port(),
			"size", len(b), "error", err)
		return
	}
	s.stats.reply()
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() ServerStats {
	st := s.stats.snapshot()
	st.CacheEntries, st.CacheBytes = s.cache.Size()
	return st
}
