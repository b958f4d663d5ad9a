// SPDX-License-Identifier: Apache-2.0

package transcode

import "math"

// Tone fills out with a sine of freq Hz at rate samples per second, peak
// amplitude amp, starting at sample index start (so consecutive frames join
// without a phase jump).
func Tone(out []int16, freq float64, rate int, amp float64, start int) {
	for i := range out {
		out[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(start+i)/float64(rate)))
	}
}

// Power is the Goertzel power of freq in samples (rate samples per second),
// normalised by the block's length: one frequency bin without an FFT.
func Power(samples []int16, freq float64, rate int) float64 {
	if len(samples) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	return p / float64(len(samples)*len(samples))
}

// DominantFrequency returns the frequency, in steps of step Hz from lo to
// hi, with the most power in samples.
func DominantFrequency(samples []int16, rate int, lo, hi, step float64) float64 {
	best, bestP := lo, -1.0
	for f := lo; f <= hi; f += step {
		if p := Power(samples, f, rate); p > bestP {
			best, bestP = f, p
		}
	}
	return best
}

// RMS is the root mean square of samples.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(samples)))
}
