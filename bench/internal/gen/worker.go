// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/payload"
	"github.com/relayd/relayd/bench/internal/sdes"
)

// maxLagSkip is how far behind schedule a packet may fall before the sender
// gives up on it: a stalled generator must not answer with a burst that
// measures its own catching up instead of the relay.
const maxLagSkip = 100 * time.Millisecond

// stream is one direction of one call, as its sender and its receiver see
// it. Streams 2i and 2i+1 are call i's caller->callee and callee->caller.
type stream struct {
	active bool
	gen    uint32
	sock   int32 // sending socket (index into worker.socks)
	src    [4]byte
	dst    unix.RawSockaddrInet4
	hdr    payload.Header
	seq    uint64

	activatedNs int64 // wall clock, for "active during the whole window"

	seqT        seqTracker
	haveTransit bool
	lastTransit int64
	jitter      float64

	lifeSent, lifeRecv uint64 // since activation
	winRecv            uint64

	// An SRTP caller's stream: its sender encrypts with tx and breaks the
	// tag of sequence forge (0: none); the stream towards it is received
	// through rx. The worker owns both once the activation is applied.
	tx    *srtp.Context
	rx    *srtp.Context
	forge uint64
	win   streamWin

	// tc is set for a stream of a transcoded call (ActivateTranscode):
	// codec frames instead of bench packets.
	tc *tcStream
}

// sendBatch is one socket's pending sendmmsg.
type sendBatch struct {
	msgs  []mmsghdr
	iov   []unix.Iovec
	bufs  [][]byte
	ctrl  [][]byte
	slots []int32
	forge []bool // the packet's tag is to be broken after encryption
	seqs  []uint64
	size  []int // the packet's length before SRTP
	// codec is set where a transcoded stream's frame overwrote the bench
	// packet's filler.
	codec []bool
	n     int
}

type recvBatch struct {
	msgs []mmsghdr
	iov  []unix.Iovec
	bufs [][]byte
	ctrl [][]byte
}

type opKind uint8

const (
	opActivate opKind = iota
	opDeactivate
)

// op changes a stream; the coordinator queues ops and the worker applies
// them between ticks, so the streams need no lock.
type op struct {
	kind   opKind
	stream int
	st     stream // for opActivate: the sending fields
}

type reportReq struct {
	calls     []int // call indices whose lifetime totals to return
	perStream bool  // list every stream's window figures
	reply     chan workerReport
}

type workerReport struct {
	windowNs                            int64
	sent, recv, dup, reordered          uint64
	stray, oldCall, sendErrors, skipped uint64
	noTimestamp                         uint64
	hist                                metrics.Histogram
	jitterSum                           float64
	jitterN                             int
	streamsInWindow, dead               int
	maxLagNs                            int64
	calls                               []CallTotals
	streams                             []StreamStat
}

// sharedWindow is the measurement window every worker follows.
type sharedWindow struct {
	id         atomic.Uint64
	start, end atomic.Int64 // wall clock ns
}

type worker struct {
	id  int
	cpu int // -1: not pinned
	cfg *Config
	win *sharedWindow

	socks   []int // side 0 sockets, then side 1
	perSide int
	streams []stream
	bits    int // the send order walks 1<<bits positions per period
	batches []sendBatch
	dirty   []int32
	rx      recvBatch

	periodNs int64
	baseMono time.Time
	cycle    int64
	cursor   int

	// Window state, owned by the worker goroutine.
	winID                      uint64
	winStart, winEnd           int64
	sent, recv, dup, reordered uint64
	stray, oldCall, sendErrors uint64
	skipped, noTimestamp       uint64
	maxLagNs                   int64
	hist                       metrics.Histogram
	sentTotal, recvTotal       atomic.Uint64
	run                        uint32
	mu                         sync.Mutex
	ops                        []op
	hasOps                     atomic.Bool
	reqs                       chan reportReq
	stop                       atomic.Bool
	done                       chan struct{}
	err                        error
	bufSize                    int
	sendBatchLen, recvBatchLen int
	applied                    []op // reused

	// bySSRC finds the stream of a packet to an SRTP caller before it is
	// decrypted (its SSRC is in the clear; the relay passes it through).
	bySSRC     map[uint32]int32
	rtpHdr     rtp.Header // scratch for pion/srtp, reused
	srtpTotals srtpCounters

	// Transcoded calls: the endpoint addresses' indices (shared, read-only)
	// and how many a side uses, to find a packet's stream by where it was
	// sent; the counters and the content checkers.
	k        int
	addrIdx  *[2]map[[4]byte]int32
	tcTotals tcCounters
	checkers map[string]*checkerPool
}

