// SPDX-License-Identifier: Apache-2.0

//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// maxDrainRounds bounds how many full batches one readiness event reads from a
// socket, so a flooded socket cannot starve the others; epoll is
// level-triggered, so what is left is reported again.
const maxDrainRounds = 4

const (
	wakeID      = 0 // epoll data of the eventfd; stream ids start at 1
	epollEvents = 128
)

type opKind uint8

const (
	opAdd opKind = iota
	opDel
)

type op struct {
	kind opKind
	s    *Stream
	done chan error
}

// worker owns an epoll set, its streams and its receive buffers. Everything but
// mu/pending/load is touched by the worker goroutine only.
type worker struct {
	e    *Engine
	idx  int
	epfd int
	evfd int
	load atomic.Int64 // streams attached, for placement

	mu       sync.Mutex
	pending  []op
	stopping bool
	exited   chan struct{}

	streams map[uint64]*Stream
	events  []unix.EpollEvent

	buf    []byte // batch × pktSize, received datagrams stay here until sent
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6
	vecs   [][]byte // vecs[i:i+1] is message i's Buffers: no per-packet slice header
	out    []ipv4.Message
	recvFn func(uintptr) bool // bound once: a method value per call would allocate
	rn     int
	rerr   syscall.Errno
}

func newWorker(e *Engine, idx int) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	n := e.batch
	w := &worker{
		e:       e,
		idx:     idx,
		epfd:    epfd,
		evfd:    evfd,
		exited:  make(chan struct{}),
		streams: make(map[uint64]*Stream),
		events:  make([]unix.EpollEvent, epollEvents),
		buf:     make([]byte, n*e.pktSize),
		hdrs:    make([]unix.Mmsghdr, n),
		iovs:    make([]unix.Iovec, n),
		names:   make([]unix.RawSockaddrInet6, n),
		vecs:    make([][]byte, n),
		out:     make([]ipv4.Message, 0, n),
	}
	for i := range w.hdrs {
		w.iovs[i].Base = &w.buf[i*e.pktSize]
		w.iovs[i].SetLen(e.pktSize)
		h := &w.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
	}
	w.recvFn = w.recvmmsg
	return w, nil
}

// recvmmsg runs inside RawConn.Read, which holds a reference on the socket so
// that a concurrent Close cannot hand its descriptor number to another socket
// mid-call. x/net's ReadBatch is not used because it allocates a *net.UDPAddr
// per datagram; MSG_DONTWAIT makes both return EAGAIN rather than park.
func (w *worker) recvmmsg(fd uintptr) bool {
	r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[0])),
		uintptr(len(w.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	w.rn, w.rerr = int(r), errno
	return true
}

func (w *worker) run() {
	defer w.shutdown()
	for {
		n, err := unix.EpollWait(w.epfd, w.events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.e.log.Error("media worker stopped", "worker", w.idx, "error", err)
			return
		}
		for i := range n {
			ev := &w.events[i]
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == wakeID {
				if w.runOps() {
					return
				}
				continue
			}
			// A stream detached earlier in this batch is no longer in the map.
			if s := w.streams[id]; s != nil {
				w.drain(s)
			}
		}
	}
}

// drain reads what is queued on s, in batches, and forwards it.
func (w *worker) drain(s *Stream) {
	for range maxDrainRounds {
		w.rn, w.rerr = 0, 0
		if err := s.rc.Read(w.recvFn); err != nil {
			return // closed under us; Detach will follow
		}
		if w.rerr != 0 {
			if w.rerr != unix.EAGAIN && w.rerr != unix.EINTR {
				s.in.addError()
				// Clear a pending socket error so level-triggered epoll
				// does not spin on it.
				_ = s.rc.Control(func(fd uintptr) { _, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR) })
			}
			return
		}
		if w.rn <= 0 {
			return
		}
		w.forward(s, w.rn)
		if w.rn < len(w.hdrs) {
			return
		}
	}
}

// forward runs the per-packet path over n received datagrams and sends the
// accepted ones with one sendmmsg per egress socket.
func (w *worker) forward(s *Stream, n int) {
	now := time.Now()
	nowNs := now.UnixNano()
	monoNs := int64(now.Sub(w.e.base))
	size := w.e.pktSize
	out := w.out[:0]
	var sink *Stream
	for i := range n {
		h := &w.hdrs[i]
		length, flags := int(h.Len), h.Hdr.Flags
		h.Hdr.Namelen = unix.SizeofSockaddrInet6 // the kernel overwrote it
		h.Hdr.Flags = 0
		if flags&unix.MSG_TRUNC != 0 || length > size {
			s.in.addError()
			s.dropped.Add(1)
			continue
		}
		src, scope, ok := sockaddrAddrPort(&w.names[i])
		if !ok {
			s.in.addError()
			s.dropped.Add(1)
			continue
		}
		pkt := w.buf[i*size : i*size+length]
		to, dst := s.receive(pkt, src, scope, nowNs, monoNs, now)
		if to == nil {
			continue
		}
		if sink != nil && to != sink { // a Configure changed the sink mid-batch
			w.send(s, sink, out, nowNs)
			out = out[:0]
		}
		sink = to
		w.vecs[i] = pkt
		out = append(out, ipv4.Message{Buffers: w.vecs[i : i+1], Addr: dst})
	}
	if len(out) > 0 {
		w.send(s, sink, out, nowNs)
	}
}

