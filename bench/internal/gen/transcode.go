// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/payload"
)

// A transcoded call's packets carry real codec frames, and the relay
// rewrites everything in them (SSRC, sequence numbers, timestamps, payload):
// no bench header survives. The receiver therefore finds a packet's stream
// by the endpoint address it was sent to (each call has its own), and the
// packet it came from by its RTP timestamp: a relay that transcodes 20 ms
// packets into 20 ms packets advances its timestamps with the sender's
// (rescaled to its clock), so once one of its packets is tied to one the
// bench sent, every later one is too. The first packet of a stream is tied
// to the latest one sent before it arrived; should the relay have been
// slower than a packet interval just then, a later packet arriving "before
// it was sent" moves the tie back. Each packet so tied is counted, checked
// for duplicates and timed exactly like a plain bench packet, so loss and
// one-way latency (send syscall to the kernel's receive timestamp, through
// both codecs) mean what they mean for plain calls.
//
// What a receiver cannot see is a packet the relay lost before its decoder
// and concealed: the relay fills the gap with a packet of its own, with the
// lost one's timestamp. The runner asks the relay how many it concealed.

const (
	// tcHistory is how many send times a transcoded stream keeps: a
	// packet tied to one older than that (over a second late at 50/s) is
	// unmatched.
	tcHistory = 64
	// The content checks of a stream: the first after checkFirst packets
	// (codecs settled), then every checkEvery, at most checksPerStream.
	checkFirst      = 25
	checkEvery      = 150
	checksPerStream = 3
	// checkersPerCodec bounds the checks running at once on a worker.
	checkersPerCodec = 8
	// maxRetie is how many packet intervals a tie may move back at once.
	maxRetie = 3
)

// TranscodeCall is the media of a transcoded call: each party sends its
// codec's frames of its tone, and must receive the other party's tone in
// its own codec.
type TranscodeCall struct {
	Caller, Callee *audio.Frames
	// CallerPT and CalleePT are the payload types the relay announced to
	// each party: what it must send them.
	CallerPT, CalleePT int
}

// tcStream is what one direction of a transcoded call needs beyond a plain
// stream.
type tcStream struct {
	send *audio.Frames
	// sentNs[seq%tcHistory] is when the sender's packet seq left, 0 when
	// it did not.
	sentNs [tcHistory]int64

	// recv is the codec the relay must send the receiver, recvPT its
	// payload type, tone what it must decode to; dir 0 is towards the
	// callee, 1 towards the caller.
	recv   audio.Codec
	recvPT uint8
	tone   float64
	dir    int

	// The tie between the relay's packets and the sender's: its packet
	// with SSRC ssrc and timestamp ts0 is the sender's packet seq0.
	tied bool
	ssrc uint32
	ts0  uint32
	seq0 int64

	checker   *audio.Checker
	checks    int
	nextCheck uint64
}

// sentAt is when packet seq of the stream left; false when it never did or
// is too old to remember. next is the stream's next sequence to send.
func (tc *tcStream) sentAt(seq int64, next uint64) (int64, bool) {
	if seq < 0 || seq >= int64(next) || int64(next)-seq > tcHistory {
		return 0, false
	}
	ns := tc.sentNs[seq%tcHistory]
	return ns, ns != 0
}

// TranscodeTotals are the transcoded calls' lifetime counts, summed over the
// workers.
type TranscodeTotals struct {
	// Matched are packets tied to a packet the bench sent.
	Matched uint64
	// WrongPT are packets in a payload type the relay did not announce to
	// that party (a codec passed through, or the wrong one): not counted
	// as received.
	WrongPT uint64
	// Unmatched are packets that could not be tied to a sent one (a
	// timestamp off the sender's grid, or too old).
	Unmatched uint64
	// SSRCChanges are relay SSRCs that changed mid-stream (each ties the
	// stream anew); Retied are ties moved back by a packet interval.
	SSRCChanges, Retied uint64
	// Checks: decoded content checks passed and failed, [0] at the
	// callees (the caller's tone in PCMU), [1] at the callers.
	Passed, Failed [2]uint64
	// Failure describes the latest failed check ("" when none).
	Failure string
}