// srtpCounters are a worker's SRTP lifetime counts (SRTPTotals).
type srtpCounters struct {
	encrypted, decrypted, authFailed, plainOnSRTP atomic.Uint64
	corrupt, forgedSent, forgedPassed             atomic.Uint64
}

func newWorker(id, cpu int, cfg *Config, win *sharedWindow, socks []int, perSide, calls int, bufSize int) *worker {
	w := &worker{
		id: id, cpu: cpu, cfg: cfg, win: win, socks: socks, perSide: perSide,
		streams:  make([]stream, 2*calls),
		periodNs: int64(math.Round(1e9 / cfg.PPS)),
		run:      cfg.Run,
		reqs:     make(chan reportReq, 1),
		done:     make(chan struct{}),
		bufSize:  bufSize,
		winEnd:   math.MaxInt64,
		winStart: math.MaxInt64,

		sendBatchLen: cfg.SendBatch,
		recvBatchLen: cfg.RecvBatch,
		bySSRC:       map[uint32]int32{},
	}
	w.bits = max(bits.Len(uint(2*calls-1)), 1)
	w.batches = make([]sendBatch, len(socks))
	for i := range w.batches {
		w.batches[i] = newSendBatch(cfg.SendBatch, bufSize)
	}
	w.rx = newRecvBatch(cfg.RecvBatch)
	return w
}

func newSendBatch(n, size int) sendBatch {
	b := sendBatch{
		msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n),
		bufs: make([][]byte, n), ctrl: make([][]byte, n), slots: make([]int32, n), forge: make([]bool, n),
		seqs: make([]uint64, n), size: make([]int, n), codec: make([]bool, n),
	}
	for i := range n {
		// Room for the SRTP tag, so that packets are encrypted in place,
		// and for any codec frame of a transcoded call.
		b.bufs[i] = make([]byte, size, max(size+sdes.MaxTagLen, payload.RTPHeaderLen+audio.MaxFrame))
		payload.Fill(b.bufs[i])
		b.ctrl[i] = make([]byte, pktinfoLen)
		putPktinfoHeader(b.ctrl[i])
		b.iov[i].Base = &b.bufs[i][0]
		b.iov[i].SetLen(size)
		h := &b.msgs[i].hdr
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
		h.Namelen = unix.SizeofSockaddrInet4
		h.Control = &b.ctrl[i][0]
		h.SetControllen(pktinfoLen)
	}
	return b
}

func newRecvBatch(n int) recvBatch {
	// Control room for a timestamp and an IP_PKTINFO message.
	const bufLen, ctrlLen = 2048, 128
	r := recvBatch{msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n), bufs: make([][]byte, n), ctrl: make([][]byte, n)}
	for i := range n {
		r.bufs[i] = make([]byte, bufLen)
		r.ctrl[i] = make([]byte, ctrlLen)
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(bufLen)
		r.msgs[i].hdr.Iov = &r.iov[i]
		r.msgs[i].hdr.SetIovlen(1)
		r.msgs[i].hdr.Control = &r.ctrl[i][0]
	}
	return r
}

// queue hands ops to the worker.
func (w *worker) queue(ops ...op) {
	w.mu.Lock()
	w.ops = append(w.ops, ops...)
	w.hasOps.Store(true)
	w.mu.Unlock()
}

// loop is the worker's thread: one epoll wait per iteration, woken at least
// every tick by the timerfd.
func (w *worker) loop() {
	defer close(w.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if w.cpu >= 0 {
		var set unix.CPUSet
		set.Set(w.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			w.err = fmt.Errorf("pin worker %d to CPU %d: %w", w.id, w.cpu, err)
			return
		}
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		w.err = fmt.Errorf("epoll: %w", err)
		return
	}
	defer unix.Close(epfd)
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		w.err = fmt.Errorf("timerfd: %w", err)
		return
	}
	defer unix.Close(tfd)
	tick := unix.NsecToTimespec(int64(w.cfg.Tick))
	if err := unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{Interval: tick, Value: tick}, nil); err != nil {
		w.err = fmt.Errorf("timerfd settime: %w", err)
		return
	}
	// Event data: 0 is the timer, i+1 is socket i.
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0}); err != nil {
		w.err = fmt.Errorf("epoll add timer: %w", err)
		return
	}
	for i, fd := range w.socks {
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i + 1)}); err != nil {
			w.err = fmt.Errorf("epoll add socket: %w", err)
			return
		}
	}
	w.baseMono = time.Now()
	events := make([]unix.EpollEvent, len(w.socks)+1)
	var tbuf [8]byte
	for !w.stop.Load() {
		n, err := unix.EpollWait(epfd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			w.err = fmt.Errorf("epoll wait: %w", err)
			return
		}
		w.housekeeping()
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				_, _ = unix.Read(tfd, tbuf[:])
				w.sendDue()
				continue
			}
			w.drain(int(ev.Fd) - 1)
		}
	}
}

