// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/relayd/relayd/bench/internal/gen"
	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/report"
)

// progress is the live status line: on a terminal one line rewritten twice
// a second, elsewhere a line every few seconds.
type progress struct {
	w   io.Writer
	tty bool

	mu        sync.Mutex
	text      string
	winLabel  string
	winStart  time.Time
	winLen    time.Duration
	relayPIDs []int
	genPIDs   []int
	gen       *gen.Generator
	acc       *metrics.Accounting
	lastSent  uint64
	lastRecv  uint64
	last      metrics.Sample
	haveLast  bool
	lastPrint time.Time
	width     int

	stop chan struct{}
	done chan struct{}
}

func newProgress(w io.Writer, tty bool) *progress {
	p := &progress{w: w, tty: tty, stop: make(chan struct{}), done: make(chan struct{})}
	if w == nil {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) attach(g *gen.Generator, acc *metrics.Accounting) {
	p.mu.Lock()
	p.gen, p.acc = g, acc
	p.mu.Unlock()
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.tick()
		}
	}
}

func (p *progress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := p.text
	if p.winLabel != "" && p.gen != nil {
		sent, recv := p.gen.Totals()
		s, err := metrics.TakeSample(p.relayPIDs, p.genPIDs)
		if err == nil && p.haveLast {
			dt := s.At.Sub(p.last.At).Seconds()
			u := p.acc.Usage(p.last, s)
			line = fmt.Sprintf("%s %4.1f/%.0fs | sending %s pps, receiving %s pps | relay CPU %3.0f%%, generator CPU %3.0f%%",
				p.winLabel, time.Since(p.winStart).Seconds(), p.winLen.Seconds(),
				report.PPS(float64(sent-p.lastSent)/dt), report.PPS(float64(recv-p.lastRecv)/dt),
				100*u.RelayUtil(), 100*u.GenUtil())
		}
		if err == nil {
			p.last, p.haveLast, p.lastSent, p.lastRecv = s, true, sent, recv
		}
	}
	p.show(line)
}

// show writes the status line; callers hold mu.
func (p *progress) show(line string) {
	if p.w == nil || line == "" {
		return
	}
	if p.tty {
		pad := max(p.width-len(line), 0)
		fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
		p.width = len(line)
		return
	}
	if time.Since(p.lastPrint) >= 5*time.Second {
		fmt.Fprintln(p.w, line)
		p.lastPrint = time.Now()
	}
}

// phase sets what the bench is doing.
func (p *progress) phase(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.text = text
	if p.w != nil && !p.tty {
		fmt.Fprintln(p.w, text)
		p.lastPrint = time.Now()
		return
	}
	p.show(text)
}

// window starts (label != "") or ends the live rates of a measurement.
func (p *progress) window(label string, d time.Duration, relay, gen []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.winLabel, p.winStart, p.winLen, p.relayPIDs, p.genPIDs, p.haveLast = label, time.Now(), d, relay, gen, false
	if label != "" {
		p.text = label
	}
}

// result prints a measured point on its own line.
func (p *progress) result(pt report.Point) {
	mode := pt.Mode
	if pt.SRTPSuite != "" {
		mode += " (" + pt.SRTPSuite + ")"
	}
	line := fmt.Sprintf("[%s rep %d] %s %d calls: offered %s pps, delivered %s pps, loss %.3f%%, latency p50/p99 %.0f/%.0f µs, relay CPU %.0f%% (%.0f ns/packet), generator CPU %.0f%%",
		pt.Relay, pt.Rep, mode, pt.Calls, report.PPS(pt.OfferedPPS), report.PPS(pt.DeliveredPPS), pt.LossPct,
		pt.LatP50Us, pt.LatP99Us, pt.RelayCPUPct, pt.NsPerPacket, pt.GenCPUPct)
	if pt.GenBound {
		line += " [generator-bound]"
	}
	p.println(line)
}

// println prints a line above the status line.
func (p *progress) println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.w == nil {
		return
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\r%s\n", strings.Repeat(" ", p.width), line)
		p.width = 0
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.w != nil && p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	}
}