// Sub returns a-b, counter by counter (Failure is a's).
func (a TranscodeTotals) Sub(b TranscodeTotals) TranscodeTotals {
	d := TranscodeTotals{
		Matched: a.Matched - b.Matched, WrongPT: a.WrongPT - b.WrongPT, Unmatched: a.Unmatched - b.Unmatched,
		SSRCChanges: a.SSRCChanges - b.SSRCChanges, Retied: a.Retied - b.Retied,
	}
	for i := range 2 {
		d.Passed[i], d.Failed[i] = a.Passed[i]-b.Passed[i], a.Failed[i]-b.Failed[i]
	}
	if d.Failed[0]+d.Failed[1] > 0 {
		d.Failure = a.Failure
	}
	return d
}

// tcCounters are a worker's TranscodeTotals.
type tcCounters struct {
	matched, wrongPT, unmatched, ssrcChanges, retied atomic.Uint64
	passed, failed                                   [2]atomic.Uint64
	failure                                          atomic.Pointer[string]
}

// TranscodeTotals are the transcoded calls' lifetime counts.
func (g *Generator) TranscodeTotals() TranscodeTotals {
	var t TranscodeTotals
	for _, w := range g.workers {
		c := &w.tcTotals
		t.Matched += c.matched.Load()
		t.WrongPT += c.wrongPT.Load()
		t.Unmatched += c.unmatched.Load()
		t.SSRCChanges += c.ssrcChanges.Load()
		t.Retied += c.retied.Load()
		for i := range 2 {
			t.Passed[i] += c.passed[i].Load()
			t.Failed[i] += c.failed[i].Load()
		}
		if f := c.failure.Load(); f != nil {
			t.Failure = *f
		}
	}
	return t
}

// ActivateTranscode starts a transcoded call's media: the caller sends its
// frames to callerSendTo, the callee its own to calleeSendTo, each with its
// codec's payload type, and each must receive the other's tone in its own
// codec with the payload type the relay announced to it. The generator
// must have been made with Config.Transcode.
func (g *Generator) ActivateTranscode(cs CallSlot, callerSendTo, calleeSendTo netip.AddrPort, tc *TranscodeCall) error {
	if !g.cfg.Transcode {
		return fmt.Errorf("transcoded call on a generator made without Config.Transcode")
	}
	if !callerSendTo.Addr().Is4() || !calleeSendTo.Addr().Is4() {
		return fmt.Errorf("call media must be IPv4, got %s and %s", callerSendTo, calleeSendTo)
	}
	for _, f := range []*audio.Frames{tc.Caller, tc.Callee} {
		if 12+f.MaxLen() > cap(g.workers[cs.Worker].batches[0].bufs[0]) {
			return fmt.Errorf("%s frames of %d bytes do not fit the generator's buffers", f.Codec.Name, f.MaxLen())
		}
	}
	g.mu.Lock()
	g.gens[cs.Worker][cs.Index]++
	gen := g.gens[cs.Worker][cs.Index]
	g.mu.Unlock()
	mk := func(s, sock int, src netip.Addr, dst netip.AddrPort, send *audio.Frames, recvPT int, recv *audio.Frames, dir int) op {
		return op{kind: opActivate, stream: s, st: stream{
			gen: gen, sock: int32(sock), src: src.As4(), dst: sockaddr4(dst),
			hdr: payload.Header{PT: uint8(send.Codec.PT), SSRC: ssrc(g.cfg.Run, cs.Worker, s, gen), SamplesPerPacket: send.Codec.Step},
			tc: &tcStream{send: send, recv: recv.Codec, recvPT: uint8(recvPT), tone: send.Tone, dir: dir,
				nextCheck: checkFirst},
		}}
	}
	// Towards the callee the caller's tone arrives in the callee's codec,
	// and the other way round.
	up := mk(2*cs.Index, cs.Index/g.k, cs.Caller.Addr(), callerSendTo, tc.Caller, tc.CalleePT, tc.Callee, 0)
	down := mk(2*cs.Index+1, g.perSide+cs.Index/g.k, cs.Callee.Addr(), calleeSendTo, tc.Callee, tc.CallerPT, tc.Caller, 1)
	g.workers[cs.Worker].queue(up, down)
	return nil
}

