// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/payload"
	"github.com/relayd/relayd/bench/internal/sdes"
)

// Side is where one party of every call lives.
type Side struct {
	NSPath string       // namespace of the endpoint sockets ("" = the current one)
	Addrs  []netip.Addr // endpoint addresses (IPv4), local in that namespace
	// PortBase is the first port; sockets use PortBase, PortBase+2, ...
	// 0 lets the kernel choose (tests).
	PortBase int
}

// Config describes a generator.
type Config struct {
	Sides [2]Side // callers, callees
	// CPUs gets one worker each, pinned; empty runs one unpinned worker.
	CPUs []int
	// MaxCalls is the most calls alive at once.
	MaxCalls   int
	PPS        float64       // packets per second per stream (default 50)
	PayloadLen int           // RTP payload bytes (default 160)
	Tick       time.Duration // pacing tick (default 1 ms)
	SendBatch  int           // packets per sendmmsg at most (default 16)
	RecvBatch  int           // packets per recvmmsg (default 64)
	SocketBuf  int           // SO_RCVBUF/SO_SNDBUF of endpoint sockets (default 4 MiB)
	Run        uint32        // run id in every payload
	// Transcode prepares the sockets for transcoded calls
	// (ActivateTranscode): their packets carry no bench header, so each is
	// told apart by the address it was sent to (IP_PKTINFO).
	Transcode bool
	Log       *slog.Logger
}

func (c *Config) defaults() error {
	if c.PPS <= 0 {
		c.PPS = 50
	}
	if c.PayloadLen == 0 {
		c.PayloadLen = 160
	}
	if c.Tick <= 0 {
		c.Tick = time.Millisecond
	}
	if c.SendBatch <= 0 {
		c.SendBatch = 16
	}
	if c.RecvBatch <= 0 {
		c.RecvBatch = 64
	}
	if c.SocketBuf <= 0 {
		c.SocketBuf = 4 << 20
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.MaxCalls <= 0 {
		return fmt.Errorf("generator needs MaxCalls > 0, got %d", c.MaxCalls)
	}
	for i, s := range c.Sides {
		if len(s.Addrs) == 0 {
			return fmt.Errorf("generator side %d has no addresses", i)
		}
		for _, a := range s.Addrs {
			if !a.Is4() {
				return fmt.Errorf("generator side %d: %s is not IPv4", i, a)
			}
		}
	}
	return nil
}

// CallSlot is one call's place in the generator: which worker, which index,
// and the two endpoints its SDP must announce.
type CallSlot struct {
	Worker, Index  int
	Caller, Callee netip.AddrPort
}

// CallTotals are one call's packet counts since it was activated, per
// direction: [0] caller->callee, [1] callee->caller.
type CallTotals struct {
	Sent, Received [2]uint64
}

// Generator is the set of workers and their sockets.
type Generator struct {
	cfg     Config
	win     sharedWindow
	workers []*worker
	fds     []int
	ports   [2][][]uint16 // [side][worker][socket] port
	perSide int
	k       int // addresses used per side
	// addrIdx finds an endpoint address's index among the k of its side.
	addrIdx [2]map[[4]byte]int32
	calls   int // per worker
	size    int // datagram size

	mu      sync.Mutex
	free    [][]int // per worker, free call indices
	gens    [][]uint32
	started bool
	closed  bool
}

// New creates the sockets (inside each side's namespace) and the workers;
// Start starts them.
func New(cfg Config) (*Generator, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	size, err := payload.Size(cfg.PayloadLen)
	if err != nil {
		return nil, err
	}
	nw := max(len(cfg.CPUs), 1)
	calls := (cfg.MaxCalls + nw - 1) / nw
	k := min(len(cfg.Sides[0].Addrs), len(cfg.Sides[1].Addrs))
	perSide := (calls + k - 1) / k
	g := &Generator{cfg: cfg, perSide: perSide, k: k, calls: calls, size: size}
	for side := range 2 {
		g.addrIdx[side] = map[[4]byte]int32{}
		for i, a := range cfg.Sides[side].Addrs[:k] {
			g.addrIdx[side][a.As4()] = int32(i)
		}
	}
	g.win.start.Store(math.MaxInt64)
	g.win.end.Store(math.MaxInt64)
	for side := range 2 {
		g.ports[side] = make([][]uint16, nw)
	}
	for w := range nw {
		var socks []int
		for side := range 2 {
			fds, ports, err := g.openSockets(cfg.Sides[side], w*perSide, perSide)
			g.fds = append(g.fds, fds...)
			if err != nil {
				g.closeFDs()
				return nil, err
			}
			socks = append(socks, fds...)
			g.ports[side][w] = ports
		}
		cpu := -1
		if len(cfg.CPUs) > 0 {
			cpu = cfg.CPUs[w]
		}
		wk := newWorker(w, cpu, &g.cfg, &g.win, socks, perSide, calls, size)
		wk.k, wk.addrIdx = k, &g.addrIdx
		g.workers = append(g.workers, wk)
		free := make([]int, calls)
		for i := range free {
			free[i] = calls - 1 - i // pop from the end: index 0 first
		}
		g.free = append(g.free, free)
		g.gens = append(g.gens, make([]uint32, calls))
	}
	return g, nil
}

// openSockets opens n UDP sockets in the side's namespace, bound to the
// wildcard address: one socket serves every address of the side on its
// port.
func (g *Generator) openSockets(s Side, first, n int) ([]int, []uint16, error) {
	var fds []int
	var ports []uint16
	err := netns.Do(s.NSPath, func() error {
		for i := range n {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			fds = append(fds, fd)
			// Large buffers so that the bench's own sockets never drop
			// what the relay delivered; FORCE needs CAP_NET_ADMIN, the
			// plain option is the fallback (capped by rmem_max).
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, g.cfg.SocketBuf) != nil {
				_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, g.cfg.SocketBuf)
			}
			if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, g.cfg.SocketBuf/4) != nil {
				_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, g.cfg.SocketBuf/4)
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
				return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
			}
			if g.cfg.Transcode {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
					return fmt.Errorf("IP_PKTINFO: %w", err)
				}
			}
			port := 0
			if s.PortBase > 0 {
				port = s.PortBase + 2*(first+i)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
				return fmt.Errorf("bind 0.0.0.0:%d: %w", port, err)
			}
			sa, err := unix.Getsockname(fd)
			if err != nil {
				return fmt.Errorf("getsockname: %w", err)
			}
			ports = append(ports, uint16(sa.(*unix.SockaddrInet4).Port))
		}
		return nil
	})
	return fds, ports, err
}

