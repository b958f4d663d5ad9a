// SPDX-License-Identifier: Apache-2.0

//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxDrainRounds bounds how many full batches one readiness event reads from a
// socket, so a flooded socket cannot starve the others. Sockets are watched
// edge-triggered (a level-triggered set polls every socket that was ready
// once more at the next epoll_wait, ~4 % of the loop's CPU at 300 calls), so
// a socket left with datagrams is remembered and drained again at the next
// pass.
const maxDrainRounds = 4

const (
	wakeIdx     = 0 // epoll data of the eventfd; stream indexes start at 1
	epollEvents = 128
)

// worker owns an epoll set, the sockets registered in it and its buffers. The
// sockets are plain non-blocking descriptors that only this epoll set knows:
// the worker is their only reader and their closer, so a descriptor number is
// never reused under a read or a send. Everything but the queues, load, idle
// and totals is touched by the worker goroutine only.
type worker struct {
	e    *Engine
	idx  int
	epfd int
	evfd int
	load atomic.Int64 // streams attached, for placement

	// idle is set while the worker is in (or about to enter) epoll_wait:
	// whoever queues work then writes the eventfd, and only then.
	idle     atomic.Bool
	stopping atomic.Bool
	exited   chan struct{}
	// closes and toses are lock-free stacks of streams to close and to
	// apply a new TOS to, filled by the signalling layer.
	closes atomic.Pointer[Stream]
	toses  atomic.Pointer[tosOp]
	inject injectQueue

	totals struct{ packets, bytes, dropped atomic.Uint64 }
	// passes counts finished loop iterations: after one that started later
	// than a datagram was read, everything read before has been sent.
	passes atomic.Uint64
	epFile *os.File // the epoll set as Go's netpoller knows it

	events []unix.EpollEvent
	// again holds the sockets a pass left datagrams on (the drain bound, or
	// an error met before the queue was empty): edge-triggered epoll will not
	// report them until the next datagram arrives. spare is the other buffer.
	again, spare []*Stream

	slot  int    // bytes per received datagram: max packet size + tailroom
	buf   []byte // batch × slot; received datagrams stay here until sent
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names [][sizeofSockaddrInet6]byte
	// The send side of one batch: iovecs point into buf, names are copies of
	// the destinations' cached sockaddrs.
	shdrs    []unix.Mmsghdr
	siovs    []unix.Iovec
	snames   []rawAddr
	outSink  []*Stream // the socket queued datagram i leaves by
	outFrom  []*Stream // the stream it arrived on
	raw4     rawQueue  // what leaves by the raw sockets instead
	raw6     rawQueue
	used     int       // receive slots filled in this pass
	out      int       // datagrams queued to send in this pass
	now      time.Time // the pass's arrival time
	nowNs    int64
	monoNs   int64
	pkt      Packet
	injectFn func(*Stream, []byte, netip.AddrPort, bool) // sendInjected, bound once
	replySA  rawAddr                                     // scratch sockaddr of Packet.Reply and injected sends
}

type tosOp struct {
	s    *Stream
	next *tosOp
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
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeIdx}
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
		events:  make([]unix.EpollEvent, epollEvents),
		slot:    e.pktSize + tailroom,
		hdrs:    make([]unix.Mmsghdr, n),
		iovs:    make([]unix.Iovec, n),
		names:   make([][sizeofSockaddrInet6]byte, n),
		shdrs:   make([]unix.Mmsghdr, n),
		siovs:   make([]unix.Iovec, n),
		snames:  make([]rawAddr, n),
		outSink: make([]*Stream, n),
		outFrom: make([]*Stream, n),
	}
	w.buf = make([]byte, n*w.slot)
	fd4, fd6 := -1, -1
	if e.rawSend {
		if fd4, err = openRawSocket(unix.AF_INET); err != nil {
			e.log.Info("sending through each stream's socket", "worker", idx, "reason", err)
		} else if fd6, err = openRawSocket(unix.AF_INET6); err != nil {
			e.log.Info("sending IPv6 through each stream's socket", "worker", idx, "reason", err)
		}
	}
	w.raw4.init(fd4, afInet, n)
	w.raw6.init(fd6, afInet6, n)
	w.injectFn = w.sendInjected
	w.inject.init(e.pktSize + tailroom)
	for i := range w.hdrs {
		w.iovs[i].Base = &w.buf[i*w.slot]
		w.iovs[i].SetLen(e.pktSize)
		h := &w.hdrs[i].Hdr
		h.Name = &w.names[i][0]
		h.Namelen = sizeofSockaddrInet6
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
		sh := &w.shdrs[i].Hdr
		sh.Name = &w.snames[i].b[0]
		sh.Iov = &w.siovs[i]
		sh.SetIovlen(1)
	}
	return w, nil
}

