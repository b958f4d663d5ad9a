// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxPacketMs is the most audio one packet may carry (RFC 6716's 120 ms for
// Opus; G.711/G.722 packets longer than that are refused), and so the most a
// single gap is concealed for.
const maxPacketMs = 120

// Decoder turns the payloads of one RTP stream into mono 16-bit linear PCM at
// SampleRate. It keeps the codec's state between packets: one per stream
// direction, used by one goroutine.
type Decoder interface {
	// Decode decodes one RTP payload into pcm and returns the number of
	// samples written; pcm must hold the payload's whole duration (at most
	// 120 ms). A corrupt payload returns ErrDecode and writes nothing.
	Decode(payload []byte, pcm []int16) (int, error)
	SampleRate() int
	// Reset forgets the stream's history (a new SSRC).
	Reset()
}

// Concealer is a Decoder that can stand in for lost packets (packet loss
// concealment): it fills all of pcm from the audio decoded so far.
type Concealer interface {
	Conceal(pcm []int16) (int, error)
}

// FECDecoder is a Decoder that can recover a lost packet from redundancy
// carried by the packet after it (Opus in-band FEC). It fills all of pcm, the
// duration of the loss: the last frame from the redundancy when next has any,
// the rest by concealment. next is decoded normally afterwards.
type FECDecoder interface {
	DecodeFEC(next []byte, pcm []int16) (int, error)
}

// Encoder turns mono 16-bit linear PCM at SampleRate into payloads of one RTP
// stream; one per stream direction, used by one goroutine.
type Encoder interface {
	// Encode encodes exactly one packet's worth of pcm (a frame size the
	// codec accepts) into out and returns the payload's length. A length of
	// 0 with no error means discontinuous transmission: nothing need be
	// sent for this frame.
	Encode(pcm []int16, out []byte) (int, error)
	SampleRate() int
	Reset()
}

// Format is one codec as an SDP media description names it: a=rtpmap's
// encoding name, clock rate and channels, and a=fmtp's parameters.
type Format struct {
	Name      string // encoding name, case-insensitive ("PCMU", "opus")
	ClockRate int    // RTP clock rate
	Channels  int    // 0 means 1
	Fmtp      string // a=fmtp parameters, "key=value;key=value"
}

func (f Format) String() string {
	s := f.Name + "/" + strconv.Itoa(f.ClockRate)
	if f.Channels > 1 {
		s += "/" + strconv.Itoa(f.Channels)
	}
	return s
}

// Params are the fmtp parameters that change what a transcoder does. Opus's
// are the receiver's wishes (RFC 7587 §6.1): an encoder honours the ones its
// far side declared.
type Params struct {
	// Opus.
	UseInbandFEC      bool // useinbandfec=1: the receiver decodes in-band FEC
	UseDTX            bool // usedtx=1: the receiver prefers DTX
	MaxAverageBitrate int  // maxaveragebitrate, bits/s; 0 when absent
	MaxPlaybackRate   int  // maxplaybackrate, Hz; 0 when absent
	Stereo            bool // stereo=1 (relayd sends mono whatever it says)
	CBR               bool // cbr=1
	// telephone-event: the events the receiver accepts (RFC 4733 §2.4.1);
	// 0-15 when the fmtp names none.
	Events EventSet
}

// EventSet is a set of telephone-event codes, 0..255.
type EventSet [4]uint64

// Has reports whether e is in the set.
func (s *EventSet) Has(e uint8) bool { return s[e>>6]&(1<<(e&63)) != 0 }

// Add puts the events lo..hi in the set.
func (s *EventSet) Add(lo, hi uint8) {
	for e := int(lo); e <= int(hi); e++ {
		s[e>>6] |= 1 << (e & 63)
	}
}

