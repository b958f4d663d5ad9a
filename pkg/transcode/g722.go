// SPDX-License-Identifier: Apache-2.0

package transcode

import "github.com/gotranspile/g722"

// G.722 (64 kbit/s SB-ADPCM) through github.com/gotranspile/g722: a pure-Go
// translation of the Underwood/CMU code that spandsp also carries, and
// bit-exact with spandsp 0.0.6 (g722_spandsp_test.go checks it). Its README
// states the licence (BSD, parts public domain); the repository has no
// LICENSE file. SDP says G722/8000 (RFC 3551 §4.5.2) but the audio is 16 kHz:
// one payload byte per two samples, 160 timestamp units per 20 ms.
//
// Towards an 8 kHz codec (G.711) it runs in the 8 kHz mode spandsp and
// Asterisk use: only the lower sub-band (0–4 kHz, sampled at 8 kHz) is
// decoded, and encoding fills the lower sub-band straight from 8 kHz PCM
// with the upper one silent. The far side could not carry the upper band
// anyway, and the QMF filters, the upper band's ADPCM and a resampler each
// way are skipped: about half the cost per packet.

func g722Codec() *Codec {
	return &Codec{
		Name: "G722", StaticPT: 9, ClockRate: 8000, Channels: 1,
		Rates: []int{16000, 8000}, PTimes: g7xxPTimes, MaxPayload: g7xxMaxPayload,
		newDecoder: func(_ Params, rate int) (Decoder, error) { return newG722DecoderAt(rate), nil },
		newEncoder: func(_ Params, rate int, _ EncoderOptions) (Encoder, error) { return newG722EncoderAt(rate), nil },
	}
}

type g722Decoder struct {
	st, fresh g722.Decoder
	plc       plc
	rate      int // 16000, or 8000 for the lower sub-band alone
}

func newG722Decoder() *g722Decoder { return newG722DecoderAt(16000) }

// newG722DecoderAt decodes to 16 kHz, or to 8 kHz from the lower sub-band.
func newG722DecoderAt(rate int) *g722Decoder {
	d := &g722Decoder{rate: rate, plc: newPLC(rate)}
	var flags g722.Flags
	if rate == 8000 {
		flags = g722.FlagSampleRate8000
	}
	d.fresh = *g722.NewDecoder(g722.Rate64000, flags)
	d.st = d.fresh
	return d
}

func (d *g722Decoder) SampleRate() int { return d.rate }

// Decode never fails on content: every byte is a valid pair of sub-band codes.
func (d *g722Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(payload) == 0 {
		return 0, ErrEmptyPayload
	}
	if g722SamplesPerByte(d.rate)*len(payload) > len(pcm) {
		return 0, ErrPayloadTooLong
	}
	n := d.st.Decode(pcm, payload)
	d.plc.good(pcm[:n])
	return n, nil
}

// Conceal repeats the last pitch period; the ADPCM state is left as it was, so
// the next packet decodes against the state of the last one received.
func (d *g722Decoder) Conceal(pcm []int16) (int, error) { return d.plc.conceal(pcm), nil }

func (d *g722Decoder) Reset() {
	d.st = d.fresh
	d.plc.reset()
}

type g722Encoder struct {
	st, fresh g722.Encoder
	rate      int // 16000, or 8000 into the lower sub-band alone
}

func newG722Encoder() *g722Encoder { return newG722EncoderAt(16000) }

// newG722EncoderAt encodes from 16 kHz, or from 8 kHz into the lower
// sub-band with the upper one silent.
func newG722EncoderAt(rate int) *g722Encoder {
	e := &g722Encoder{rate: rate}
	var flags g722.Flags
	if rate == 8000 {
		flags = g722.FlagSampleRate8000
	}
	e.fresh = *g722.NewEncoder(g722.Rate64000, flags)
	e.st = e.fresh
	return e
}

func (e *g722Encoder) SampleRate() int { return e.rate }

func (e *g722Encoder) Encode(pcm []int16, out []byte) (int, error) {
	per := g722SamplesPerByte(e.rate)
	if len(pcm)%per != 0 {
		return 0, ErrBadParams
	}
	if len(out) < len(pcm)/per {
		return 0, ErrBufferTooSmall
	}
	return e.st.Encode(out, pcm), nil
}

func (e *g722Encoder) Reset() { e.st = e.fresh }

// g722SamplesPerByte is how many PCM samples one byte of G.722 carries at
// rate: two at 16 kHz (a code for each sub-band per pair of samples), one
// when only the lower sub-band is used.
func g722SamplesPerByte(rate int) int { return rate / 8000 }