// watch registers s's socket in the epoll set; any goroutine may, epoll is
// safe for that, so attaching needs no hand-over to the worker.
func (w *worker) watch(s *Stream) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(s.idx)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// unwatch closes s's socket (which also takes it out of the epoll set); on
// the worker, or once the worker is gone.
func (w *worker) unwatch(s *Stream) {
	if s.fd >= 0 {
		_ = unix.Close(s.fd)
	}
	w.load.Add(-1)
}

// closeLater hands s's socket to the worker to close at its next pass.
func (w *worker) closeLater(s *Stream) {
	for {
		top := w.closes.Load()
		s.closeNext = top
		if w.closes.CompareAndSwap(top, s) {
			break
		}
	}
	if w.stopping.Load() {
		s.closeSocket() // the worker is gone or going: Engine.Close sweeps too
		return
	}
	w.kick()
}

func (w *worker) setTOSLater(s *Stream) {
	op := &tosOp{s: s}
	for {
		top := w.toses.Load()
		op.next = top
		if w.toses.CompareAndSwap(top, op) {
			break
		}
	}
	w.kick()
}

// kick wakes the worker if it sleeps.
func (w *worker) kick() {
	if w.idle.Load() && w.idle.CompareAndSwap(true, false) {
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(w.evfd, one[:])
	}
}

func (w *worker) pending() bool {
	return w.closes.Load() != nil || w.toses.Load() != nil || !w.inject.empty() || w.stopping.Load()
}

// run waits for the epoll set's readiness in Go's netpoller — the epoll
// descriptor itself is the one registration there — and then takes the
// events with a non-blocking epoll_wait. A worker never blocks its thread in
// a system call: a goroutine blocked in one keeps its P until the runtime's
// monitor takes it back, up to milliseconds later, and on a relay pinned to
// one CPU that stalls every other goroutine (the ng server) and the worker's
// own wake-ups; parked in the netpoller it holds nothing.
func (w *worker) run() {
	defer w.shutdown()
	if err := unix.SetNonblock(w.epfd, true); err != nil {
		w.e.log.Error("media worker stopped", "worker", w.idx, "error", err)
		return
	}
	f := os.NewFile(uintptr(w.epfd), "epoll")
	w.epFile = f
	rc, err := f.SyscallConn()
	if err != nil {
		w.e.log.Error("media worker stopped", "worker", w.idx, "error", err)
		return
	}
	fn := func(fd uintptr) bool {
		w.idle.Store(false)
		for {
			w.runQueues()
			if w.stopping.Load() {
				return true
			}
			n, err := unix.EpollWait(int(fd), w.events, 0)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return true
			}
			if n <= 0 && len(w.again) > 0 {
				w.handle(0)
				w.passes.Add(1)
				continue
			}
			if n <= 0 {
				w.idle.Store(true)
				if w.pending() {
					w.idle.Store(false)
					continue
				}
				return false
			}
			w.handle(n)
			w.passes.Add(1)
		}
	}
	for !w.stopping.Load() {
		if err := rc.Read(fn); err != nil {
			return
		}
	}
}

// handle is one pass: it drains the sockets of n epoll events, then sends
// what they forward.
func (w *worker) handle(n int) {
	w.startPass()
	left := w.again
	w.again, w.spare = w.spare[:0], left
	for i := range n {
		idx := uint32(w.events[i].Fd)
		if idx == wakeIdx {
			var cnt [8]byte
			_, _ = unix.Read(w.evfd, cnt[:])
			continue
		}
		s := w.e.table.get(idx)
		// A stream detached earlier is skipped; its socket closes at the
		// next pass.
		if s != nil && s.w == w && !s.detached.Load() {
			w.drain(s)
		}
	}
	for i, s := range left {
		if !s.detached.Load() && !s.fdClosed.Load() {
			w.drain(s)
		}
		left[i] = nil
	}
	w.flush()
}

