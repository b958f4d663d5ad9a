// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"math"
	"testing"
)

// resampleAll runs in through r in 20 ms chunks of the input rate.
func resampleAll(r Resampler, in []int16, chunk int) []int16 {
	var out []int16
	buf := make([]int16, r.OutLen(chunk))
	for i := 0; i < len(in); i += chunk {
		n := r.Process(buf, in[i:min(i+chunk, len(in))])
		out = append(out, buf[:n]...)
	}
	return out
}

// The half-band filters pass the telephone band flat and stop what would
// alias or image.
func TestResamplerResponse(t *testing.T) {
	down, _ := NewResampler(16000, 8000)
	up, _ := NewResampler(8000, 16000)
	const amp = 10000.0
	for _, f := range []float64{100, 300, 1000, 2000, 3000, 3400} {
		down.Reset()
		out := resampleAll(down, tone(16000, f, 16000, amp), 320)
		if len(out) != 8000 {
			t.Fatalf("16→8 kHz: %d samples from 16000", len(out))
		}
		if d := dbOf(RMS(out[200:]), amp/math.Sqrt2); math.Abs(d) > 0.1 {
			t.Errorf("16→8 kHz, %.0f Hz: %.2f dB", f, d)
		}
		up.Reset()
		out = resampleAll(up, tone(8000, f, 8000, amp), 160)
		if len(out) != 16000 {
			t.Fatalf("8→16 kHz: %d samples from 8000", len(out))
		}
		if d := dbOf(RMS(out[400:]), amp/math.Sqrt2); math.Abs(d) > 0.1 {
			t.Errorf("8→16 kHz, %.0f Hz: %.2f dB", f, d)
		}
		// No image at 8000-f.
		if p := 2 * math.Sqrt(Power(out[400:], 8000-f, 16000)); dbOf(p, amp) > -60 {
			t.Errorf("8→16 kHz, %.0f Hz: image at %.0f Hz only %.1f dB down", f, 8000-f, dbOf(p, amp))
		}
	}
	// Above 4.6 kHz nothing folds back into the 8 kHz band.
	for _, f := range []float64{4700, 5500, 7000} {
		down.Reset()
		out := resampleAll(down, tone(16000, f, 16000, amp), 320)
		if d := dbOf(RMS(out[200:]), amp/math.Sqrt2); d > -60 {
			t.Errorf("16→8 kHz, %.0f Hz: alias only %.1f dB down", f, d)
		}
	}
}

// A band-limited waveform survives 16→8→16 kHz, delayed by the two filters
// (31 + 32 samples at 16 kHz).
func TestResamplerRoundTrip(t *testing.T) {
	up, _ := NewResampler(8000, 16000)
	down, _ := NewResampler(16000, 8000)
	in := make([]int16, 16000)
	for _, f := range []float64{220, 470, 1130, 2210, 3150} {
		for i, s := range tone(16000, f, 16000, 3000) {
			in[i] += s
		}
	}
	out := resampleAll(up, resampleAll(down, in, 320), 160)
	const lag = 63
	var sig, noise float64
	for i := 1000; i < 15000; i++ {
		d := float64(out[i+lag]) - float64(in[i])
		sig += float64(in[i]) * float64(in[i])
		noise += d * d
	}
	if snr := 10 * math.Log10(sig/noise); snr < 40 {
		t.Errorf("16→8→16 kHz round trip: SNR %.1f dB, want >= 40", snr)
	}
}

// Odd chunk lengths, chunks up to and beyond 120 ms, and saturation.
func TestResamplerChunks(t *testing.T) {
	in := tone(16000, 1000, 16000, 32767)
	down, _ := NewResampler(16000, 8000)
	var out []int16
	buf := make([]int16, down.OutLen(len(in)))
	for i, step := 0, 1; i < len(in); i, step = i+step, step*3%4001+1 {
		n := down.Process(buf, in[i:min(i+step, len(in))])
		out = append(out, buf[:n]...)
	}
	if len(out) != 8000 {
		t.Fatalf("%d samples out of 16000 in odd chunks", len(out))
	}
	down.Reset()
	whole := resampleAll(down, in, len(in))
	for i := range whole {
		if whole[i] != out[i] {
			t.Fatalf("sample %d: %d in one chunk, %d in odd chunks", i, whole[i], out[i])
		}
	}
	if _, err := NewResampler(48000, 8000); err == nil {
		t.Error("6:1 is not supported")
	}
	if r, err := NewResampler(8000, 8000); r != nil || err != nil {
		t.Error("equal rates need no resampler")
	}
}

func TestResamplerAllocs(t *testing.T) {
	up, _ := NewResampler(8000, 16000)
	down, _ := NewResampler(16000, 8000)
	a, b := make([]int16, 320), make([]int16, 320)
	if n := testing.AllocsPerRun(100, func() { up.Process(b, a[:160]); down.Process(a, b) }); n != 0 {
		t.Errorf("%.0f allocations per 20 ms", n)
	}
}
