// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	crand "crypto/rand"
	"encoding/binary"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// defaultQueueLen is a worker's queue when PoolConfig.QueueLen is 0: 40
	// ms of 500 calls' two directions, far more than a worker that keeps
	// up ever holds, small enough (2 MiB of slots) to allocate per worker.
	defaultQueueLen = 1024
	// slotSize is the largest datagram a queue slot holds: the media
	// engine's default MaxPacketSize. RTP audio is far smaller; a longer
	// datagram is dropped and counted as oversize.
	slotSize = 2048
	// maxSleep is the longest a worker with reports to send sleeps between
	// looks at its clock, so that an injected clock (tests) is followed.
	maxSleep = 200 * time.Millisecond
	// drainBudget is how many packets a worker takes before it looks at
	// its control queue and report timers again.
	drainBudget = 64
)

// PoolConfig configures a Pool.
type PoolConfig struct {
	Workers  int       // 0: runtime.NumCPU()
	Registry *Registry // nil: NewRegistry()
	Logger   *slog.Logger
	// Now is the clock of RTCP: report timing, NTP timestamps, LSR/DLSR
	// (nil: time.Now). Packet arrivals for jitter come from the media
	// engine's clock (media.Packet.NowNs).
	Now func() time.Time
	// QueueLen is each worker's queue of packets waiting to be transcoded
	// (0: 1024; rounded up to a power of two); a full queue drops the
	// packet and counts it.
	QueueLen int
}

// Pool runs transcoding on workers of its own, never on the media workers, so a
// transcoded call never delays plain forwarding.
//
// Each Bridge is pinned to one worker (the one with the fewest bridges when
// it is made), so both directions of a call and its RTCP run on one
// goroutine and its transcoders need no locks. A media worker hands a packet
// over by copying it into the pinned worker's queue — a bounded lock-free
// ring of preallocated slots, so handing over never locks, allocates or
// waits, and a full queue drops — and the pool worker hands its output back
// with media.Stream.Deliver, which queues to the media worker that owns the
// socket the same way. The control plane reaches a worker only through a
// lock-free list of requests (a Bridge's Close) and never waits for it.
type Pool struct {
	reg     *Registry
	log     *slog.Logger
	now     func() time.Time
	workers []*worker
	qlen    int

	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup

	open    atomic.Int64  // bridges made and not closed
	created atomic.Uint64 // bridges made
	next    atomic.Uint32 // where the search for the least busy worker starts
}

// NewPool starts the workers.
func NewPool(cfg PoolConfig) *Pool {
	p := newPool(cfg)
	p.start()
	return p
}

// newPool makes the pool without starting its workers (tests fill a queue
// before any worker takes from it).
func newPool(cfg PoolConfig) *Pool {
	p := &Pool{reg: cfg.Registry, log: cfg.Logger, now: cfg.Now, stop: make(chan struct{})}
	if p.reg == nil {
		p.reg = NewRegistry()
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	n := cfg.Workers
	if n <= 0 {
		n = runtime.NumCPU()
	}
	p.qlen = cfg.QueueLen
	if p.qlen <= 0 {
		p.qlen = defaultQueueLen
	}
	p.qlen = 1 << bits.Len(uint(p.qlen-1)) // a power of two: slots by mask
	p.workers = make([]*worker, n)
	for i := range p.workers {
		var seed [16]byte
		_, _ = crand.Read(seed[:])
		p.workers[i] = &worker{p: p, id: i, wake: make(chan struct{}, 1),
			rng:  rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:]))),
			rtcp: make([]byte, rtcpMaxLen)}
	}
	return p
}

func (p *Pool) start() {
	for _, w := range p.workers {
		p.wg.Add(1)
		go w.run()
	}
}