// runQueues applies what the signalling layer and other goroutines queued:
// closes, TOS changes, injected datagrams.
func (w *worker) runQueues() {
	for s := w.closes.Swap(nil); s != nil; {
		next := s.closeNext
		s.closeNext = nil
		s.closeSocket()
		s = next
	}
	for op := w.toses.Swap(nil); op != nil; op = op.next {
		s := op.s
		if s.fdClosed.Load() {
			continue
		}
		if err := setTOS(s.fd, s.ipv6, int(s.tos.Load())); err != nil {
			w.e.log.Debug("set TOS", "local", s.local, "error", err)
		}
	}
	for range injectSlots { // what arrives meanwhile waits for the next pass
		if !w.inject.take(w.injectFn) {
			break
		}
	}
}

// drain reads what is queued on s into the pass's free receive slots and
// runs it through the stages; the sends wait for the end of the pass (flush)
// unless the slots run out first.
func (w *worker) drain(s *Stream) {
	for range maxDrainRounds {
		if w.used == len(w.hdrs) {
			w.flush()
		}
		free := len(w.hdrs) - w.used
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&w.hdrs[w.used])),
			uintptr(free), unix.MSG_DONTWAIT, 0, 0)
		if errno != 0 {
			if errno != unix.EAGAIN {
				if errno != unix.EINTR {
					s.in.addError()
					// Clear the socket error (an ICMP error queued to it);
					// datagrams may wait behind it.
					_, _ = unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
				}
				w.again = append(w.again, s)
			}
			return
		}
		n := int(r)
		if n <= 0 {
			return
		}
		w.forward(s, w.used, n)
		w.used += n
		if n < free {
			return // the queue was empty: the next datagram is a new edge
		}
	}
	w.again = append(w.again, s)
}

// startPass stamps the datagrams of one pass over the ready sockets.
func (w *worker) startPass() {
	w.now = w.e.now()
	w.nowNs = w.now.UnixNano()
	w.monoNs = int64(w.now.Sub(w.e.base))
}

// forward runs the stages over the n datagrams received into slots
// first.. and queues the forwarded ones for the end of the pass.
func (w *worker) forward(s *Stream, first, n int) {
	maxLen := w.e.pktSize
	var accepted, bytes, dropped uint64
	p := &w.pkt
	for i := first; i < first+n; i++ {
		h := &w.hdrs[i]
		length, flags := int(h.Len), h.Hdr.Flags
		h.Hdr.Namelen = sizeofSockaddrInet6 // the kernel overwrote it
		h.Hdr.Flags = 0
		if flags&unix.MSG_TRUNC != 0 || length > maxLen {
			s.in.addError()
			s.dropped.Add(1)
			dropped++
			continue
		}
		src, scope, ok := decodeAddr(&w.names[i])
		if !ok {
			s.in.addError()
			s.dropped.Add(1)
			dropped++
			continue
		}
		off := i * w.slot
		*p = Packet{Data: w.buf[off : off+length : off+w.slot], Source: src, Stream: s, NowNs: w.nowNs,
			scope: scope, monoNs: w.monoNs, now: w.now, w: w}
		p.Kind = classify(p.Data)
		sink, dst, v := s.ingress(p)
		switch v {
		case Drop:
			dropped++
			continue
		case Consume:
			continue
		}
		accepted++
		bytes += uint64(length)
		if sink.w != w {
			// Not in s's group: the sink's own worker sends it, so that
			// only that worker ever touches the sink's socket and stages.
			if !sink.w.inject.put(sink, p.Data, netip.AddrPort{}, true) {
				sink.out.addError()
				s.dropped.Add(1)
				dropped++
			} else {
				sink.w.kick()
			}
			continue
		}
		sst := sink.state.Load()
		if len(sst.cfg.egress) > 0 {
			switch runEgress(sst.cfg.egress, p) {
			case Drop:
				s.dropped.Add(1)
				dropped++
				continue
			case Consume:
				continue
			}
		}
		if w.raw4.takes(sink, dst) {
			w.raw4.put(sink, s, p.Data, dst)
			continue
		}
		if w.raw6.takes(sink, dst) {
			w.raw6.put(sink, s, p.Data, dst)
			continue
		}
		o := w.out
		w.siovs[o].Base = unsafe.SliceData(p.Data)
		w.siovs[o].SetLen(len(p.Data))
		w.snames[o] = *dst
		w.shdrs[o].Hdr.Namelen = dst.n
		w.outSink[o], w.outFrom[o] = sink, s
		w.out++
	}
	w.totals.packets.Add(accepted)
	w.totals.bytes.Add(bytes)
	if dropped > 0 {
		w.totals.dropped.Add(dropped)
	}
}

