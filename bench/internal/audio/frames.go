// SPDX-License-Identifier: Apache-2.0

package audio

import (
	"fmt"

	"github.com/relayd/relayd/pkg/transcode"
)

// MaxFrame bounds an encoded frame; Encode refuses a codec setting that
// produces more.
const MaxFrame = 400

// Frames are 20 ms frames of a steady tone, encoded once, for a sender to
// send round and round: frame Frame(n) is the payload of the stream's n-th
// packet.
type Frames struct {
	Codec  Codec
	Tone   float64
	frames [][]byte
}

// framesKept is how many frames a ring holds: one second.
const framesKept = 50

// Encode encodes the tone for c with relayd's encoder. It encodes twice the
// frames it keeps and keeps the second half, so the encoder has settled and
// the ring's wrap joins two frames encoded from the same state of the
// (periodic) signal: a decoder following the ring sees no seam. Tones whose
// period divides 20 ms (CallerTone, CalleeTone) make every frame start at
// the same phase.
func Encode(c Codec, tone float64) (*Frames, error) {
	codec, err := transcode.NewRegistry().Lookup(c.format())
	if err != nil {
		return nil, err
	}
	enc, err := codec.NewEncoder(transcode.Params{}, c.Rate, transcode.EncoderOptions{Bitrate: c.Bitrate})
	if err != nil {
		return nil, fmt.Errorf("%s encoder: %w", c.Name, err)
	}
	n := c.Rate / 50
	pcm := make([]int16, n)
	out := make([]byte, MaxFrame)
	f := &Frames{Codec: c, Tone: tone}
	for i := range 2 * framesKept {
		transcode.Tone(pcm, tone, c.Rate, Amplitude, i*n)
		k, err := enc.Encode(pcm, out)
		if err != nil {
			return nil, fmt.Errorf("%s frame %d: %w", c.Name, i, err)
		}
		if k == 0 {
			return nil, fmt.Errorf("%s frame %d: the encoder sent nothing (DTX)", c.Name, i)
		}
		if i >= framesKept {
			f.frames = append(f.frames, append([]byte(nil), out[:k]...))
		}
	}
	return f, nil
}

// Frame is the payload of a stream's packet number seq.
func (f *Frames) Frame(seq uint64) []byte { return f.frames[seq%uint64(len(f.frames))] }

// Len is how many frames the ring holds.
func (f *Frames) Len() int { return len(f.frames) }

// MaxLen is the longest frame.
func (f *Frames) MaxLen() int {
	m := 0
	for _, b := range f.frames {
		m = max(m, len(b))
	}
	return m
}
