// SPDX-License-Identifier: Apache-2.0

package transcode

// G.711 (ITU-T G.711, 1988) companding, as the reference C code computes it:
// the segment search on the magnitude, no tables, so nothing to initialise.

const (
	ulawBias = 0x84 // 132: added before the segment search (G.711 µ-law)
	ulawClip = 32635
)

// UlawEncode compresses one 16-bit linear sample to µ-law.
func UlawEncode(s int16) byte {
	v := int(s)
	sign := 0
	if v < 0 {
		v, sign = -v, 0x80
	}
	if v > ulawClip {
		v = ulawClip
	}
	v += ulawBias
	exp := 7
	for mask := 0x4000; v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (v >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

// UlawDecode expands one µ-law byte to a 16-bit linear sample.
func UlawDecode(b byte) int16 {
	b = ^b
	exp := int(b>>4) & 0x07
	mant := int(b & 0x0f)
	v := ((mant << 3) + ulawBias) << exp
	v -= ulawBias
	if b&0x80 != 0 {
		return int16(-v)
	}
	return int16(v)
}

// AlawEncode compresses one 16-bit linear sample to A-law.
func AlawEncode(s int16) byte {
	v := int(s) >> 3 // A-law works on 13 bits
	sign := 0x80
	if v < 0 {
		v, sign = -v-1, 0
	}
	var out int
	switch {
	case v < 32:
		out = v >> 1
	default:
		exp := 1
		for m := v >> 5; m > 1 && exp < 7; m >>= 1 {
			exp++
		}
		if v >= 0x1000 {
			out = 0x7f
		} else {
			out = exp<<4 | (v>>exp)&0x0f
		}
	}
	return byte(sign|out) ^ 0x55
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
