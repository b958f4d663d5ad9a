// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"
)

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func pcmBytes(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	return b
}

// lcg is a deterministic pseudo-random source for test signals.
type lcg uint32

func (l *lcg) next() uint32 {
	*l = *l*1664525 + 1013904223
	return uint32(*l)
}

// speechLike is n samples at rate of a voiced sound: harmonics of a pitch
// gliding between 100 and 220 Hz under a syllable-rate envelope, plus a
// little noise.
func speechLike(n, rate int) []int16 {
	out := make([]int16, n)
	var phase float64
	r := lcg(7)
	for i := range out {
		tm := float64(i) / float64(rate)
		f0 := 160 + 60*math.Sin(2*math.Pi*1.3*tm)
		phase += 2 * math.Pi * f0 / float64(rate)
		var v float64
		for h := 1; h <= 12 && float64(h)*f0 < float64(rate)/2; h++ {
			v += math.Sin(float64(h)*phase) / float64(h)
		}
		env := 0.55 + 0.45*math.Sin(2*math.Pi*4*tm)
		noise := float64(int32(r.next())) / (1 << 31)
		out[i] = int16(6000*env*v + 300*noise)
	}
	return out
}

// tone is n samples of a sine.
func tone(n int, freq float64, rate int, amp float64) []int16 {
	out := make([]int16, n)
	Tone(out, freq, rate, amp, 0)
	return out
}

// dbOf is the level of an RMS relative to another, in dB.
func dbOf(rms, ref float64) float64 { return 20 * math.Log10(rms/ref) }

// checkTone asserts that samples hold a tone of freq Hz (within 2 %) at an
// RMS within tolDB of wantRMS.
func checkTone(t *testing.T, what string, samples []int16, rate int, freq, wantRMS, tolDB float64) {
	t.Helper()
	if len(samples) == 0 {
		t.Errorf("%s: no audio", what)
		return
	}
	got := DominantFrequency(samples, rate, 100, float64(rate)/2-100, 5)
	if math.Abs(got-freq) > freq*0.02 {
		t.Errorf("%s: dominant frequency %.0f Hz, want %.0f", what, got, freq)
	}
	rms := RMS(samples)
	if d := dbOf(rms, wantRMS); math.Abs(d) > tolDB {
		t.Errorf("%s: level %.2f dB off (RMS %.0f, want %.0f)", what, d, rms, wantRMS)
	}
	// The tone carries nearly all the energy: residual at least 20 dB down.
	p := Power(samples, got, rate) * 2 // mean power of the sine component
	total := rms * rms
	if resid := total - p; resid > 0 && 10*math.Log10(p/resid) < 20 {
		t.Errorf("%s: tone-to-residual %.1f dB, want >= 20", what, 10*math.Log10(p/resid))
	}
}
