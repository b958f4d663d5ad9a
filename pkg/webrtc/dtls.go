// SPDX-License-Identifier: Apache-2.0

package webrtc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"

	"github.com/relayd/relayd/pkg/media"
)

// Role is the relay's side of a DTLS handshake, from a=setup.
type Role uint8

const (
	// Server: the relay is passive and waits for the peer's ClientHello.
	Server Role = iota
	// Client: the relay is active and starts the handshake once it knows
	// where the peer is (its ICE nomination, or its SDP address).
	Client
)

func (r Role) String() string {
	if r == Client {
		return "active"
	}
	return "passive"
}

// HandshakeTimeout bounds a DTLS handshake; pion retransmits flights within
// it.
const HandshakeTimeout = 30 * time.Second

// recordQueue is how many DTLS records wait for the handshake goroutine;
// more are dropped (a peer retransmits its flight).
const recordQueue = 64

// dtlsProfiles are the SRTP protection profiles offered in use_srtp, the
// relay's preference first (as a server it picks from this order: the
// incumbent also prefers AES-256-GCM there).
func dtlsProfiles() []dtls.SRTPProtectionProfile {
	return []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_256_GCM, dtls.SRTP_AEAD_AES_128_GCM,
		dtls.SRTP_AES128_CM_HMAC_SHA1_80, dtls.SRTP_AES128_CM_HMAC_SHA1_32}
}

// DTLSConfig configures one DTLS-SRTP endpoint of the relay.
type DTLSConfig struct {
	Identity *Identity
	Role     Role
	// Remote is the peer's a=fingerprint: its certificate must match.
	Remote Fingerprint
	// Stream is the relay socket the handshake runs on.
	Stream *media.Stream
	// FromDestinationOnly accepts records only from the stream's current
	// destination: with ICE, the pair the peer nominated.
	FromDestinationOnly bool
	// OnKeys receives the exported SRTP keys: local protects what the
	// relay sends, remote unprotects what the peer sends.
	OnKeys   func(local, remote Keys)
	Counters *Counters
	Logger   *slog.Logger
}

// DTLS is the handler stage of one DTLS-SRTP endpoint on a relay socket
// (RFC 5763, 5764; records told apart by RFC 7983's first byte). It hands
// the peer's records to a pion/dtls connection running in its own goroutine
// and sends that connection's records out of the same socket. On success the
// SRTP keys are exported to OnKeys.
type DTLS struct {
	cfg  DTLSConfig
	pc   *recordConn
	last atomic.Pointer[netip.AddrPort] // source of the peer's latest record

	once    sync.Once // starts the handshake
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	state   atomic.Int32 // dtlsState
	profile atomic.Uint32
}

type dtlsState int32

const (
	dtlsIdle dtlsState = iota
	dtlsHandshaking
	dtlsConnected
	dtlsFailed
	dtlsClosed
)