// housekeeping applies queued stream changes, window changes and report
// requests, all between packets.
func (w *worker) housekeeping() {
	now := time.Now().UnixNano()
	if id := w.win.id.Load(); id != w.winID {
		w.winID = id
		w.resetWindow()
		// The window starts when this worker has reset, never earlier:
		// packets sent before the reset were counted in the old window.
		w.winStart = max(w.win.start.Load(), now)
		w.winEnd = math.MaxInt64
	}
	if end := w.win.end.Load(); end != math.MaxInt64 && w.winEnd == math.MaxInt64 && w.winStart != math.MaxInt64 {
		// Packets sent before the worker saw the end were counted as sent
		// in the window, so the window ends when it sees it.
		w.winEnd = max(end, now, w.winStart)
	}
	if w.hasOps.Load() {
		w.mu.Lock()
		w.applied, w.ops = w.ops, w.applied[:0]
		w.hasOps.Store(false)
		w.mu.Unlock()
		for _, o := range w.applied {
			st := &w.streams[o.stream]
			switch o.kind {
			case opActivate:
				if st.rx != nil && w.bySSRC[st.hdr.SSRC] == int32(o.stream) {
					delete(w.bySSRC, st.hdr.SSRC)
				}
				w.putChecker(st.tc)
				*st = o.st
				st.active = true
				st.activatedNs = now
				if st.rx != nil {
					// Kept after deactivation for the packets in flight,
					// until the slot's next call replaces it.
					w.bySSRC[st.hdr.SSRC] = int32(o.stream)
				}
			case opDeactivate:
				st.active = false
			}
		}
	}
	select {
	case req := <-w.reqs:
		r := w.report(req.calls)
		if req.perStream {
			r.streams = w.streamStats()
		}
		req.reply <- r
	default:
	}
}

func (w *worker) resetWindow() {
	w.sent, w.recv, w.dup, w.reordered = 0, 0, 0, 0
	w.stray, w.oldCall, w.sendErrors, w.skipped, w.noTimestamp = 0, 0, 0, 0, 0
	w.maxLagNs = 0
	w.hist.Reset()
	for i := range w.streams {
		w.streams[i].winRecv = 0
		w.streams[i].win = streamWin{}
	}
}

func (w *worker) report(calls []int) workerReport {
	r := workerReport{
		sent: w.sent, recv: w.recv, dup: w.dup, reordered: w.reordered, stray: w.stray, oldCall: w.oldCall,
		sendErrors: w.sendErrors, skipped: w.skipped, noTimestamp: w.noTimestamp, maxLagNs: w.maxLagNs,
	}
	if w.winStart != math.MaxInt64 {
		end := w.winEnd
		if end == math.MaxInt64 {
			end = time.Now().UnixNano()
		}
		r.windowNs = end - w.winStart
	}
	r.hist.Merge(&w.hist)
	for i := range w.streams {
		st := &w.streams[i]
		if !st.active || st.activatedNs > w.winStart {
			continue
		}
		r.streamsInWindow++
		if st.winRecv == 0 {
			r.dead++
		}
		if st.haveTransit {
			r.jitterSum += st.jitter
			r.jitterN++
		}
	}
	for _, c := range calls {
		a, b := &w.streams[2*c], &w.streams[2*c+1]
		r.calls = append(r.calls, CallTotals{
			Sent: [2]uint64{a.lifeSent, b.lifeSent}, Received: [2]uint64{a.lifeRecv, b.lifeRecv},
		})
	}
	return r
}