// ParseFmtp reads the fmtp parameters of the codec named name. Unknown keys
// are ignored (they do not change what relayd does); a known key with a value
// that cannot be read is an ErrBadParams error.
func ParseFmtp(name, fmtp string) (Params, error) {
	var p Params
	te := strings.EqualFold(name, "telephone-event")
	if te {
		if strings.TrimSpace(fmtp) == "" {
			p.Events.Add(0, 15)
			return p, nil
		}
		return p, parseEvents(&p.Events, fmtp)
	}
	for kv := range strings.SplitSeq(fmtp, ";") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		var err error
		switch k {
		case "useinbandfec":
			p.UseInbandFEC, err = flag01(v)
		case "usedtx":
			p.UseDTX, err = flag01(v)
		case "stereo":
			p.Stereo, err = flag01(v)
		case "cbr":
			p.CBR, err = flag01(v)
		case "maxaveragebitrate":
			p.MaxAverageBitrate, err = boundedInt(v, 6000, 510000)
		case "maxplaybackrate":
			p.MaxPlaybackRate, err = boundedInt(v, 8000, 48000)
		}
		if err != nil {
			return p, fmt.Errorf("%w: %s fmtp %s: %w", ErrBadParams, name, kv, err)
		}
	}
	return p, nil
}

func flag01(v string) (bool, error) {
	switch v {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, fmt.Errorf("want 0 or 1, got %q", v)
}

func boundedInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, err
	}
	return min(max(n, lo), hi), nil // RFC 7587: out-of-range values are clamped
}

// parseEvents reads RFC 4733's event list: "0-15,16", ranges and codes.
func parseEvents(s *EventSet, list string) error {
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 8)
		if err != nil {
			return fmt.Errorf("%w: telephone-event list %q", ErrBadParams, list)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 8); err != nil || b < a {
				return fmt.Errorf("%w: telephone-event list %q", ErrBadParams, list)
			}
		}
		s.Add(uint8(a), uint8(b))
	}
	return nil
}

// Codec describes one codec the registry knows: its SDP identity, the PCM
// rates it decodes to and encodes from, its packetisation, and how to make its
// per-stream encoders and decoders.
type Codec struct {
	// Name is the canonical encoding name ("PCMU", "PCMA", "G722", "opus").
	Name string
	// StaticPT is the RFC 3551 static payload type, or -1.
	StaticPT int
	// ClockRate and Channels are the a=rtpmap values (G.722: 8000 although
	// it samples at 16 kHz, RFC 3551 §4.5.2; opus: 48000/2 whatever it
	// carries, RFC 7587).
	ClockRate, Channels int
	// Rates are the PCM sample rates its Decoder and Encoder work at; the
	// first is its native rate. libopus resamples internally, so Opus
	// decodes and encodes at whichever rate the other side needs.
	Rates []int
	// PTimes are the packet durations, in ms, its Encoder can produce.
	PTimes []int
	// MaxPayload is the largest payload of one packet of ptime ms.
	MaxPayload func(ptime int) int

	unavailable error // why this build cannot run it, nil when it can
	newDecoder  func(p Params, rate int) (Decoder, error)
	newEncoder  func(p Params, rate int, opt EncoderOptions) (Encoder, error)
}

// EncoderOptions tune an encoder beyond what the far side's fmtp says; zero
// values choose relayd's defaults.
type EncoderOptions struct {
	Bitrate    int // bits/s (Opus); capped by the far side's maxaveragebitrate
	Complexity int // 1..10 (Opus); 0 picks 5, the narrowband sweet spot
	LossPerc   int // expected loss, % (Opus FEC); 0 picks 5
}

// NativeRate is the sample rate the codec carries audio at.
func (c *Codec) NativeRate() int { return c.Rates[0] }

// SupportsRate reports whether the codec's Decoder and Encoder work at rate.
func (c *Codec) SupportsRate(rate int) bool { return slices.Contains(c.Rates, rate) }

// Available returns nil when this build can run the codec, otherwise an error
// wrapping ErrCodecUnavailable that names it and what it needs.
func (c *Codec) Available() error { return c.unavailable }

