// SPDX-License-Identifier: Apache-2.0

package transcode

import "math"

// plc conceals lost packets for codecs that have no concealment of their own
// (G.711, G.722): it repeats the last pitch period of the decoded audio and
// fades it out over 60 ms of consecutive loss, then stays silent. The idea of
// ITU-T G.711 Appendix I, without its overlap-adds: good enough to bridge a
// lost packet or two without a click of silence, cheap enough to run per
// stream. Its buffers are allocated once, with the decoder.
type plc struct {
	rate   int
	hist   []int16 // the last len(hist) decoded samples, oldest first
	filled int     // how many of hist are real audio
	period int     // repeated pitch period during a loss; 0 when not in one
	pos    int     // position in the period
	lost   int     // samples concealed since the last good packet
}

const (
	plcMinPitchHz = 66  // lowest voice pitch tracked: 15 ms period
	plcMaxPitchHz = 400 // highest: 2.5 ms
	plcFadeMs     = 60
)

func newPLC(rate int) plc {
	maxLag := rate / plcMinPitchHz
	win := rate / 100 // 10 ms compared against the lagged copy
	return plc{rate: rate, hist: make([]int16, maxLag+win)}
}

// good records decoded audio: the history concealment repeats from.
func (p *plc) good(pcm []int16) {
	p.period, p.lost = 0, 0
	h := p.hist
	if len(pcm) >= len(h) {
		copy(h, pcm[len(pcm)-len(h):])
		p.filled = len(h)
		return
	}
	copy(h, h[len(pcm):])
	copy(h[len(h)-len(pcm):], pcm)
	p.filled = min(p.filled+len(pcm), len(h))
}

func (p *plc) reset() { p.filled, p.period, p.lost = 0, 0, 0 }

// conceal fills pcm, continuing a loss that may span several calls.
func (p *plc) conceal(pcm []int16) int {
	fade := p.rate * plcFadeMs / 1000
	if p.filled < len(p.hist) || p.lost >= fade {
		clear(pcm)
		p.lost += len(pcm)
		return len(pcm)
	}
	if p.period == 0 {
		p.period, p.pos = p.pitch(), 0
	}
	base := len(p.hist) - p.period
	for i := range pcm {
		g := fade - p.lost
		if g <= 0 {
			clear(pcm[i:])
			p.lost += len(pcm) - i
			break
		}
		pcm[i] = int16(int(p.hist[base+p.pos]) * g / fade)
		p.lost++
		if p.pos++; p.pos == p.period {
			p.pos = 0
		}
	}
	return len(pcm)
}

// pitch is the lag, between 2.5 and 15 ms, at which the last 10 ms of history
// best matches itself (normalised cross-correlation).
func (p *plc) pitch() int {
	h := p.hist
	win := p.rate / 100
	minLag, maxLag := p.rate/plcMaxPitchHz, p.rate/plcMinPitchHz
	cur := h[len(h)-win:]
	best, bestScore := maxLag, math.Inf(-1)
	for lag := minLag; lag <= maxLag; lag++ {
		old := h[len(h)-win-lag : len(h)-lag]
		var c, e int64
		for i, x := range cur {
			y := int64(old[i])
			c += int64(x) * y
			e += y * y
		}
		if e == 0 {
			continue
		}
		score := float64(c) / math.Sqrt(float64(e))
		if score > bestScore {
			best, bestScore = lag, score
		}
	}
	return best
}