// flush sends what the pass queued, one sendmmsg per run of datagrams
// leaving by the same socket, back to back: on a veth the first wakes the
// peer's receive thread and the rest find it awake. The receive slots are
// free again afterwards.
func (w *worker) flush() {
	var failed uint64
	if w.raw4.n > 0 {
		failed += w.flushRaw(&w.raw4)
	}
	if w.raw6.n > 0 {
		failed += w.flushRaw(&w.raw6)
	}
	for i := 0; i < w.out; {
		j := i + 1
		for j < w.out && w.outSink[j] == w.outSink[i] {
			j++
		}
		failed += w.send(w.outFrom[i:j], w.outSink[i], i, j)
		i = j
	}
	for i := range w.out {
		w.outSink[i], w.outFrom[i] = nil, nil
	}
	w.out, w.used = 0, 0
	if failed > 0 {
		w.totals.dropped.Add(failed)
	}
}

// send writes queued datagrams i..j out of sink's socket and reports how
// many it could not send. Failures are counted on the sink's Out.Errors and
// the receiving stream's Dropped; a full send buffer drops the rest of the
// run rather than block the worker.
func (w *worker) send(from []*Stream, sink *Stream, i, j int) (failed uint64) {
	first := i
	for i < j {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(sink.fd), uintptr(unsafe.Pointer(&w.shdrs[i])),
			uintptr(j-i), unix.MSG_DONTWAIT, 0, 0)
		k := 0
		if errno == 0 {
			k = int(r)
		}
		for m := i; m < i+k; m++ {
			sink.out.add(int(w.siovs[m].Len), w.nowNs)
		}
		i += k
		if i >= j || (errno == 0 && k > 0) {
			continue
		}
		// Datagram i failed; a full buffer fails the rest too.
		drop := 1
		if errno == 0 || errno == unix.EAGAIN {
			drop = j - i
		}
		for m := i; m < i+drop; m++ {
			sink.out.addError()
			from[m-first].dropped.Add(1)
		}
		failed += uint64(drop)
		i += drop
	}
	return failed
}

// reply sends b out of s's socket to dst at once (Packet.Reply).
func (w *worker) reply(s *Stream, b []byte, dst netip.AddrPort, scope uint32) {
	w.replySA.set(dst, scope, s.ipv6)
	w.sendTo(s, b, &w.replySA)
}

// sendInjected sends one datagram another goroutine queued on s (Send,
// Deliver, or a packet forwarded into s from another worker's stream).
func (w *worker) sendInjected(s *Stream, b []byte, dst netip.AddrPort, deliver bool) {
	if s.fdClosed.Load() || s.detached.Load() {
		return
	}
	if !deliver {
		w.replySA.set(dst, 0, s.ipv6)
		w.sendTo(s, b, &w.replySA)
		return
	}
	st := s.state.Load()
	if st.destSA == nil {
		s.out.addError()
		return
	}
	if len(st.cfg.egress) > 0 {
		p := &w.pkt
		now := w.e.now()
		*p = Packet{Data: b, Sink: s, NowNs: now.UnixNano(), now: now, w: w}
		p.Kind = classify(b)
		if runEgress(st.cfg.egress, p) != Continue {
			return
		}
		b = p.Data
	}
	w.sendTo(s, b, st.destSA)
}

func (w *worker) sendTo(s *Stream, b []byte, sa *rawAddr) {
	if len(b) == 0 || s.fdClosed.Load() {
		return
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa.b[0])), uintptr(sa.n))
	if errno != 0 {
		s.out.addError()
		return
	}
	s.out.add(len(b), w.e.now().UnixNano())
}

// stop asks the worker to leave and waits until it has.
func (w *worker) stop() {
	w.stopping.Store(true)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(w.evfd, one[:])
	<-w.exited
}

// shutdown closes what was queued for closing and releases the epoll set;
// the engine closes the sockets still attached.
func (w *worker) shutdown() {
	w.stopping.Store(true)
	w.runQueues()
	if w.epFile != nil {
		_ = w.epFile.Close()
	} else {
		_ = unix.Close(w.epfd)
	}
	_ = unix.Close(w.evfd)
	w.closeRaw()
	close(w.exited)
}

// discard releases a worker whose goroutine never started.
func (w *worker) discard() {
	_ = unix.Close(w.epfd)
	_ = unix.Close(w.evfd)
	w.closeRaw()
}

func setTOS(fd int, v6 bool, tos int) error {
	if v6 {
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, tos)
	}
	return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, tos)
}
