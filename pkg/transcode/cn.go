// SPDX-License-Identifier: Apache-2.0

package transcode

import "math"

// RFC 3389 comfort noise. The payload's first byte is the noise level in
// -dBov (0..127); relayd ignores the optional reflection coefficients that
// may follow and makes white noise at that level. 0 dBov is the level of a
// full-scale square wave (RFC 3389 §3.1), an RMS of 32767 in 16-bit PCM.

const cnRef = 32767.0

// CNLevel is the RFC 3389 noise level byte of pcm: its RMS in -dBov, 0..127.
func CNLevel(pcm []int16) byte {
	rms := RMS(pcm)
	if rms < 1 {
		return 127
	}
	return byte(min(max(math.Round(-20*math.Log10(rms/cnRef)), 0), 127))
}

// comfortNoise fills out with white noise whose RMS is the level byte's
// (uniform samples in ±A have an RMS of A/√3), from the xorshift generator
// state rng.
func comfortNoise(out []int16, level byte, rng *uint32) {
	if level&0x7f >= 127 {
		clear(out)
		return
	}
	a := cnRef * math.Pow(10, -float64(level&0x7f)/20) * math.Sqrt(3)
	a = min(a, 32767)
	x := *rng
	if x == 0 {
		x = 0x9e3779b9
	}
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		u := float64(int32(x)) / (1 << 31) // uniform in [-1, 1)
		out[i] = int16(a * u)
	}
	*rng = x
}
