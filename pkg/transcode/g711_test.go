// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"math"
	"testing"
)

// Every code decodes to a value that encodes back to the same code (G.711's
// defining property), except µ-law's negative zero, which decodes to 0 and so
// comes back as positive zero.
func TestG711Codes(t *testing.T) {
	for c := range 256 {
		if got := UlawEncode(UlawDecode(byte(c))); got != byte(c) && !(byte(c) == 0x7f && got == 0xff) {
			t.Errorf("µ-law %#02x decodes to %d, which encodes to %#02x", c, UlawDecode(byte(c)), got)
		}
		if got := AlawEncode(AlawDecode(byte(c))); got != byte(c) {
			t.Errorf("A-law %#02x decodes to %d, which encodes to %#02x", c, AlawDecode(byte(c)), got)
		}
	}
	// Known values (ITU-T G.711 Tables 2a/2b, scaled to 16 bits): silence
	// and full scale.
	for _, tc := range []struct {
		code byte
		ulaw int16
	}{{0xff, 0}, {0x80, 32124}, {0x00, -32124}} {
		if got := UlawDecode(tc.code); got != tc.ulaw {
			t.Errorf("µ-law %#02x = %d, want %d", tc.code, got, tc.ulaw)
		}
	}
	if got := AlawDecode(0xd5); got != 8 {
		t.Errorf("A-law 0xd5 = %d, want 8", got)
	}
	if got := AlawDecode(0xaa); got != 32256 {
		t.Errorf("A-law 0xaa = %d, want 32256", got)
	}
}

// The digital milliwatt (ITU-T G.711 Tables 5 and 6): eight codes per law
// that decode to a 1 kHz sine at 0 dBm0, sampled at π/8 + kπ/4 from the
// negative half-cycle; 0 dBm0 is 3.17 dB (µ-law) and 3.14 dB (A-law) below
// the law's overload point, 8159 and 4096 in its own units.
func TestG711DigitalMilliwatt(t *testing.T) {
	for _, law := range []struct {
		name     string
		codes    []byte
		dec      func(byte) int16
		enc      func(int16) byte
		overload float64 // in 16-bit units
		belowDB  float64
	}{
		{"µ-law", []byte{0x1e, 0x0b, 0x0b, 0x1e, 0x9e, 0x8b, 0x8b, 0x9e}, UlawDecode, UlawEncode, 8159 * 4, 3.17},
		{"A-law", []byte{0x34, 0x21, 0x21, 0x34, 0xb4, 0xa1, 0xa1, 0xb4}, AlawDecode, AlawEncode, 4096 * 8, 3.14},
	} {
		// Least-squares amplitude of the decoded sequence against the sine.
		var num, den float64
		for k, c := range law.codes {
			s := -math.Sin(math.Pi/8 + float64(k)*math.Pi/4)
			num += float64(law.dec(c)) * s
			den += s * s
			if law.enc(law.dec(c)) != c {
				t.Errorf("%s: DMW code %#02x does not survive a round trip", law.name, c)
			}
		}
		peak := num / den
		want := law.overload * math.Pow(10, -law.belowDB/20)
		if d := dbOf(peak, want); math.Abs(d) > 0.1 {
			t.Errorf("%s: digital milliwatt peak %.0f is %.2f dB from 0 dBm0 (%.0f)", law.name, peak, d, want)
		}
		// And the decoded values are the sine's samples, quantised:
		// each within one quantisation step of it.
		for k, c := range law.codes {
			s := peak * -math.Sin(math.Pi/8+float64(k)*math.Pi/4)
			if math.Abs(float64(law.dec(c))-s) > 512 {
				t.Errorf("%s: DMW[%d] decodes to %d, sine %.0f", law.name, k, law.dec(c), s)
			}
		}
	}
}

// G.191's rule for negative samples: quantised on their ones' complement, so
// the law is symmetric about -0.5; and the codes never go backwards as the
// input rises.
func TestG711SymmetryAndMonotony(t *testing.T) {
	prevU, prevA := math.MinInt, math.MinInt
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		s := int16(x)
		if s < 0 {
			if UlawEncode(s) != UlawEncode(^s)&0x7f {
				t.Fatalf("µ-law(%d) = %#02x, µ-law(%d) = %#02x: not symmetric", s, UlawEncode(s), ^s, UlawEncode(^s))
			}
			if AlawEncode(s)^0x55 != (AlawEncode(^s)^0x55)&0x7f {
				t.Fatalf("A-law(%d) = %#02x, A-law(%d) = %#02x: not symmetric", s, AlawEncode(s), ^s, AlawEncode(^s))
			}
		}
		u, a := int(UlawDecode(UlawEncode(s))), int(AlawDecode(AlawEncode(s)))
		if u < prevU || a < prevA {
			t.Fatalf("reconstruction goes backwards at %d", s)
		}
		prevU, prevA = u, a
	}
}

// The per-packet codecs' tables agree with the functions for every input.
func TestG711Tables(t *testing.T) {
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		s := int16(x)
		if ulawEncodeFast(s) != UlawEncode(s) {
			t.Fatalf("µ-law table(%d) = %#02x, function %#02x", s, ulawEncodeFast(s), UlawEncode(s))
		}
		if alawEncodeFast(s) != AlawEncode(s) {
			t.Fatalf("A-law table(%d) = %#02x, function %#02x", s, alawEncodeFast(s), AlawEncode(s))
		}
	}
}

func TestG711SNR(t *testing.T) {
	for _, tc := range []struct {
		name     string
		enc      func(int16) byte
		dec      func(byte) int16
		minSNRdB float64
	}{{"ulaw", UlawEncode, UlawDecode, 35}, {"alaw", AlawEncode, AlawDecode, 35}} {
		var sig, noise float64
		for i := range 8000 {
			s := int16(10000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
			d := tc.dec(tc.enc(s))
			sig += float64(s) * float64(s)
			noise += float64(s-d) * float64(s-d)
		}
		if snr := 10 * math.Log10(sig/noise); snr < tc.minSNRdB {
			t.Errorf("%s: SNR %.1f dB, want >= %.0f", tc.name, snr, tc.minSNRdB)
		}
	}
}
