// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"math"
	"testing"
)

// Every code decodes to a value that encodes back to the same code (G.711's
// defining property), and round trips stay within the quantiser's step.
func TestG711Codes(t *testing.T) {
	for c := range 256 {
		if got := UlawEncode(UlawDecode(byte(c))); got != byte(c) && !(byte(c) == 0x7f && got == 0xff) {
			t.Errorf("µ-law %#02x decodes to %d, which encodes to %#02x", c, UlawDecode(byte(c)), got)
		}
		if got := AlawEncode(AlawDecode(byte(c))); got != byte(c) {
			t.Errorf("A-law %#02x decodes to %d, which encodes to %#02x", c, AlawDecode(byte(c)), got)
		}
	}
	// Known values (ITU-T G.711 tables): silence and full scale.
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