// due is when position pos of the given cycle must be sent, in ns since
// baseMono. Positions are visited in order; position pos sends stream
// bitrev(pos), which spreads any set of consecutively allocated streams
// evenly over the period.
func (w *worker) due(cycle int64, pos int) int64 {
	return cycle*w.periodNs + (int64(pos)*w.periodNs)>>w.bits
}

func (w *worker) sendDue() {
	now := int64(time.Since(w.baseMono))
	first := true
	n := 1 << w.bits
	for {
		d := w.due(w.cycle, w.cursor)
		if d > now {
			break
		}
		lag := now - d
		if first {
			first = false
			if lag > w.maxLagNs && w.winStart != math.MaxInt64 {
				w.maxLagNs = lag
			}
		}
		s := int(bits.Reverse(uint(w.cursor)) >> (bits.UintSize - w.bits))
		if s < len(w.streams) && w.streams[s].active {
			if lag > int64(maxLagSkip) {
				w.skipped++
				if tc := w.streams[s].tc; tc != nil {
					tc.sentNs[w.streams[s].seq%tcHistory] = 0
				}
				w.streams[s].seq++
			} else {
				w.enqueue(s)
			}
		}
		w.cursor++
		if w.cursor == n {
			w.cursor = 0
			w.cycle++
		}
	}
	for _, si := range w.dirty {
		w.flush(int(si))
	}
	w.dirty = w.dirty[:0]
}

func (w *worker) enqueue(s int) {
	st := &w.streams[s]
	b := &w.batches[st.sock]
	i := b.n
	switch {
	case st.tc != nil:
		b.size[i] = encodeTC(b.bufs[i], st)
		b.codec[i] = true
	default:
		if st.tx != nil || b.codec[i] {
			// The last packet in this buffer was encrypted in place, or
			// was a codec frame.
			payload.Fill(b.bufs[i])
			b.codec[i] = false
		}
		payload.Encode(b.bufs[i], st.hdr, payload.Fields{Run: w.run, Slot: uint32(s), Gen: st.gen, Seq: st.seq})
		b.size[i] = w.bufSize
	}
	b.forge[i] = st.tx != nil && st.forge != 0 && st.seq == st.forge
	b.seqs[i] = st.seq
	st.seq++
	b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&st.dst))
	setPktinfoSrc(b.ctrl[i], st.src)
	b.slots[i] = int32(s)
	b.n++
	if b.n == 1 {
		w.dirty = append(w.dirty, st.sock)
	}
	if b.n == len(b.msgs) {
		w.flush(int(st.sock))
	}
}

// flush sends a socket's batch, stamping the send time just before the
// syscall so a packet's latency includes at most the batch's own send time.
func (w *worker) flush(si int) {
	b := &w.batches[si]
	if b.n == 0 {
		return
	}
	now := time.Now().UnixNano()
	for i := range b.n {
		if tc := w.streams[b.slots[i]].tc; tc != nil {
			// A codec frame has no room for the time: the stream keeps it.
			tc.sentNs[b.seqs[i]%tcHistory] = now
		} else {
			payload.StampSent(b.bufs[i], now)
		}
		w.protect(b, i)
	}
	inWin := now >= w.winStart && now < w.winEnd
	fd := w.socks[si]
	var ok uint64
	for off := 0; off < b.n; {
		r, errno := sendmmsg(fd, b.msgs[off:b.n])
		if r > 0 {
			for _, s := range b.slots[off : off+r] {
				w.streams[s].lifeSent++
				if inWin {
					w.streams[s].win.sent++
				}
			}
			ok += uint64(r)
			off += r
			continue
		}
		if errno == unix.EINTR {
			continue
		}
		// The first message failed (full buffer, no route): drop it,
		// counted, and go on with the rest.
		w.sendErrors++
		off++
	}
	if inWin {
		w.sent += ok
	}
	w.sentTotal.Add(ok)
	b.n = 0
}

// drain reads a socket until it is empty, a few batches at most so the
// sender is never starved (epoll is level-triggered: the rest comes next).
func (w *worker) drain(si int) {
	fd := w.socks[si]
	var got uint64
	for range 8 {
		for i := range w.rx.msgs {
			w.rx.msgs[i].hdr.SetControllen(len(w.rx.ctrl[i]))
		}
		n, errno := recvmmsg(fd, w.rx.msgs)
		if n <= 0 {
			if errno == unix.EINTR {
				continue
			}
			break
		}
		for i := range n {
			m := &w.rx.msgs[i]
			w.receive(si, w.rx.bufs[i][:m.len], w.rx.ctrl[i][:m.hdr.Controllen])
		}
		got += uint64(n)
		if n < len(w.rx.msgs) {
			break
		}
	}
	w.recvTotal.Add(got)
}