// Start starts the worker threads.
func (g *Generator) Start() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	if g.started {
		return nil
	}
	g.started = true
	for _, w := range g.workers {
		go w.loop()
	}
	return nil
}

// Workers reports how many workers run.
func (g *Generator) Workers() int { return len(g.workers) }

// Sockets reports how many endpoint sockets the generator holds.
func (g *Generator) Sockets() int { return len(g.fds) }

// Allocate reserves a call slot on the worker with the most room.
func (g *Generator) Allocate() (CallSlot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	best := -1
	for w, f := range g.free {
		if len(f) > 0 && (best < 0 || len(f) > len(g.free[best])) {
			best = w
		}
	}
	if best < 0 {
		return CallSlot{}, ErrFull
	}
	f := g.free[best]
	idx := f[len(f)-1]
	g.free[best] = f[:len(f)-1]
	return g.slot(best, idx), nil
}

func (g *Generator) slot(w, idx int) CallSlot {
	endpoint := func(side int) netip.AddrPort {
		return netip.AddrPortFrom(g.cfg.Sides[side].Addrs[idx%g.k], g.ports[side][w][idx/g.k])
	}
	return CallSlot{Worker: w, Index: idx, Caller: endpoint(0), Callee: endpoint(1)}
}

// Release returns a deactivated call slot to the free list.
func (g *Generator) Release(cs CallSlot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.free[cs.Worker] = append(g.free[cs.Worker], cs.Index)
}

// Activate starts the call's media: the caller sends to callerSendTo, the
// callee to calleeSendTo, both with payload type pt.
func (g *Generator) Activate(cs CallSlot, callerSendTo, calleeSendTo netip.AddrPort, pt int) error {
	return g.ActivateSRTP(cs, callerSendTo, calleeSendTo, pt, nil)
}

// SRTPCall keys a call's caller leg with SDES: the caller encrypts what it
// sends with Send and decrypts and authenticates what it receives with
// Recv; the callee's leg stays plain RTP.
type SRTPCall struct {
	Send, Recv sdes.Key
	// Forge is the sequence number of one caller packet sent with a broken
	// authentication tag (0: none). A relay that authenticates drops it;
	// one that reaches the callee is counted (SRTPTotals.ForgedPassed).
	Forge uint64
}