// send writes msgs out of sink's socket. Failures are counted on the sink's
// Out.Errors and the receiving stream's Dropped; a full send buffer drops the
// rest of the batch rather than block the worker.
func (w *worker) send(from, sink *Stream, msgs []ipv4.Message, nowNs int64) {
	for len(msgs) > 0 {
		n, err := sink.bw.WriteBatch(msgs, unix.MSG_DONTWAIT)
		n = max(n, 0)
		for i := range n {
			sink.out.add(len(msgs[i].Buffers[0]), nowNs)
		}
		msgs = msgs[n:]
		if len(msgs) == 0 || (err == nil && n > 0) {
			continue
		}
		// msgs[0] failed; a full buffer or a closed socket fails the rest too.
		drop := 1
		if err == nil || errors.Is(err, unix.EAGAIN) || errors.Is(err, net.ErrClosed) {
			drop = len(msgs)
		}
		for range drop {
			sink.out.addError()
			from.dropped.Add(1)
		}
		msgs = msgs[drop:]
	}
}

func sockaddrAddrPort(sa *unix.RawSockaddrInet6) (netip.AddrPort, uint32, bool) {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), binary.BigEndian.Uint16(p[:])), 0, true
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), binary.BigEndian.Uint16(p[:])), sa.Scope_id, true
	}
	return netip.AddrPort{}, 0, false
}

// submit hands an attach/detach to the worker goroutine, the only one that
// touches its epoll set and stream map, and waits until it is done, so that
// Detach returning means no more packets of that stream are handled.
func (w *worker) submit(kind opKind, s *Stream) error {
	done := make(chan error, 1)
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		return ErrClosed
	}
	w.pending = append(w.pending, op{kind: kind, s: s, done: done})
	w.wake() // under mu: the eventfd is open until stopping is set
	w.mu.Unlock()
	return <-done
}

func (w *worker) wake() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(w.evfd, one[:])
}

func (w *worker) stop() {
	w.mu.Lock()
	if !w.stopping { // else the worker already left on its own
		w.stopping = true
		w.wake()
	}
	w.mu.Unlock()
	<-w.exited
}

// runOps applies queued operations; it reports whether the worker must stop.
func (w *worker) runOps() bool {
	var cnt [8]byte
	_, _ = unix.Read(w.evfd, cnt[:])
	w.mu.Lock()
	ops := w.pending
	w.pending = nil
	stopping := w.stopping
	w.mu.Unlock()
	for _, o := range ops {
		o.done <- w.apply(o)
	}
	return stopping
}

func (w *worker) apply(o op) error {
	s := o.s
	switch o.kind {
	case opAdd:
		var cerr error
		err := s.rc.Control(func(fd uintptr) {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
			cerr = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		})
		if err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("epoll_ctl add: %w", err)
		}
		w.streams[s.id] = s
	case opDel:
		if _, ok := w.streams[s.id]; ok {
			delete(w.streams, s.id)
			// Inside Control the descriptor cannot be closed and reused; if the
			// caller already closed it, the kernel dropped it from the set.
			_ = s.rc.Control(func(fd uintptr) {
				_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
			})
		}
	}
	return nil
}

// shutdown refuses further operations, answers queued ones, detaches the
// remaining streams and releases the epoll set.
func (w *worker) shutdown() {
	w.mu.Lock()
	w.stopping = true
	ops := w.pending
	w.pending = nil
	w.mu.Unlock()
	for _, o := range ops {
		if o.kind == opDel {
			o.done <- w.apply(o)
		} else {
			o.done <- ErrClosed
		}
	}
	for id, s := range w.streams {
		s.detached.Store(true)
		delete(w.streams, id)
	}
	_ = unix.Close(w.epfd)
	_ = unix.Close(w.evfd)
	close(w.exited)
}

// discard releases a worker whose goroutine never started.
func (w *worker) discard() {
	_ = unix.Close(w.epfd)
	_ = unix.Close(w.evfd)
}

func socketIsIPv6(rc syscall.RawConn) (bool, error) {
	var domain int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return false, err
	}
	if serr != nil {
		return false, fmt.Errorf("getsockopt SO_DOMAIN: %w", serr)
	}
	return domain == unix.AF_INET6, nil
}

func setTOS(rc syscall.RawConn, v6 bool, tos int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tos)
			if serr == nil {
				// A dual-stack socket sends IPv4 with IP_TOS; v6-only ones refuse it.
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos)
			}
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TOS, tos)
	}); err != nil {
		return err
	}
	return serr
}