// NewDecoder makes a decoder for one stream at PCM sample rate rate (one of
// Rates; 0 means the native rate).
func (c *Codec) NewDecoder(p Params, rate int) (Decoder, error) {
	if c.unavailable != nil {
		return nil, c.unavailable
	}
	if rate == 0 {
		rate = c.NativeRate()
	}
	if !c.SupportsRate(rate) {
		return nil, fmt.Errorf("%w: %s cannot decode to %d Hz", ErrBadParams, c.Name, rate)
	}
	return c.newDecoder(p, rate)
}

// NewEncoder makes an encoder for one stream from PCM at rate (one of Rates;
// 0 means the native rate). p are the far side's fmtp parameters.
func (c *Codec) NewEncoder(p Params, rate int, opt EncoderOptions) (Encoder, error) {
	if c.unavailable != nil {
		return nil, c.unavailable
	}
	if rate == 0 {
		rate = c.NativeRate()
	}
	if !c.SupportsRate(rate) {
		return nil, fmt.Errorf("%w: %s cannot encode from %d Hz", ErrBadParams, c.Name, rate)
	}
	return c.newEncoder(p, rate, opt)
}

// Registry maps SDP formats to codecs. It holds no global state: each caller
// makes its own with NewRegistry and shares it read-only.
type Registry struct {
	codecs []*Codec
}

// NewRegistry returns a registry of the codecs built into relayd: PCMU/8000,
// PCMA/8000, G722/8000 and opus/48000/2 (the last answering
// ErrCodecUnavailable in a build without cgo and libopus).
func NewRegistry() *Registry {
	return &Registry{codecs: []*Codec{pcmuCodec(), pcmaCodec(), g722Codec(), opusCodec()}}
}

// Codecs lists the registry's codecs, available or not.
func (r *Registry) Codecs() []*Codec { return slices.Clone(r.codecs) }

// Lookup finds the codec of an SDP format by encoding name
// (case-insensitive), clock rate and channel count. Opus is always
// opus/48000/2 (RFC 7587); a missing channel count there is tolerated.
func (r *Registry) Lookup(f Format) (*Codec, error) {
	ch := max(f.Channels, 1)
	for _, c := range r.codecs {
		if !strings.EqualFold(c.Name, f.Name) || c.ClockRate != f.ClockRate {
			continue
		}
		if ch == c.Channels || c.Name == "opus" && ch == 1 {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownCodec, f)
}

// Check reports whether the registry can transcode the format in this build:
// nil, or an error wrapping ErrUnknownCodec or ErrCodecUnavailable whose text
// names the codec (for a warning in an ng reply).
func (r *Registry) Check(f Format) error {
	c, err := r.Lookup(f)
	if err != nil {
		return err
	}
	return c.Available()
}

func pcmuCodec() *Codec {
	return &Codec{
		Name: "PCMU", StaticPT: 0, ClockRate: 8000, Channels: 1,
		Rates: []int{8000}, PTimes: g7xxPTimes, MaxPayload: g7xxMaxPayload,
		newDecoder: func(Params, int) (Decoder, error) {
			return &g711Decoder{table: &g711.ulawDec, plc: newPLC(8000)}, nil
		},
		newEncoder: func(Params, int, EncoderOptions) (Encoder, error) { return &g711Encoder{}, nil },
	}
}

func pcmaCodec() *Codec {
	return &Codec{
		Name: "PCMA", StaticPT: 8, ClockRate: 8000, Channels: 1,
		Rates: []int{8000}, PTimes: g7xxPTimes, MaxPayload: g7xxMaxPayload,
		newDecoder: func(Params, int) (Decoder, error) {
			return &g711Decoder{table: &g711.alawDec, plc: newPLC(8000)}, nil
		},
		newEncoder: func(Params, int, EncoderOptions) (Encoder, error) { return &g711Encoder{alaw: true}, nil },
	}
}

// G.711 and G.722 both carry 8 bytes per ms, in packets of any whole number
// of 5 ms up to 120 ms.
var g7xxPTimes = func() []int {
	var p []int
	for ms := 5; ms <= maxPacketMs; ms += 5 {
		p = append(p, ms)
	}
	return p
}()

func g7xxMaxPayload(ptime int) int { return 8 * ptime }