// ActivateSRTP starts the call's media like Activate, with the caller's
// leg SRTP when sec is not nil.
func (g *Generator) ActivateSRTP(cs CallSlot, callerSendTo, calleeSendTo netip.AddrPort, pt int, sec *SRTPCall) error {
	if !callerSendTo.Addr().Is4() || !calleeSendTo.Addr().Is4() {
		return fmt.Errorf("call media must be IPv4, got %s and %s", callerSendTo, calleeSendTo)
	}
	var tx, rx *srtp.Context
	if sec != nil {
		var err error
		if tx, err = sec.Send.Context(); err != nil {
			return err
		}
		if rx, err = sec.Recv.Context(); err != nil {
			return err
		}
	}
	g.mu.Lock()
	g.gens[cs.Worker][cs.Index]++
	gen := g.gens[cs.Worker][cs.Index]
	g.mu.Unlock()
	samples := uint32(math.Round(8000 / g.cfg.PPS))
	mk := func(s, sock int, src netip.Addr, dst netip.AddrPort) op {
		return op{kind: opActivate, stream: s, st: stream{
			gen: gen, sock: int32(sock), src: src.As4(), dst: sockaddr4(dst),
			hdr: payload.Header{PT: uint8(pt), SSRC: ssrc(g.cfg.Run, cs.Worker, s, gen), SamplesPerPacket: samples},
		}}
	}
	up := mk(2*cs.Index, cs.Index/g.k, cs.Caller.Addr(), callerSendTo)
	down := mk(2*cs.Index+1, g.perSide+cs.Index/g.k, cs.Callee.Addr(), calleeSendTo)
	if sec != nil {
		up.st.tx, up.st.forge = tx, sec.Forge
		down.st.rx = rx
	}
	g.workers[cs.Worker].queue(up, down)
	return nil
}