// encodeTC writes a transcoded stream's next packet into buf (whose
// capacity holds any frame) and returns its length.
func encodeTC(buf []byte, st *stream) int {
	buf = buf[:cap(buf)]
	buf[0] = 0x80
	buf[1] = st.hdr.PT & 0x7f
	binary.BigEndian.PutUint16(buf[2:], uint16(st.seq))
	binary.BigEndian.PutUint32(buf[4:], uint32(st.seq)*st.hdr.SamplesPerPacket)
	binary.BigEndian.PutUint32(buf[8:], st.hdr.SSRC)
	return payload.RTPHeaderLen + copy(buf[payload.RTPHeaderLen:], st.tc.send.Frame(st.seq))
}

// tcStreamAt is the transcoded stream a packet that arrived on socket si,
// sent to dst, belongs to; -1 when it is none.
func (w *worker) tcStreamAt(si int, dst [4]byte) int {
	side, j := 0, si
	if si >= w.perSide {
		side, j = 1, si-w.perSide
	}
	a, ok := w.addrIdx[side][dst]
	if !ok {
		return -1
	}
	idx := j*w.k + int(a)
	// At the callees' side the stream from the caller, at the callers'
	// the stream from the callee.
	s := 2*idx + 1 - side
	if s >= len(w.streams) || w.streams[s].tc == nil {
		return -1
	}
	return s
}

// rtpHead is what the receiver reads of a relay's RTP header.
type rtpHead struct {
	pt   uint8
	seq  uint16
	ts   uint32
	ssrc uint32
}

