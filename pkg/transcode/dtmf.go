// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"math"
)

// RFC 4733 telephone-events and in-band DTMF.
//
// An event block is 4 bytes: event code, E (end) bit + R bit + 6-bit volume
// (-dBm0), and a 16-bit duration in RTP clock units. One event keeps its
// start timestamp in every packet; the first carries the marker bit; the
// final packet (E set) is normally sent three times.

// Event is one RFC 4733 event block.
type Event struct {
	Code     uint8  // 0-9, 10 '*', 11 '#', 12-15 'A'-'D', 16 flash
	End      bool   // the E bit
	Volume   uint8  // 0..63, -dBm0
	Duration uint16 // RTP clock units since the event's timestamp
}

// EventLen is the length of one event block.
const EventLen = 4

// ParseEvent reads the first event block of a telephone-event payload.
func ParseEvent(b []byte) (Event, error) {
	if len(b) < EventLen {
		return Event{}, ErrBadEvent
	}
	return Event{
		Code:     b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// Put writes the event block to b (at least EventLen bytes); the R bit is
// zero, as a sender must set it.
func (e Event) Put(b []byte) {
	b[0] = e.Code
	b[1] = e.Volume & 0x3f
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
}

// DigitOf is the character of a DTMF event code ('0'-'9', '*', '#',
// 'A'-'D'), 0 for other events.
func DigitOf(code uint8) byte {
	if code < 16 {
		return "0123456789*#ABCD"[code]
	}
	return 0
}

// EventCode is the event code of a DTMF character, ok false for others.
func EventCode(digit byte) (uint8, bool) {
	switch {
	case digit >= '0' && digit <= '9':
		return digit - '0', true
	case digit == '*':
		return 10, true
	case digit == '#':
		return 11, true
	case digit >= 'A' && digit <= 'D':
		return 12 + digit - 'A', true
	case digit >= 'a' && digit <= 'd':
		return 12 + digit - 'a', true
	}
	return 0, false
}

// DTMF frequencies (ITU-T Q.23): rows (low group) and columns (high group).
var (
	dtmfRows = [4]float64{697, 770, 852, 941}
	dtmfCols = [4]float64{1209, 1336, 1477, 1633}
)

// dtmfKey is the event code of each row and column: 1 2 3 A / 4 5 6 B /
// 7 8 9 C / * 0 # D.
var dtmfKey = [4][4]uint8{{1, 2, 3, 12}, {4, 5, 6, 13}, {7, 8, 9, 14}, {10, 0, 11, 15}}

// dtmfFreqs returns the row and column frequencies of a DTMF event code.
func dtmfFreqs(code uint8) (row, col float64, ok bool) {
	for r := range dtmfKey {
		for c := range dtmfKey[r] {
			if dtmfKey[r][c] == code {
				return dtmfRows[r], dtmfCols[c], true
			}
		}
	}
	return 0, 0, false
}

// dbm0Peak is the peak of a 0 dBm0 sine in 16-bit linear PCM (G.711's
// digital milliwatt is 3.17 dB below full scale).
const dbm0Peak = 22654

// DTMFTone writes the in-band tone of event code (0-15) to out: both
// frequencies, each at volume -dBm0 (clamped to 3..63 so the sum never
// clips), at rate samples per second, starting at sample index start of the
// tone so successive calls join without a phase jump. It reports false, and
// writes silence, for a code that is not a DTMF digit.
func DTMFTone(out []int16, code, volume uint8, rate, start int) bool {
	row, col, ok := dtmfFreqs(code)
	if !ok {
		clear(out)
		return false
	}
	amp := dbm0Peak * math.Pow(10, -float64(min(max(volume, 3), 63))/20)
	wr, wc := 2*math.Pi*row/float64(rate), 2*math.Pi*col/float64(rate)
	for i := range out {
		n := float64(start + i)
		out[i] = int16(amp * (math.Sin(wr*n) + math.Sin(wc*n)))
	}
	return true
}

// DTMFDetector finds DTMF digits in PCM with the Goertzel algorithm: blocks
// of 25.6 ms (205 samples at 8 kHz), the eight DTMF frequencies measured in
// each, a digit accepted when one row and one column dominate the block's
// energy, their levels are within the twist limits (8 dB normal, 4 dB
// reverse, ITU-T Q.24) and above -36 dBm0, and two blocks in a row agree
// (≥ 40 ms, Q.24's minimum); it ends when two blocks in a row lack it. It
// works at 8, 16 or 48 kHz and does not allocate after construction.
type DTMFDetector struct {
	rate   int
	block  int
	coeff  [8]float64
	s1, s2 [8]float64
	energy float64
	n      int   // samples in the current block
	pos    int64 // absolute index of the next sample fed

	cand     uint8 // digit of the previous block, noDigit for none
	candAt   int64 // start of the block cand was first seen in
	cur      uint8 // digit being reported, noDigit for none
	curStart int64
	misses   int
	level    float64 // per-tone level of the last accepted block, dBm0
	events   [8]ToneEvent
	nev      int
}

const noDigit = 0xff

// ToneEvent is a detected digit starting or ending.
type ToneEvent struct {
	Code  uint8 // event code, 0-15
	Start bool  // true: the digit began at Sample; false: it ended there
	// Sample is the absolute index, counted from the first sample fed, of
	// the digit's first sample (Start) or of the sample after its last.
	Sample int64
	// Volume is the level of each of the two tones in -dBm0 (the RFC 4733
	// volume field, as DTMFTone reads it).
	Volume uint8
}

// NewDTMFDetector returns a detector for PCM at rate (8000, 16000 or 48000).
func NewDTMFDetector(rate int) (*DTMFDetector, error) {
	if rate != 8000 && rate != 16000 && rate != 48000 {
		return nil, ErrBadParams
	}
	d := &DTMFDetector{rate: rate, block: 205 * rate / 8000, cand: noDigit, cur: noDigit}
	for i, f := range append(dtmfRows[:], dtmfCols[:]...) {
		d.coeff[i] = 2 * math.Cos(2*math.Pi*f/float64(rate))
	}
	return d, nil
}

// Reset forgets everything fed so far (a new stream).
func (d *DTMFDetector) Reset() {
	d.s1, d.s2, d.energy, d.n, d.pos = [8]float64{}, [8]float64{}, 0, 0, 0
	d.cand, d.cur, d.misses = noDigit, noDigit, 0
}

// Active reports the digit being heard now, if any, and where it started.
func (d *DTMFDetector) Active() (code uint8, start int64, ok bool) {
	return d.cur, d.curStart, d.cur != noDigit
}

// Feed runs pcm through the detector and returns the digits that started or
// ended in it, in order; the slice is the detector's own, valid until the
// next call.
func (d *DTMFDetector) Feed(pcm []int16) []ToneEvent {
	d.nev = 0
	for _, x := range pcm {
		v := float64(x)
		d.energy += v * v
		for i, c := range d.coeff {
			s := v + c*d.s1[i] - d.s2[i]
			d.s2[i], d.s1[i] = d.s1[i], s
		}
		d.n++
		d.pos++
		if d.n == d.block {
			d.endBlock()
		}
	}
	return d.events[:d.nev]
}

func (d *DTMFDetector) emit(e ToneEvent) {
	if d.nev < len(d.events) {
		d.events[d.nev] = e
		d.nev++
	}
}

func (d *DTMFDetector) endBlock() {
	blockStart := d.pos - int64(d.block)
	digit := d.classify()
	d.s1, d.s2, d.energy, d.n = [8]float64{}, [8]float64{}, 0, 0

	if d.cur != noDigit {
		if digit == d.cur {
			d.misses = 0
			return
		}
		if d.misses++; d.misses < 2 && digit == noDigit {
			return // one bad block (a codec glitch) does not end a digit
		}
		d.emit(ToneEvent{Code: d.cur, Start: false, Sample: blockStart - int64(d.misses-1)*int64(d.block)})
		d.cur, d.misses = noDigit, 0
	}
	if digit != noDigit && digit == d.cand {
		d.cur, d.curStart, d.misses = digit, d.candAt, 0
		d.emit(ToneEvent{Code: digit, Start: true, Sample: d.candAt, Volume: d.volume()})
		d.cand = noDigit
		return
	}
	d.cand, d.candAt = digit, blockStart
}

func (d *DTMFDetector) volume() uint8 {
	return uint8(min(max(math.Round(-d.level), 0), 63))
}

// classify judges the block just completed.
func (d *DTMFDetector) classify() uint8 {
	var p [8]float64
	n := float64(d.block)
	for i, c := range d.coeff {
		s1, s2 := d.s1[i], d.s2[i]
		// Power of the bin, scaled so a sine of amplitude A reads A²/2
		// (the mean power of that sine).
		p[i] = (s1*s1 + s2*s2 - c*s1*s2) * 2 / (n * n)
	}
	r, c := 0, 4
	for i := 1; i < 4; i++ {
		if p[i] > p[r] {
			r = i
		}
		if p[4+i] > p[c] {
			c = 4 + i
		}
	}
	pr, pc := p[r], p[c]
	mean := d.energy / n
	// Level: each tone above -36 dBm0 (a 0 dBm0 sine has power peak²/2).
	const minPower = dbm0Peak * dbm0Peak / 2 * 2.5e-4
	if pr < minPower || pc < minPower {
		return noDigit
	}
	// Twist: the column (high) tone at most 4 dB above the row tone, at
	// most 8 dB below it.
	if pc > pr*2.512 || pr > pc*6.31 {
		return noDigit
	}
	// Each winner 8 dB above the others of its group.
	for i := range 4 {
		if i != r && p[i]*6.31 > pr {
			return noDigit
		}
		if 4+i != c && p[4+i]*6.31 > pc {
			return noDigit
		}
	}
	// The two tones carry most of the block's energy: speech does not.
	if pr+pc < 0.6*mean {
		return noDigit
	}
	d.level = 10 * math.Log10((pr+pc)/2/(dbm0Peak*dbm0Peak/2))
	return dtmfKey[r][c-4]
}
