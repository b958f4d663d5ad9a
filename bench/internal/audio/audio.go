// SPDX-License-Identifier: Apache-2.0

package audio

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/relayd/relayd/pkg/transcode"
)

// Codec is one party's codec as the bench offers or answers it.
type Codec struct {
	// Name is the SDP encoding name ("opus", "G722", "PCMU").
	Name string
	// PT is the payload type the party announces.
	PT int
	// Clock and Channels are a=rtpmap's clock rate and channel count
	// (G.722: 8000 although it samples at 16 kHz; Opus: 48000/2).
	Clock, Channels int
	// Step is the RTP timestamp advance of one 20 ms packet.
	Step uint32
	// Rate is the PCM rate the bench encodes from and decodes to.
	Rate int
	// Bitrate is the bench encoder's bit rate (Opus only; 0: the default).
	Bitrate int
}

// Rtpmap is the a=rtpmap value ("opus/48000/2").
func (c Codec) Rtpmap() string {
	s := c.Name + "/" + strconv.Itoa(c.Clock)
	if c.Channels > 1 {
		s += "/" + strconv.Itoa(c.Channels)
	}
	return s
}

func (c Codec) format() transcode.Format {
	return transcode.Format{Name: c.Name, ClockRate: c.Clock, Channels: c.Channels}
}

// The codecs of the pairs. Opus is encoded the way a browser sends it
// (48 kHz capture, mono, 32 kbit/s); the relay decodes it to whatever it
// needs.
var (
	Opus = Codec{Name: "opus", PT: 111, Clock: 48000, Channels: 2, Step: 960, Rate: 48000, Bitrate: 32000}
	G722 = Codec{Name: "G722", PT: 9, Clock: 8000, Channels: 1, Step: 160, Rate: 16000}
	PCMU = Codec{Name: "PCMU", PT: 0, Clock: 8000, Channels: 1, Step: 160, Rate: 8000}
)

// Pair is one kind of transcoded call: the caller offers only Caller's
// codec, the proxy asks the relay to mask it and to transcode to Callee's,
// and the callee answers only Callee's codec.
type Pair struct {
	Name   string // "opus-pcmu", as --transcode-pairs names it
	Label  string // "Opus⇄PCMU", for tables
	Caller Codec
	Callee Codec
}

// The tones each party sends (Hz): different, so that a relay that sent a
// party its own audio back is caught, and neither a harmonic of the other.
const (
	CallerTone = 1000.0
	CalleeTone = 600.0
	// Amplitude is the tones' peak (about -12 dBFS).
	Amplitude = 8000.0
)

// Pairs are the pairs the bench knows, in their usual order.
func Pairs() []Pair {
	return []Pair{
		{Name: "opus-pcmu", Label: "Opus⇄PCMU", Caller: Opus, Callee: PCMU},
		{Name: "g722-pcmu", Label: "G.722⇄PCMU", Caller: G722, Callee: PCMU},
	}
}

// Names lists the pairs' names.
func Names() []string {
	var out []string
	for _, p := range Pairs() {
		out = append(out, p.Name)
	}
	return out
}

// Lookup finds a pair by name (case-insensitive).
func Lookup(name string) (Pair, error) {
	i := slices.IndexFunc(Pairs(), func(p Pair) bool { return strings.EqualFold(p.Name, name) })
	if i < 0 {
		return Pair{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownPair, name, strings.Join(Names(), ", "))
	}
	return Pairs()[i], nil
}

// Available says whether this build of the bench can encode and decode
// both of the pair's codecs: nil, or an error wrapping
// transcode.ErrCodecUnavailable that names the codec.
func (p Pair) Available() error {
	reg := transcode.NewRegistry()
	for _, c := range []Codec{p.Caller, p.Callee} {
		if err := reg.Check(c.format()); err != nil {
			return fmt.Errorf("the bench cannot send %s: %w", c.Name, err)
		}
	}
	return nil
}
