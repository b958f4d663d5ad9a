// SPDX-License-Identifier: Apache-2.0

// Package cli is the operator's command line: the incumbent's text protocol
// on listen-cli (one command line over TCP, the reply until the server
// closes), so Debian's rtpengine-ctl and drain scripts written for the
// incumbent work against relayd, and the client behind `relayd ctl`.
//
// Replies follow rtpengine 10.5's wording and layout where relayd has the
// same data (captured from the incumbent on a test machine); where relayd
// differs, the README's Operations section says how.
package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// Sessions is what the CLI needs from the session manager.
type Sessions interface {
	Sessions() []session.SessionSummary
	Session(callID string) (session.SessionSummary, error)
	Terminate(callID string) error
	TerminateAll() int
	TerminateOwn() int
	TerminateForeign() int
	// TakeOverAll makes every foreign call own (this relay is the active
	// one now), StandbyAll every own call foreign.
	TakeOverAll() int
	StandbyAll() int
	Limits() session.Limits
	SetLimits(session.Limits)
	Statistics() session.Statistics
	DurationStats() (total time.Duration, sumSquares float64, ended uint64)
}

// LogLevel is relayd's run-time log level on the syslog scale (0-7).
type LogLevel interface {
	Level() int
	SetLevel(int)
}

// Config wires the CLI server.
type Config struct {
	Addr      netip.AddrPort
	Sessions  Sessions
	LogLevel  LogLevel
	JSONStats func() any // the ng statistics dictionary as generic values (list jsonstats)
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// maxLine bounds a command line; the incumbent's tool sends one short line.
const maxLine = 4096

// connTimeout bounds how long one client may take to send its line.
const connTimeout = 5 * time.Second

// maxConns bounds concurrent connections: the CLI is for people and scripts.
const maxConns = 16

// Server answers CLI connections.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	addr netip.AddrPort
	sem  chan struct{}
	wg   sync.WaitGroup
}

// Listen binds the CLI's TCP address.
func Listen(cfg Config) (*Server, error) {
	if cfg.Sessions == nil {
		return nil, errors.New("cli: no session manager")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ln, err := net.Listen("tcp", cfg.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen-cli %s: %w", cfg.Addr, err)
	}
	return &Server{cfg: cfg, log: cfg.Logger.With("component", "cli"), ln: ln,
		addr: ln.Addr().(*net.TCPAddr).AddrPort(), sem: make(chan struct{}, maxConns)}, nil
}

// Addr is the bound address.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Serve answers connections until ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		s.ln.Close()
	}()
	defer s.wg.Wait()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("cli accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.handle(conn)
		}()
	}
}

func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(connTimeout))
	line, err := bufio.NewReaderSize(io.LimitReader(conn, maxLine), maxLine).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		s.log.Debug("cli: reading the command", "remote", conn.RemoteAddr(), "error", err)
		return
	}
	reply := s.Execute(line)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a long session list takes a while to send
	if _, err := io.WriteString(conn, reply); err != nil {
		s.log.Debug("cli: writing the reply", "remote", conn.RemoteAddr(), "error", err)
	}
}

// Close releases the listener of a server that was never served.
func (s *Server) Close() error { return s.ln.Close() }