// NewDTLS prepares an endpoint. A server starts waiting for the peer at
// once; a client waits for StartClient.
func NewDTLS(cfg DTLSConfig) (*DTLS, error) {
	if cfg.Identity == nil || cfg.Stream == nil || cfg.Counters == nil {
		return nil, errors.New("DTLS endpoint needs an identity, a stream and counters")
	}
	if hashFor(cfg.Remote.Hash) == nil {
		return nil, fmt.Errorf("peer fingerprint %q: %w", cfg.Remote, ErrBadFingerprint)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &DTLS{cfg: cfg, done: make(chan struct{})}
	d.ctx, d.cancel = context.WithTimeout(context.Background(), HandshakeTimeout)
	d.pc = newRecordConn(d)
	if cfg.Role == Server {
		d.start(nil)
	}
	return d, nil
}

// Role is the relay's side of the handshake.
func (d *DTLS) Role() Role { return d.cfg.Role }

// Remote is the fingerprint the peer's certificate is checked against.
func (d *DTLS) Remote() Fingerprint { return d.cfg.Remote }

// Connected reports whether the handshake has completed.
func (d *DTLS) Connected() bool { return dtlsState(d.state.Load()) == dtlsConnected }

// Failed reports whether the handshake failed or timed out.
func (d *DTLS) Failed() bool { return dtlsState(d.state.Load()) == dtlsFailed }

// Profile is the negotiated SRTP protection profile (0 before).
func (d *DTLS) Profile() srtp.ProtectionProfile { return srtp.ProtectionProfile(d.profile.Load()) }

// StartClient starts the handshake of an active relay towards addr; for a
// server, or once started, it does nothing. It never blocks.
func (d *DTLS) StartClient(addr net.Addr) {
	if d.cfg.Role != Client {
		return
	}
	d.start(addr)
}

// Kernel is false: the kernel does not speak DTLS.
func (*DTLS) Kernel() bool { return false }

// Handle takes DTLS records; anything else goes on.
func (d *DTLS) Handle(p *media.Packet) media.Verdict {
	if p.Kind != media.KindDTLS {
		return media.Continue
	}
	if d.cfg.FromDestinationOnly {
		if dst, ok := p.Stream.Destination(); !ok || dst != p.Source {
			d.cfg.Counters.DTLSDropped.Add(1)
			return media.Consume
		}
	}
	src := p.Source
	d.last.Store(&src)
	if !d.pc.put(p.Data) {
		d.cfg.Counters.DTLSDropped.Add(1)
	}
	return media.Consume
}

// Close ends the endpoint (call over, or a new handshake replaces it).
func (d *DTLS) Close() {
	d.cancel()
	d.pc.close()
	d.once.Do(func() { close(d.done) }) // never started
	<-d.done
	d.state.Store(int32(dtlsClosed))
}

func (d *DTLS) start(addr net.Addr) {
	d.once.Do(func() {
		d.state.Store(int32(dtlsHandshaking))
		go d.run(addr)
	})
}

func (d *DTLS) run(addr net.Addr) {
	defer close(d.done)
	defer d.cancel()
	log := d.cfg.Logger.With("local", d.cfg.Stream.LocalAddr(), "role", d.cfg.Role.String())
	if addr == nil {
		addr = d.pc.peer()
	}
	opts := []dtls.Option{
		dtls.WithCertificates(d.cfg.Identity.Cert),
		dtls.WithSRTPProtectionProfiles(dtlsProfiles()...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// Self-signed certificates: the SDP fingerprint is the check.
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !d.cfg.Remote.Matches(raw[0]) {
				return ErrFingerprintMismatch
			}
			return nil
		}),
	}
	var conn *dtls.Conn
	var err error
	if d.cfg.Role == Client {
		copts := make([]dtls.ClientOption, 0, len(opts))
		for _, o := range opts {
			copts = append(copts, o)
		}
		conn, err = dtls.ClientWithOptions(d.pc, addr, copts...)
	} else {
		sopts := make([]dtls.ServerOption, 0, len(opts)+1)
		for _, o := range opts {
			sopts = append(sopts, o)
		}
		sopts = append(sopts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		conn, err = dtls.ServerWithOptions(d.pc, addr, sopts...)
	}
	if err == nil {
		err = conn.HandshakeContext(d.ctx)
	}
	if err == nil {
		err = d.export(conn)
	}
	if err != nil {
		if d.ctx.Err() == nil || !errors.Is(err, context.Canceled) {
			d.cfg.Counters.DTLSFailures.Add(1)
			log.Info("DTLS handshake failed", "error", err)
		}
		d.state.Store(int32(dtlsFailed))
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	d.cfg.Counters.DTLSHandshakes.Add(1)
	d.state.Store(int32(dtlsConnected))
	log.Debug("DTLS connected", "profile", d.Profile())
	// Keep the connection reading: pion answers a retransmitted final
	// flight and alerts from here, until the call ends.
	buf := make([]byte, 1500)
	go func() {
		<-d.pc.closed
		_ = conn.Close()
	}()
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}

// export derives the SRTP keys (RFC 5764 §4.2) and hands them over.
func (d *DTLS) export(conn *dtls.Conn) error {
	prof, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return ErrNoSRTPProfile
	}
	suite, err := SuiteByProfile(srtp.ProtectionProfile(prof))
	if err != nil {
		return err
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return errors.New("DTLS connection state unavailable after the handshake")
	}
	cfg := srtp.Config{Profile: suite.Profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, d.cfg.Role == Client); err != nil {
		return fmt.Errorf("export SRTP keys: %w", err)
	}
	d.profile.Store(uint32(suite.Profile))
	if d.cfg.OnKeys != nil {
		d.cfg.OnKeys(Keys{Suite: suite, Key: cfg.Keys.LocalMasterKey, Salt: cfg.Keys.LocalMasterSalt},
			Keys{Suite: suite, Key: cfg.Keys.RemoteMasterKey, Salt: cfg.Keys.RemoteMasterSalt})
	}
	return nil
}

// recordConn is the net.PacketConn pion/dtls runs on: records the stage
// takes in arrive through a queue, records it writes leave by the stream's
// socket towards the peer.
type recordConn struct {
	d         *DTLS
	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	deadline  time.Time
	// moved is closed (and replaced) when the read deadline changes, so
	// that a blocked read looks at the new one: pion interrupts a read
	// with a deadline in the past.
	moved chan struct{}
}

func newRecordConn(d *DTLS) *recordConn {
	return &recordConn{d: d, in: make(chan []byte, recordQueue), closed: make(chan struct{}),
		moved: make(chan struct{})}
}

func (c *recordConn) put(b []byte) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.in <- append([]byte(nil), b...):
		return true
	default:
		return false
	}
}

