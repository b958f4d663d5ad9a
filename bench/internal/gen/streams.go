// SPDX-License-Identifier: Apache-2.0

package gen

import (
	"context"
	"math"
	"time"
)

// streamWin is one stream's share of the measurement window: what its
// sender sent in it, and the longest silence its receiver heard. The
// restart mode reads it per stream, where a total would hide one stream
// that lost everything behind a hundred that lost nothing.
type streamWin struct {
	sent uint64
	// last is the arrival (kernel receive time) of the stream's latest
	// packet sent in the window; 0 before the first, when the window's
	// start stands for it.
	last   int64
	maxGap int64
}

// arrived records the arrival at ts of one of the stream's window packets.
func (sw *streamWin) arrived(ts, winStart int64) {
	prev := sw.last
	if prev == 0 {
		prev = winStart
	}
	if gap := ts - prev; gap > sw.maxGap {
		sw.maxGap = gap
	}
	if ts > sw.last {
		sw.last = ts
	}
}

// StreamStat is one stream's figures in the window: Streams 2i and 2i+1 of
// a worker are call i's caller->callee and callee->caller.
type StreamStat struct {
	Worker, Stream int
	Sent, Received uint64 // packets sent in the window; of those, received
	// MaxGap is the longest time between two arrivals of the stream's
	// window packets, counting the window's start before the first and
	// its end after the last: a stream that fell silent for good has the
	// silence up to the window's end.
	MaxGap time.Duration
}

// Lost is how many of the stream's window packets never arrived.
func (s StreamStat) Lost() uint64 {
	if s.Received >= s.Sent {
		return 0
	}
	return s.Sent - s.Received
}

// streamStats lists the streams active for the whole window.
func (w *worker) streamStats() []StreamStat {
	if w.winStart == math.MaxInt64 {
		return nil
	}
	end := w.winEnd
	if end == math.MaxInt64 {
		end = time.Now().UnixNano()
	}
	var out []StreamStat
	for i := range w.streams {
		st := &w.streams[i]
		if !st.active || st.activatedNs > w.winStart {
			continue
		}
		gap := st.win.maxGap
		last := max(st.win.last, w.winStart)
		if tail := end - last; tail > gap {
			gap = tail
		}
		out = append(out, StreamStat{Worker: w.id, Stream: i, Sent: st.win.sent, Received: st.winRecv, MaxGap: time.Duration(gap)})
	}
	return out
}

// ReportStreams is Report (without per-call totals) with the figures of
// every stream active for the whole window in Report.PerStream.
func (g *Generator) ReportStreams(ctx context.Context) (*Report, error) {
	return g.report(ctx, nil, true)
}