// Close stops the workers (waiting for each to finish the packet in hand);
// bridges become inert: their stages drop everything. Packets still queued
// are discarded. Idempotent.
func (p *Pool) Close() {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

func (p *Pool) nowNs() int64 { return p.now().UnixNano() }

// pick is the worker with the fewest bridges.
func (p *Pool) pick() *worker {
	start := int(p.next.Add(1))
	best := p.workers[start%len(p.workers)]
	for i := 1; i < len(p.workers); i++ {
		w := p.workers[(start+i)%len(p.workers)]
		if w.bridges.Load() < best.bridges.Load() {
			best = w
		}
	}
	return best
}

// PoolStats are a pool's totals since it started, over all its bridges.
type PoolStats struct {
	Workers        int
	Bridges        int    // open now
	BridgesCreated uint64 // since the start
	PacketsIn      uint64 // RTP packets transcoded
	PacketsOut     uint64 // RTP packets handed back to the media plane
	RTCPIn         uint64 // RTCP packets read from the parties
	RTCPOut        uint64 // RTCP packets sent to the parties
	Drops          uint64 // packets dropped because a worker's queue was full (also in Errors.QueueFull)
	Errors         ErrorCounts
}

// Stats sums the workers' counters; safe from any goroutine.
func (p *Pool) Stats() PoolStats {
	st := PoolStats{Workers: len(p.workers), Bridges: int(p.open.Load()), BridgesCreated: p.created.Load()}
	var c counters
	for _, w := range p.workers {
		for i := range c {
			c[i].Add(w.cnt[i].Load())
		}
	}
	st.PacketsIn, st.PacketsOut = c[kIn].Load(), c[kOut].Load()
	st.RTCPIn, st.RTCPOut = c[kRTCPIn].Load(), c[kRTCPOut].Load()
	st.Errors = c.errors()
	st.Drops = st.Errors.QueueFull
	return st
}

// ErrorCounts are packets refused or lost on their way through a bridge, by
// reason.
type ErrorCounts struct {
	QueueFull     uint64 // dropped: the worker's queue was full
	Oversize      uint64 // dropped: longer than a queue slot
	NotMedia      uint64 // dropped: neither RTP nor RTCP (or RTP on an RTCP port)
	NotRTP        uint64 // refused by the transcoder: RTP header does not hold together
	UnknownPT     uint64 // refused: a payload type the leg did not negotiate
	Malformed     uint64 // refused: empty or over-long payload, short event block
	Undecodable   uint64 // refused: the decoder could not read the payload
	EncodeErrors  uint64 // frames the encoder failed on (per bridge only)
	BadRTCP       uint64 // RTCP whose compound framing does not hold together
	DeliverFailed uint64 // output the media plane refused (its queue full, or the stream detached)
}

// Total is the sum of every reason.
func (e ErrorCounts) Total() uint64 {
	return e.QueueFull + e.Oversize + e.NotMedia + e.NotRTP + e.UnknownPT + e.Malformed +
		e.Undecodable + e.EncodeErrors + e.BadRTCP + e.DeliverFailed
}

// ByReason lists the reasons that occurred, keyed by a short name ("queue
// full", "undecodable", ...), for a query reply or a log line.
func (e ErrorCounts) ByReason() map[string]uint64 {
	m := map[string]uint64{}
	for _, r := range []struct {
		k string
		v uint64
	}{
		{"queue full", e.QueueFull}, {"oversize", e.Oversize}, {"not media", e.NotMedia},
		{"not RTP", e.NotRTP}, {"unknown payload type", e.UnknownPT}, {"malformed", e.Malformed},
		{"undecodable", e.Undecodable}, {"encode errors", e.EncodeErrors}, {"bad RTCP", e.BadRTCP},
		{"deliver failed", e.DeliverFailed},
	} {
		if r.v != 0 {
			m[r.k] = r.v
		}
	}
	return m
}

// Counter indices, shared by bridge sides and workers.
const (
	kIn = iota
	kOut
	kRTCPIn
	kRTCPOut
	kQueueFull
	kOversize
	kNotMedia
	kNotRTP
	kUnknownPT
	kMalformed
	kUndecodable
	kBadRTCP
	kDeliverFailed
	nCounts
)

type counters [nCounts]atomic.Uint64

func (c *counters) errors() ErrorCounts {
	return ErrorCounts{
		QueueFull: c[kQueueFull].Load(), Oversize: c[kOversize].Load(), NotMedia: c[kNotMedia].Load(),
		NotRTP: c[kNotRTP].Load(), UnknownPT: c[kUnknownPT].Load(), Malformed: c[kMalformed].Load(),
		Undecodable: c[kUndecodable].Load(), BadRTCP: c[kBadRTCP].Load(), DeliverFailed: c[kDeliverFailed].Load(),
	}
}

// reasonOf is the counter of an error Transcoder.Process returned.
func reasonOf(err error) int {
	switch err {
	case ErrNotRTP:
		return kNotRTP
	case ErrUnknownPayloadType:
		return kUnknownPT
	case ErrDecode:
		return kUndecodable
	}
	return kMalformed // ErrEmptyPayload, ErrPayloadTooLong, ErrBadEvent
}

// Queue item kinds.
const (
	itemRTP = iota
	itemRTCP
)

// queue carries packets from the media workers (many producers) to one pool
// worker (the consumer): a bounded ring of sequence-numbered slots (Vyukov)
// over preallocated buffers, so putting neither locks nor allocates, and a
// full ring refuses.
type queue struct {
	once  sync.Once
	mask  uint64
	slots []qslot
	buf   []byte
	_     [64]byte      // keep the producers' head off the consumer's line
	head  atomic.Uint64 // next position to fill
	_     [56]byte
	tail  uint64 // next position to take; the consumer's
}

type qslot struct {
	seq  atomic.Uint64
	b    *Bridge
	side uint8
	kind uint8
	n    uint16
	at   int64 // arrival, Unix ns
}

// alloc makes the ring when the worker gets its first bridge: a pool that
// never transcodes holds no buffers.
func (q *queue) alloc(n int) {
	q.once.Do(func() {
		q.mask = uint64(n - 1)
		q.slots = make([]qslot, n)
		q.buf = make([]byte, n*slotSize)
		for i := range q.slots {
			q.slots[i].seq.Store(uint64(i))
		}
	})
}

func (q *queue) put(b *Bridge, side, kind uint8, at int64, data []byte) bool {
	pos := q.head.Load()
	var sl *qslot
	for {
		sl = &q.slots[pos&q.mask]
		switch d := int64(sl.seq.Load() - pos); {
		case d == 0:
			if q.head.CompareAndSwap(pos, pos+1) {
				i := pos & q.mask
				copy(q.buf[i*slotSize:], data)
				sl.b, sl.side, sl.kind, sl.n, sl.at = b, side, kind, uint16(len(data)), at
				sl.seq.Store(pos + 1)
				return true
			}
			pos = q.head.Load()
		case d < 0:
			return false // full
		default:
			pos = q.head.Load()
		}
	}
}

// empty reports whether nothing is queued (a slot being written counts as
// queued).
func (q *queue) empty() bool { return q.head.Load() == q.tail }

// peek returns the oldest item, or nil when there is none ready; release
// frees it.
func (q *queue) peek() (*qslot, []byte) {
	if q.empty() { // before the slots: a worker without bridges has none
		return nil, nil
	}
	sl := &q.slots[q.tail&q.mask]
	if sl.seq.Load() != q.tail+1 {
		return nil, nil // claimed, not yet written
	}
	i := q.tail & q.mask
	return sl, q.buf[i*slotSize : i*slotSize+uint64(sl.n)]
}

func (q *queue) release(sl *qslot) {
	sl.b = nil
	sl.seq.Store(q.tail + q.mask + 1)
	q.tail++
}

// op is a control-plane request to a worker.
type op struct {
	b    *Bridge
	next *op
}

// worker is one transcoding goroutine and what it owns: the queue's
// consumer end, the bridges pinned to it and their report timers.
type worker struct {
	p    *Pool
	id   int
	q    queue
	cnt  counters
	wake chan struct{}
	// sleeping is set while the worker waits, so that only a producer that
	// finds it set pays for the wake-up.
	sleeping atomic.Bool
	ops      atomic.Pointer[op] // Close requests, newest first
	bridges  atomic.Int32       // pinned and open, for placement

	// The worker's own.
	timers timerHeap
	out    [][]byte
	rtcp   []byte
	rng    *rand.Rand
}

// signal wakes the worker if it sleeps.
func (w *worker) signal() {
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// request queues a control-plane request; it never waits.
func (w *worker) request(o *op) {
	for {
		head := w.ops.Load()
		o.next = head
		if w.ops.CompareAndSwap(head, o) {
			break
		}
	}
	w.sleeping.Store(false)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) run() {
	defer w.p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if w.p.closed.Load() { // also when never idle: Close must not wait on a backlog
			w.shutdown()
			return
		}
		w.runOps()
		busy := w.drain()
		w.reports()
		if busy {
			continue
		}
		w.sleeping.Store(true)
		if w.ops.Load() != nil {
			w.sleeping.Store(false)
			continue
		}
		if !w.q.empty() {
			w.sleeping.Store(false)
			runtime.Gosched() // a producer is mid-copy
			continue
		}
		var tc <-chan time.Time
		if len(w.timers) > 0 {
			d := time.Duration(w.timers[0].due - w.p.nowNs())
			timer.Reset(min(max(d, time.Millisecond), maxSleep))
			tc = timer.C
		}
		select {
		case <-w.wake:
		case <-tc:
		case <-w.p.stop: // the loop's top leaves
		}
		w.sleeping.Store(false)
		timer.Stop()
	}
}

// runOps carries out the control plane's requests: a closed bridge's state
// is dropped (its codecs freed even while streams still hold its stages).
func (w *worker) runOps() {
	for o := w.ops.Swap(nil); o != nil; o = o.next {
		o.b.drop()
	}
}

// drain runs up to drainBudget queued packets and reports whether it
// stopped with more waiting.
func (w *worker) drain() bool {
	for range drainBudget {
		sl, data := w.q.peek()
		if sl == nil {
			return false
		}
		b := sl.b
		if !b.closed.Load() {
			if wk := b.work.Load(); wk != nil {
				if sl.kind == itemRTP {
					w.rtp(b, wk, int(sl.side), data, sl.at)
				} else {
					w.rtcpIn(b, wk, int(sl.side), data, sl.at)
				}
			}
		}
		w.q.release(sl)
	}
	return !w.q.empty()
}

// shutdown discards what is queued: the pool is closing.
func (w *worker) shutdown() {
	w.runOps()
	for {
		sl, _ := w.q.peek()
		if sl == nil {
			break
		}
		w.q.release(sl)
	}
	w.timers = nil
}

// reports sends the RTCP that is due.
func (w *worker) reports() {
	if len(w.timers) == 0 {
		return
	}
	now := w.p.nowNs()
	for len(w.timers) > 0 && w.timers[0].due <= now {
		t := w.timers.pop()
		wk := t.b.work.Load()
		if wk == nil || t.b.closed.Load() {
			continue // closed: its timers go with it
		}
		w.report(t.b, wk, int(t.side), now)
		t.due = now + w.jittered(rtcpInterval)
		w.timers.push(t)
	}
}

// jittered is d randomised over [0.5, 1.5] of it (RFC 3550 §6.3.1), in ns.
func (w *worker) jittered(d time.Duration) int64 {
	return int64(d/2) + w.rng.Int64N(int64(d))
}

// timer is when the next report to one side of a bridge is due.
type timer struct {
	due  int64
	b    *Bridge
	side uint8
}

// timerHeap is a binary min-heap on due (container/heap would box every
// push).
type timerHeap []timer

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	s := *h
	for i := len(s) - 1; i > 0; {
		parent := (i - 1) / 2
		if s[parent].due <= s[i].due {
			break
		}
		s[parent], s[i] = s[i], s[parent]
		i = parent
	}
}

func (h *timerHeap) pop() timer {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = timer{}
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].due < s[m].due {
			m = l
		}
		if r < len(s) && s[r].due < s[m].due {
			m = r
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*h = s
	return top
}