// peer is where the relay's records go: the source of the peer's latest
// record, else the stream's destination.
func (c *recordConn) peer() net.Addr {
	if p := c.d.last.Load(); p != nil {
		return net.UDPAddrFromAddrPort(*p)
	}
	if dst, ok := c.d.cfg.Stream.Destination(); ok {
		return net.UDPAddrFromAddrPort(dst)
	}
	return &net.UDPAddr{}
}

func (c *recordConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		c.mu.Lock()
		dl, moved := c.deadline, c.moved
		c.mu.Unlock()
		var timeout <-chan time.Time
		if !dl.IsZero() {
			if !time.Now().Before(dl) {
				return 0, nil, errTimeout{}
			}
			t := time.NewTimer(time.Until(dl))
			timeout = t.C
			defer t.Stop()
		}
		select {
		case rec := <-c.in:
			return copy(b, rec), c.peer(), nil
		case <-c.closed:
			return 0, nil, net.ErrClosed
		case <-timeout:
			return 0, nil, errTimeout{}
		case <-moved:
		}
	}
}

func (c *recordConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	var dst netip.AddrPort
	if p := c.d.last.Load(); p != nil {
		dst = *p
	} else if d, ok := c.d.cfg.Stream.Destination(); ok {
		dst = d
	} else {
		return 0, errors.New("DTLS peer address not known yet")
	}
	if !c.d.cfg.Stream.Send(b, dst) {
		return 0, errors.New("relay socket queue full or stream detached")
	}
	return len(b), nil
}

func (c *recordConn) close() {
	c.closeOnce.Do(func() { close(c.closed) })
}

func (c *recordConn) Close() error {
	c.close()
	return nil
}

func (c *recordConn) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(c.d.cfg.Stream.LocalAddr())
}

func (c *recordConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *recordConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.moved)
	c.moved = make(chan struct{})
	c.mu.Unlock()
	return nil
}

func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }

// errTimeout is a net.Error timeout, as pion expects from a read deadline.
type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }
