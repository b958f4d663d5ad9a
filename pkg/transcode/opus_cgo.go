// SPDX-License-Identifier: Apache-2.0

//go:build cgo && nolibopusfile

package transcode

import (
	"fmt"

	"gopkg.in/hraban/opus.v2"
)

// opusBuilt reports whether this build carries libopus.
const opusBuilt = true

func opusCodec() *Codec {
	return &Codec{
		Name: "opus", StaticPT: -1, ClockRate: 48000, Channels: 2,
		Rates: opusRates, PTimes: opusPTimes,
		MaxPayload: func(int) int { return opusMaxPayload },
		newDecoder: newOpusDecoder,
		newEncoder: newOpusEncoder,
	}
}

// opusDecoder decodes to mono at rate; a stereo stream is downmixed by
// libopus. hraban's calls size the output by cap(pcm), so every slice handed
// to them is capped at its length.
type opusDecoder struct {
	d    *opus.Decoder
	rate int
}

func newOpusDecoder(_ Params, rate int) (Decoder, error) {
	d, err := opus.NewDecoder(rate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus decoder at %d Hz: %w", rate, err)
	}
	return &opusDecoder{d: d, rate: rate}, nil
}

func (d *opusDecoder) SampleRate() int { return d.rate }

func (d *opusDecoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(payload) == 0 {
		return 0, ErrEmptyPayload
	}
	if len(pcm) == 0 {
		return 0, ErrBufferTooSmall
	}
	n, err := d.d.Decode(payload, pcm[:len(pcm):len(pcm)])
	if err != nil {
		return 0, ErrDecode
	}
	return n, nil
}

// frame rounds n down to whole 2.5 ms blocks, the unit libopus conceals in.
func (d *opusDecoder) frame(n int) int { return n - n%(d.rate/400) }

func (d *opusDecoder) DecodeFEC(next []byte, pcm []int16) (int, error) {
	n := d.frame(len(pcm))
	if n == 0 || len(next) == 0 {
		return 0, ErrBufferTooSmall
	}
	if err := d.d.DecodeFEC(next, pcm[:n:n]); err != nil {
		return 0, ErrDecode
	}
	return n, nil
}

func (d *opusDecoder) Conceal(pcm []int16) (int, error) {
	n := d.frame(len(pcm))
	if n == 0 {
		return 0, ErrBufferTooSmall
	}
	if err := d.d.DecodePLC(pcm[:n:n]); err != nil {
		return 0, ErrDecode
	}
	return n, nil
}

func (d *opusDecoder) Reset() {
	// A new decoder state (OPUS_RESET_STATE is not exposed for decoders);
	// only on an SSRC change, so the allocation is off the steady state.
	if nd, err := opus.NewDecoder(d.rate, 1); err == nil {
		d.d = nd
	}
}

// opusEncoder encodes mono from rate, tuned by the far side's fmtp: in-band
// FEC when it said useinbandfec=1, DTX when it said usedtx=1, the bit rate
// capped by its maxaveragebitrate and the bandwidth by its maxplaybackrate.
type opusEncoder struct {
	e    *opus.Encoder
	rate int
	dtx  bool
}

func newOpusEncoder(p Params, rate int, opt EncoderOptions) (Encoder, error) {
	e, err := opus.NewEncoder(rate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus encoder at %d Hz: %w", rate, err)
	}
	bitrate := opt.Bitrate
	if bitrate <= 0 {
		bitrate = opusDefaultBitrate(rate)
	}
	if p.MaxAverageBitrate > 0 {
		bitrate = min(bitrate, p.MaxAverageBitrate)
	}
	complexity := opt.Complexity
	if complexity <= 0 {
		complexity = 5
	}
	var first error
	set := func(what string, err error) {
		if first == nil && err != nil {
			first = fmt.Errorf("opus encoder %s: %w", what, err)
		}
	}
	set("bitrate", e.SetBitrate(bitrate))
	set("complexity", e.SetComplexity(min(complexity, 10)))
	if p.MaxPlaybackRate > 0 {
		set("bandwidth", e.SetMaxBandwidth(opusBandwidth(p.MaxPlaybackRate)))
	}
	if p.UseInbandFEC {
		loss := opt.LossPerc
		if loss <= 0 {
			loss = 5
		}
		set("in-band FEC", e.SetInBandFEC(true))
		set("packet loss", e.SetPacketLossPerc(min(loss, 100)))
	}
	if p.UseDTX {
		set("DTX", e.SetDTX(true))
	}
	if first != nil {
		return nil, first
	}
	return &opusEncoder{e: e, rate: rate, dtx: p.UseDTX}, nil
}

func opusBandwidth(maxPlayback int) opus.Bandwidth {
	switch {
	case maxPlayback <= 8000:
		return opus.Narrowband
	case maxPlayback <= 12000:
		return opus.Mediumband
	case maxPlayback <= 16000:
		return opus.Wideband
	case maxPlayback <= 24000:
		return opus.SuperWideband
	default:
		return opus.Fullband
	}
}

func (e *opusEncoder) SampleRate() int { return e.rate }

func (e *opusEncoder) Encode(pcm []int16, out []byte) (int, error) {
	if len(out) == 0 || len(pcm) == 0 {
		return 0, ErrBufferTooSmall
	}
	n, err := e.e.Encode(pcm, out[:len(out):len(out)])
	if err != nil {
		return 0, ErrEncode
	}
	if e.dtx && n <= 2 {
		return 0, nil // libopus: a packet of 2 bytes or less need not be sent
	}
	return n, nil
}

func (e *opusEncoder) Reset() { _ = e.e.Reset() }
