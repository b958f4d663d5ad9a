// SPDX-License-Identifier: Apache-2.0

package transcode

// G.711 (ITU-T G.711, 1988) companding, bit-exact with the ITU-T reference
// implementation of G.191 (the Software Tools Library's g711.c): a negative
// sample is quantised on its ones' complement, so -1 and 0 sit on either side
// of the zero decision level and the law is symmetric around -0.5.
//
// UlawEncode/AlawEncode and the decoders compute one sample from first
// principles (the segment search on the magnitude); the per-packet codecs use
// the tables below, built from them once, so a packet costs one lookup per
// sample and nothing is allocated.

const (
	ulawBias = 33     // 14-bit µ-law bias: the offset between the µ-law and A-law thresholds
	ulawMax  = 0x1fff // largest biased 14-bit magnitude
)

// UlawEncode compresses one 16-bit linear sample to µ-law.
func UlawEncode(s int16) byte {
	mag, sign := int(s)>>2, byte(0x80) // 14-bit, left-justified input
	if s < 0 {
		mag, sign = int(^s)>>2, 0 // ones' complement, as G.191 does
	}
	return ulawCode(mag) | sign
}

// ulawCode is the µ-law code, sign bit clear, of a 14-bit magnitude.
func ulawCode(mag int) byte {
	v := mag + ulawBias
	if v > ulawMax {
		v = ulawMax
	}
	seg := 1
	for i := v >> 6; i != 0; i >>= 1 {
		seg++
	}
	return byte((8-seg)<<4 | (15 - (v>>seg)&0x0f))
}

// UlawDecode expands one µ-law byte to a 16-bit linear sample.
func UlawDecode(b byte) int16 {
	b = ^b
	exp := int(b>>4) & 0x07
	mant := int(b & 0x0f)
	v := ((mant<<3)+4*ulawBias)<<exp - 4*ulawBias
	if b&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// AlawEncode compresses one 16-bit linear sample to A-law.
func AlawEncode(s int16) byte {
	mag, sign := int(s)>>4, byte(0x80) // 12-bit magnitude of the 13-bit input
	if s < 0 {
		mag, sign = int(^s)>>4, 0
	}
	return alawCode(mag) | sign ^ 0x55
}

// alawCode is the A-law code, before the sign and the even-bit inversion, of a
// 12-bit magnitude.
func alawCode(mag int) byte {
	if mag <= 15 {
		return byte(mag)
	}
	exp := 1
	for mag > 31 {
		mag >>= 1
		exp++
	}
	return byte(exp<<4 | (mag - 16))
}

// AlawDecode expands one A-law byte to a 16-bit linear sample.
func AlawDecode(b byte) int16 {
	b ^= 0x55
	exp := int(b>>4) & 0x07
	mant := int(b & 0x0f)
	var v int
	if exp == 0 {
		v = mant<<4 + 8
	} else {
		v = (mant<<4 + 0x108) << (exp - 1)
	}
	if b&0x80 == 0 {
		return int16(-v)
	}
	return int16(v)
}

// g711Tables are the per-packet codecs' lookup tables: constant after
// construction, shared read-only by every stream.
type g711Tables struct {
	ulawDec [256]int16
	alawDec [256]int16
	ulawEnc [1 << 13]byte // by 14-bit magnitude: int16 >> 2, ones' complement for negatives
	alawEnc [1 << 11]byte // by 12-bit magnitude: int16 >> 4, likewise
}

var g711 = func() *g711Tables {
	t := new(g711Tables)
	for c := range 256 {
		t.ulawDec[c] = UlawDecode(byte(c))
		t.alawDec[c] = AlawDecode(byte(c))
	}
	for m := range t.ulawEnc {
		t.ulawEnc[m] = ulawCode(m)
	}
	for m := range t.alawEnc {
		t.alawEnc[m] = alawCode(m)
	}
	return t
}()

// ulawEncodeFast is UlawEncode by table.
func ulawEncodeFast(s int16) byte {
	if s < 0 {
		return g711.ulawEnc[uint16(^s)>>2]
	}
	return g711.ulawEnc[uint16(s)>>2] | 0x80
}

// alawEncodeFast is AlawEncode by table.
func alawEncodeFast(s int16) byte {
	if s < 0 {
		return g711.alawEnc[uint16(^s)>>4] ^ 0x55
	}
	return (g711.alawEnc[uint16(s)>>4] | 0x80) ^ 0x55
}

// g711Decoder decodes PCMU or PCMA payloads: one byte, one 8 kHz sample.
type g711Decoder struct {
	table *[256]int16
	plc   plc
}

func (d *g711Decoder) SampleRate() int { return 8000 }

func (d *g711Decoder) Decode(payload []byte, pcm []int16) (int, error) {
	if len(payload) > len(pcm) {
		return 0, ErrPayloadTooLong
	}
	if len(payload) == 0 {
		return 0, ErrEmptyPayload
	}
	for i, b := range payload {
		pcm[i] = d.table[b]
	}
	d.plc.good(pcm[:len(payload)])
	return len(payload), nil
}

func (d *g711Decoder) Conceal(pcm []int16) (int, error) { return d.plc.conceal(pcm), nil }

func (d *g711Decoder) Reset() { d.plc.reset() }

// g711Encoder encodes 8 kHz PCM to PCMU or PCMA.
type g711Encoder struct{ alaw bool }

func (e *g711Encoder) SampleRate() int { return 8000 }

func (e *g711Encoder) Encode(pcm []int16, out []byte) (int, error) {
	if len(out) < len(pcm) {
		return 0, ErrBufferTooSmall
	}
	if e.alaw {
		for i, s := range pcm {
			out[i] = alawEncodeFast(s)
		}
	} else {
		for i, s := range pcm {
			out[i] = ulawEncodeFast(s)
		}
	}
	return len(pcm), nil
}

func (e *g711Encoder) Reset() {}