// protect encrypts packet i of a batch in place when its stream is an SRTP
// caller's (after the send time is stamped: the time is inside the
// ciphertext), breaking its tag when it is the stream's forged packet.
func (w *worker) protect(b *sendBatch, i int) {
	st := &w.streams[b.slots[i]]
	size := b.size[i]
	if st.tx != nil {
		enc, err := st.tx.EncryptRTP(b.bufs[i][:size], b.bufs[i][:size], &w.rtpHdr)
		if err == nil && &enc[0] == &b.bufs[i][0] {
			size = len(enc)
			w.srtpTotals.encrypted.Add(1)
			if b.forge[i] {
				enc[size-1] ^= 0x5a
				w.srtpTotals.forgedSent.Add(1)
			}
		} else {
			// Cannot happen with a valid context and room for the tag;
			// a plain packet on an SRTP leg is counted by the far end.
			w.sendErrors++
		}
	}
	b.iov[i].SetLen(size)
}

// unprotect turns a packet to an SRTP caller back into a bench packet: it
// reports false when the packet was not sent through SRTP with the key of
// the relay's answer (counted), and the packet to decode otherwise. Packets
// to plain endpoints pass unchanged.
func (w *worker) unprotect(b []byte) ([]byte, bool) {
	if len(w.bySSRC) == 0 || len(b) < payload.RTPHeaderLen {
		return b, true
	}
	s, ok := w.bySSRC[binary.BigEndian.Uint32(b[8:12])]
	if !ok {
		return b, true
	}
	if _, err := payload.Decode(b, w.run); err == nil {
		// A bench packet in the clear where SRTP was due.
		w.srtpTotals.plainOnSRTP.Add(1)
		return nil, false
	}
	dec, err := w.streams[s].rx.DecryptRTP(b, b, &w.rtpHdr)
	if err != nil {
		w.srtpTotals.authFailed.Add(1)
		return nil, false
	}
	w.srtpTotals.decrypted.Add(1)
	return dec, true
}

// receive accounts a datagram that arrived on socket si.
func (w *worker) receive(si int, b, ctrl []byte) {
	ts, ok := timestampNs(ctrl)
	if !ok {
		ts = time.Now().UnixNano()
		w.noTimestamp++
	}
	if w.cfg.Transcode {
		if dst, ok := pktinfoDst(ctrl); ok {
			if s := w.tcStreamAt(si, dst); s >= 0 {
				w.receiveTC(s, b, ts)
				return
			}
		}
	}
	b, ok = w.unprotect(b)
	if !ok {
		return
	}
	f, err := payload.Decode(b, w.run)
	if err != nil || int(f.Slot) >= len(w.streams) {
		w.stray++
		return
	}
	st := &w.streams[f.Slot]
	if f.Gen != st.gen {
		w.oldCall++ // a late packet of the call that had this slot before
		return
	}
	// Streams of an SRTP call: the one from the caller (decrypted by the
	// relay) and the one to it (decrypted here).
	if st.tx != nil || st.rx != nil {
		if st.tx != nil && st.forge != 0 && f.Seq == st.forge {
			w.srtpTotals.forgedPassed.Add(1)
			return
		}
		if !payload.FillerIntact(b) {
			w.srtpTotals.corrupt.Add(1)
			return
		}
	}
	w.account(st, f, ts)
}

// account counts a packet of stream st (sent as f says) that arrived at ts:
// duplicates, order, jitter, and in the window its latency.
func (w *worker) account(st *stream, f payload.Fields, ts int64) {
	st.lifeRecv++
	a := st.seqT.observe(f.Seq)
	inWin := f.SentNs >= w.winStart && f.SentNs < w.winEnd
	if a == duplicate {
		if inWin {
			w.dup++
		}
		return
	}
	transit := ts - f.SentNs
	if st.haveTransit {
		st.jitter = jitterUpdate(st.jitter, st.lastTransit, transit)
	}
	st.lastTransit, st.haveTransit = transit, true
	if !inWin {
		return
	}
	w.recv++
	st.winRecv++
	st.win.arrived(ts, w.winStart)
	if a == reordered {
		w.reordered++
	}
	w.hist.Record(transit)
}
