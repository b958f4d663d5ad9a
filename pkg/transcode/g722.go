// SPDX-License-Identifier: Apache-2.0

package transcode

import "github.com/gotranspile/g722"

// G.722 (64 kbit/s SB-ADPCM) through github.com/gotranspile/g722: a pure-Go
// translation of the Underwood/CMU code that spandsp also carries, and
// bit-exact with spandsp 0.0.6 (g722_spandsp_test.go checks it). Its README
// states the licence (BSD, parts public domain); the repository has no
// LICENSE file. SDP says G722/8000 (RFC 3551 §4.5.2) but the audio is 16 kHz:
// one payload byte per two samples, 160 timestamp units per 20 ms.

func g722Codec() *Codec {
	return &Codec{
		Name: "G722", StaticPT: 9, ClockRate: 8000, Channels: 1,
		Rates: []int{16000}, PTimes: g7xxPTimes, MaxPayload: g7xxMaxPayload,
		newDecoder: func(Params, int) (Decoder, error) { return newG722Decoder(), nil },
		newEncoder: func(Params, int, EncoderOptions) (Encoder, error) { return newG722Encoder(), nil },
	}
}

type g722Decoder struct {
	st, fresh g722.Decoder
	plc       plc
}

func newG722Decoder() *g722Decoder {
	d := &g722Decoder{fresh: *g722.NewDecoder(g722.Rate64000, 0), plc: newPLC(16000)}
	d.st = d.fresh
	return d
}

func (d *g722Decoder) SampleRate() int { return 16000 }

// Decode never fails on content: every byte is a valid pair of sub-band codes.
func (d *g722Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(payload) == 0 {
		return 0, ErrEmptyPayload
	}
	if 2*len(payload) > len(pcm) {
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

type g722Encoder struct{ st, fresh g722.Encoder }

func newG722Encoder() *g722Encoder {
	e := &g722Encoder{fresh: *g722.NewEncoder(g722.Rate64000, 0)}
	e.st = e.fresh
	return e
}

func (e *g722Encoder) SampleRate() int { return 16000 }

func (e *g722Encoder) Encode(pcm []int16, out []byte) (int, error) {
	if len(pcm)%2 != 0 {
		return 0, ErrBadParams
	}
	if len(out) < len(pcm)/2 {
		return 0, ErrBufferTooSmall
	}
	return e.st.Encode(out, pcm), nil
}

func (e *g722Encoder) Reset() { e.st = e.fresh }
