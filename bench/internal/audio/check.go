// SPDX-License-Identifier: Apache-2.0

package audio

import (
	"fmt"
	"math"

	"github.com/relayd/relayd/pkg/transcode"
)

// CheckPackets is how many consecutive packets of a stream one check
// decodes; the last judgedPackets of them are judged, the first let the
// decoder settle (a decoder joining a stream mid-way starts from silence).
const (
	CheckPackets  = 5
	judgedPackets = 3
)

// Tolerances of a check: the dominant frequency within toleranceHz of the
// tone, searched from minHz to maxHz in steps of stepHz, and a level of at
// least minLevel of the tone's RMS.
const (
	minHz, maxHz, stepHz = 200.0, 3000.0, 20.0
	toleranceHz          = 30.0
	minLevel             = 0.25
)

// Checker decodes a few consecutive packets of one stream and says whether
// they carry the tone expected. One serves one stream at a time (Reset
// between streams); it allocates nothing after NewChecker.
type Checker struct {
	codec Codec
	dec   transcode.Decoder
	pcm   []int16 // the judged packets' audio, appended
	n     int     // samples in pcm
	seen  int     // packets decoded since Reset
	buf   []int16
}

// NewChecker makes a checker for what arrives in codec c.
func NewChecker(c Codec) (*Checker, error) {
	codec, err := transcode.NewRegistry().Lookup(c.format())
	if err != nil {
		return nil, err
	}
	dec, err := codec.NewDecoder(transcode.Params{}, c.Rate)
	if err != nil {
		return nil, fmt.Errorf("%s decoder: %w", c.Name, err)
	}
	perPacket := c.Rate * 120 / 1000 // up to 120 ms per packet
	return &Checker{codec: c, dec: dec, pcm: make([]int16, judgedPackets*perPacket), buf: make([]int16, perPacket)}, nil
}

// Reset starts a check of another stream.
func (k *Checker) Reset() {
	k.dec.Reset()
	k.n, k.seen = 0, 0
}

// Add decodes the next packet's payload and reports whether the check has
// all its packets. A payload that does not decode counts as a packet of
// silence.
func (k *Checker) Add(payload []byte) bool {
	n, err := k.dec.Decode(payload, k.buf)
	if err != nil {
		n = 0
	}
	k.seen++
	if k.seen > CheckPackets-judgedPackets {
		k.n += copy(k.pcm[k.n:], k.buf[:n])
	}
	return k.seen >= CheckPackets
}

// Result is a check's outcome.
type Result struct {
	OK bool
	// Hz is the dominant frequency found, Level the RMS relative to the
	// tone's.
	Hz, Level float64
}

func (r Result) String() string {
	return fmt.Sprintf("dominant %.0f Hz at %.2f of the tone's level", r.Hz, r.Level)
}

// Judge says whether the packets decoded carry tone.
func (k *Checker) Judge(tone float64) Result {
	pcm := k.pcm[:k.n]
	r := Result{Level: transcode.RMS(pcm) / (Amplitude / math.Sqrt2)}
	if len(pcm) == 0 {
		return r
	}
	r.Hz = transcode.DominantFrequency(pcm, k.codec.Rate, minHz, maxHz, stepHz)
	r.OK = math.Abs(r.Hz-tone) <= toleranceHz && r.Level >= minLevel
	return r
}