// parseRTP reads an RTP packet's header and finds its payload (after any
// CSRCs and header extension, without any padding).
func parseRTP(b []byte) (rtpHead, []byte, bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return rtpHead{}, nil, false
	}
	h := rtpHead{pt: b[1] & 0x7f, seq: binary.BigEndian.Uint16(b[2:]), ts: binary.BigEndian.Uint32(b[4:]), ssrc: binary.BigEndian.Uint32(b[8:])}
	off := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < off+4 {
			return h, nil, false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(b[off+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > off {
		end -= int(b[end-1])
	}
	if off > end {
		return h, nil, false
	}
	return h, b[off:end], true
}

// receiveTC accounts a packet of transcoded stream s that arrived at ts.
func (w *worker) receiveTC(s int, b []byte, ts int64) {
	st := &w.streams[s]
	tc := st.tc
	h, pay, ok := parseRTP(b)
	if !ok {
		w.stray++
		return
	}
	if h.pt != tc.recvPT {
		w.tcTotals.wrongPT.Add(1)
		return
	}
	if tc.tied && h.ssrc != tc.ssrc {
		w.tcTotals.ssrcChanges.Add(1)
		tc.tied = false
	}
	if !tc.tied && !w.tie(st, h, ts) {
		w.tcTotals.unmatched.Add(1)
		return
	}
	step := int64(tc.recv.Step)
	k := int64(int32(h.ts - tc.ts0))
	if k%step != 0 {
		w.tcTotals.unmatched.Add(1)
		return
	}
	seq := tc.seq0 + k/step
	// A packet tied to one not sent yet, or sent after it arrived: the
	// tie is a packet interval (or a few) late, and moves back for good.
	// 1 ms of slack covers the clocks of send stamp and kernel timestamp.
	var sent int64
	ok = false
	shift := int64(0)
	for ; shift <= maxRetie; shift++ {
		if s := seq - shift; s < int64(st.seq) {
			sent, ok = tc.sentAt(s, st.seq)
			if !ok || ts-sent >= -int64(time.Millisecond) {
				break
			}
			ok = false
		}
	}
	if !ok {
		w.tcTotals.unmatched.Add(1)
		return
	}
	if shift > 0 {
		tc.seq0 -= shift
		seq -= shift
		w.tcTotals.retied.Add(1)
	}
	w.tcTotals.matched.Add(1)
	w.account(st, payload.Fields{Slot: uint32(s), Gen: st.gen, Seq: uint64(seq), SentNs: sent}, ts)
	w.checkContent(st, pay)
}

// tie ties the relay's packet h, arriving at ts, to the latest packet the
// sender had sent by then.
func (w *worker) tie(st *stream, h rtpHead, ts int64) bool {
	tc := st.tc
	for seq := int64(st.seq) - 1; seq >= 0 && int64(st.seq)-seq <= tcHistory; seq-- {
		if ns := tc.sentNs[seq%tcHistory]; ns != 0 && ns <= ts {
			tc.tied, tc.ssrc, tc.ts0, tc.seq0 = true, h.ssrc, h.ts, seq
			return true
		}
	}
	return false
}

// checkContent feeds a stream's packet to its running content check, or
// starts one when the stream is due and a checker is free.
func (w *worker) checkContent(st *stream, pay []byte) {
	tc := st.tc
	if tc.checker == nil {
		if tc.checks >= checksPerStream || st.lifeRecv < tc.nextCheck {
			return
		}
		k, err := w.takeChecker(tc.recv)
		if err != nil {
			tc.checks = checksPerStream // no decoder in this build: nothing to check with
			w.checkFailed(tc, err.Error())
			return
		}
		if k == nil {
			return // all busy: the next packet tries again
		}
		k.Reset()
		tc.checker = k
	}
	if !tc.checker.Add(pay) {
		return
	}
	r := tc.checker.Judge(tc.tone)
	w.putChecker(tc)
	tc.checks++
	tc.nextCheck = st.lifeRecv + checkEvery
	if r.OK {
		w.tcTotals.passed[tc.dir].Add(1)
		return
	}
	w.checkFailed(tc, fmt.Sprintf("%s to the %s, want %.0f Hz: %v", tc.recv.Name, [2]string{"callee", "caller"}[tc.dir], tc.tone, r))
}

func (w *worker) checkFailed(tc *tcStream, why string) {
	w.tcTotals.failed[tc.dir].Add(1)
	w.tcTotals.failure.Store(&why)
}

// takeChecker lends a checker for codec c: nil when all are busy.
func (w *worker) takeChecker(c audio.Codec) (*audio.Checker, error) {
	if w.checkers == nil {
		w.checkers = map[string]*checkerPool{}
	}
	p := w.checkers[c.Name]
	if p == nil {
		p = &checkerPool{}
		w.checkers[c.Name] = p
	}
	if n := len(p.free); n > 0 {
		k := p.free[n-1]
		p.free = p.free[:n-1]
		return k, nil
	}
	if p.made >= checkersPerCodec {
		return nil, nil
	}
	k, err := audio.NewChecker(c)
	if err != nil {
		return nil, err
	}
	p.made++
	return k, nil
}

// putChecker returns a stream's checker, if it holds one.
func (w *worker) putChecker(tc *tcStream) {
	if tc == nil || tc.checker == nil {
		return
	}
	p := w.checkers[tc.recv.Name]
	p.free = append(p.free, tc.checker)
	tc.checker = nil
}

// checkerPool are a worker's checkers of one codec.
type checkerPool struct {
	free []*audio.Checker
	made int
}

// pktinfoDst reads the destination address of an IP_PKTINFO control
// message.
func pktinfoDst(ctrl []byte) ([4]byte, bool) {
	var dst [4]byte
	ok := false
	walkCmsgs(ctrl, func(level, typ int32, data []byte) {
		// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
		if level == ipprotoIP && typ == ipPktinfo && len(data) >= 12 {
			copy(dst[:], data[8:12])
			ok = true
		}
	})
	return dst, ok
}