func ssrc(run uint32, w, s int, gen uint32) uint32 {
	h := fnv.New32a()
	var b [16]byte
	for i, v := range []uint32{run, uint32(w), uint32(s), gen} {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	h.Write(b[:])
	return h.Sum32()
}

// Deactivate stops the call's media (packets in flight are still counted).
func (g *Generator) Deactivate(cs CallSlot) {
	g.workers[cs.Worker].queue(
		op{kind: opDeactivate, stream: 2 * cs.Index},
		op{kind: opDeactivate, stream: 2*cs.Index + 1},
	)
}

// BeginWindow starts a measurement window at (or, per worker, as soon as
// possible after) at.
func (g *Generator) BeginWindow(at time.Time) {
	g.win.end.Store(math.MaxInt64)
	g.win.start.Store(at.UnixNano())
	g.win.id.Add(1)
}

// EndWindow ends the window: packets sent from now on are not counted;
// packets sent before are, whenever they arrive until Report.
func (g *Generator) EndWindow(at time.Time) {
	g.win.end.Store(at.UnixNano())
}

// Totals are lifetime packets sent and received, for a progress line.
func (g *Generator) Totals() (sent, recv uint64) {
	for _, w := range g.workers {
		sent += w.sentTotal.Load()
		recv += w.recvTotal.Load()
	}
	return sent, recv
}

// SRTPTotals are the lifetime counts of the SRTP legs' packets, summed
// over the workers.
type SRTPTotals struct {
	// Encrypted are packets the SRTP callers sent, Decrypted packets they
	// received that authenticated with the relay's key.
	Encrypted, Decrypted uint64
	// AuthFailed are packets to an SRTP caller that did not authenticate
	// with the key of the relay's answer (or were not SRTP at all).
	AuthFailed uint64
	// PlainOnSRTP are plain bench packets that reached an SRTP caller: the
	// relay forwarded without encrypting.
	PlainOnSRTP uint64
	// Corrupt are packets of an SRTP call whose payload, once decrypted
	// (by the relay towards the callee, by the bench towards the caller),
	// is not the payload that was sent.
	Corrupt uint64
	// ForgedSent are caller packets sent with a broken authentication
	// tag, ForgedPassed those of them that reached the callee anyway.
	ForgedSent, ForgedPassed uint64
}

// Sub returns a-b, counter by counter.
func (a SRTPTotals) Sub(b SRTPTotals) SRTPTotals {
	return SRTPTotals{
		Encrypted: a.Encrypted - b.Encrypted, Decrypted: a.Decrypted - b.Decrypted, AuthFailed: a.AuthFailed - b.AuthFailed,
		PlainOnSRTP: a.PlainOnSRTP - b.PlainOnSRTP, Corrupt: a.Corrupt - b.Corrupt,
		ForgedSent: a.ForgedSent - b.ForgedSent, ForgedPassed: a.ForgedPassed - b.ForgedPassed,
	}
}

// Failures are the counts that mean a relay did not terminate SRTP
// correctly.
func (a SRTPTotals) Failures() uint64 {
	return a.AuthFailed + a.PlainOnSRTP + a.Corrupt + a.ForgedPassed
}

// SRTPTotals are the SRTP legs' lifetime counts.
func (g *Generator) SRTPTotals() SRTPTotals {
	var t SRTPTotals
	for _, w := range g.workers {
		c := &w.srtpTotals
		t.Encrypted += c.encrypted.Load()
		t.Decrypted += c.decrypted.Load()
		t.AuthFailed += c.authFailed.Load()
		t.PlainOnSRTP += c.plainOnSRTP.Load()
		t.Corrupt += c.corrupt.Load()
		t.ForgedSent += c.forgedSent.Load()
		t.ForgedPassed += c.forgedPassed.Load()
	}
	return t
}

// Report is one window's media measurements.
type Report struct {
	WindowSec  float64
	Sent       uint64 // packets sent in the window
	Received   uint64 // of those, received (duplicates excluded)
	Duplicates uint64
	Reordered  uint64
	// Stray are datagrams that were not the bench's (or not this run's);
	// OldCall are late packets of a call whose slot was reused.
	Stray, OldCall uint64
	SendErrors     uint64 // sendmmsg refused the packet
	Skipped        uint64 // fell more than 100 ms behind schedule: not sent
	NoTimestamp    uint64
	Latency        metrics.Histogram // one-way transit, ns
	JitterMeanUs   float64           // mean over streams of RFC 3550 jitter
	Streams        int               // streams active for the whole window
	DeadStreams    int               // of those, streams that received nothing
	MaxLagMs       float64           // worst pacing lag in the window
	Calls          []CallTotals      // for the calls asked about, in order
	PerStream      []StreamStat      // ReportStreams only
}

// Loss is the fraction of window packets that did not arrive.
func (r *Report) Loss() float64 {
	if r.Sent == 0 {
		return 0
	}
	if r.Received >= r.Sent {
		return 0
	}
	return float64(r.Sent-r.Received) / float64(r.Sent)
}

// Report collects the window's figures from every worker, and the lifetime
// totals of the given calls.
func (g *Generator) Report(ctx context.Context, calls []CallSlot) (*Report, error) {
	return g.report(ctx, calls, false)
}

func (g *Generator) report(ctx context.Context, calls []CallSlot, perStream bool) (*Report, error) {
	perWorker := make([][]int, len(g.workers))
	for _, c := range calls {
		perWorker[c.Worker] = append(perWorker[c.Worker], c.Index)
	}
	out := &Report{}
	var winSum float64
	var jitterSum float64
	var jitterN int
	got := make([][]CallTotals, len(g.workers))
	for i, w := range g.workers {
		req := reportReq{calls: perWorker[i], perStream: perStream, reply: make(chan workerReport, 1)}
		select {
		case w.reqs <- req:
		case <-w.done:
			return nil, g.workerErr(w)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var r workerReport
		select {
		case r = <-req.reply:
		case <-w.done:
			return nil, g.workerErr(w)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		winSum += float64(r.windowNs) / 1e9
		out.Sent += r.sent
		out.Received += r.recv
		out.Duplicates += r.dup
		out.Reordered += r.reordered
		out.Stray += r.stray
		out.OldCall += r.oldCall
		out.SendErrors += r.sendErrors
		out.Skipped += r.skipped
		out.NoTimestamp += r.noTimestamp
		out.Latency.Merge(&r.hist)
		jitterSum += r.jitterSum
		jitterN += r.jitterN
		out.Streams += r.streamsInWindow
		out.DeadStreams += r.dead
		out.MaxLagMs = max(out.MaxLagMs, float64(r.maxLagNs)/1e6)
		got[i] = r.calls
		out.PerStream = append(out.PerStream, r.streams...)
	}
	out.WindowSec = winSum / float64(len(g.workers))
	if jitterN > 0 {
		out.JitterMeanUs = jitterSum / float64(jitterN) / 1e3
	}
	next := make([]int, len(g.workers))
	for _, c := range calls {
		out.Calls = append(out.Calls, got[c.Worker][next[c.Worker]])
		next[c.Worker]++
	}
	return out, nil
}

func (g *Generator) workerErr(w *worker) error {
	if w.err != nil {
		return fmt.Errorf("generator worker %d: %w", w.id, w.err)
	}
	return fmt.Errorf("generator worker %d: %w", w.id, ErrClosed)
}

// Err returns the first worker failure, if any worker stopped on its own.
func (g *Generator) Err() error {
	var errs []error
	for _, w := range g.workers {
		select {
		case <-w.done:
			if w.err != nil {
				errs = append(errs, g.workerErr(w))
			}
		default:
		}
	}
	return errors.Join(errs...)
}

// Close stops the workers and closes every socket.
func (g *Generator) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	started := g.started
	g.mu.Unlock()
	for _, w := range g.workers {
		w.stop.Store(true)
	}
	if started {
		for _, w := range g.workers {
			<-w.done
		}
	}
	g.closeFDs()
	return g.Err()
}

func (g *Generator) closeFDs() {
	for _, fd := range g.fds {
		_ = unix.Close(fd)
	}
	g.fds = nil
}
