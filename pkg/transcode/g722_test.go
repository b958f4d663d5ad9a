// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"fmt"
	"math"
	"testing"
)

type g722Signal struct {
	name             string
	pcm              []int16
	encHash, decHash string // SHA-256 of spandsp's encoding and its decoding
}

// g722TestSignals are 1 s signals at 16 kHz with the hashes of what spandsp
// 0.0.6 makes of them (TestG722GoldenIsSpandsp re-derives them where
// spandsp is installed): the G.722 reference vectors here, since the ITU-T
// test sequences are not redistributable.
func g722TestSignals() []g722Signal {
	chirp := make([]int16, 16000)
	var ph float64
	for i := range chirp {
		f := 50 + 7450*float64(i)/float64(len(chirp))
		ph += 2 * math.Pi * f / 16000
		chirp[i] = int16(12000 * math.Sin(ph))
	}
	noise := make([]int16, 16000)
	r := lcg(3)
	for i := range noise {
		noise[i] = int16(int32(r.next()) >> 18)
	}
	square := make([]int16, 16000)
	for i := range square {
		square[i] = 32767
		if (i/40)%2 == 1 {
			square[i] = -32768
		}
	}
	return []g722Signal{
		{"speech-like", speechLike(16000, 16000),
			"e8677e1bc6ac22538b28077d582b349f21e8256093a40e5f55222b1d890d2834",
			"41a3b80aab98861ee18cf36a4c1d8e75894851580db49cdbd35c775a2da38630"},
		{"chirp", chirp,
			"cedde6b5785868ec6f9f8ad5fd0bd8e338f22d0474ef7f5e14031d6f410bbdab",
			"863eca939d6ed54c20a35c6ded07270b9acf25590c3c74e7aa6f729da1f84405"},
		{"noise", noise,
			"e0749be9c1ed55f54294dae474496bfc397957ac93e00e0c575229b9f3f2521c",
			"6693b51b3e4f0459f9ea082a014bed64ddfa28edda5c24c32fef7ca02f912c3a"},
		{"full-scale square", square,
			"be92134d545d010affd1ced5f116b3b9ba8cdd0b3070c91fcb4ac2835b954e4d",
			"02d1dec9628da4dddd16074127a2f92f5ff5479368bda1e45e3296b7697245a7"},
	}
}

// The Go G.722 codec reproduces spandsp's output for the reference signals,
// packet by packet (20 ms), state carried across packets.
func TestG722Golden(t *testing.T) {
	for _, sig := range g722TestSignals() {
		enc := newG722Encoder()
		var g []byte
		for i := 0; i+320 <= len(sig.pcm); i += 320 {
			out := make([]byte, 160)
			n, err := enc.Encode(sig.pcm[i:i+320], out)
			if err != nil {
				t.Fatal(err)
			}
			g = append(g, out[:n]...)
		}
		if h := sha(g); h != sig.encHash {
			t.Errorf("%s: encoding hashes to %s, want %s", sig.name, h, sig.encHash)
		}
		dec := newG722Decoder()
		var pcm []int16
		buf := make([]int16, 320)
		for i := 0; i+160 <= len(g); i += 160 {
			n, err := dec.Decode(g[i:i+160], buf)
			if err != nil {
				t.Fatal(err)
			}
			pcm = append(pcm, buf[:n]...)
		}
		if h := sha(pcmBytes(pcm)); h != sig.decHash {
			t.Errorf("%s: decoding hashes to %s, want %s", sig.name, h, sig.decHash)
		}
	}
}

// A tone survives a G.722 round trip at its frequency and level; Reset
// returns the codec to its initial state.
func TestG722RoundTrip(t *testing.T) {
	enc, dec := newG722Encoder(), newG722Decoder()
	in := tone(16000, 1000, 16000, 8000)
	var out []int16
	g := make([]byte, 160)
	pcm := make([]int16, 320)
	for i := 0; i+320 <= len(in); i += 320 {
		n, _ := enc.Encode(in[i:i+320], g)
		m, _ := dec.Decode(g[:n], pcm)
		out = append(out, pcm[:m]...)
	}
	checkTone(t, "G.722 1 kHz", out[1600:], 16000, 1000, 8000/math.Sqrt2, 0.5)

	first := make([]byte, 160)
	enc.Reset()
	n1, _ := enc.Encode(in[:320], first)
	fresh := newG722Encoder()
	second := make([]byte, 160)
	n2, _ := fresh.Encode(in[:320], second)
	if string(first[:n1]) != string(second[:n2]) {
		t.Error("Reset encoder differs from a new one")
	}
}

// The 8 kHz mode towards G.711: a 16 kHz G.722 stream decodes to its lower
// sub-band at 8 kHz, and 8 kHz PCM encodes to a stream a 16 kHz decoder
// plays as the same tone, for tones across the narrow band.
func TestG722EightKHz(t *testing.T) {
	for _, freq := range []float64{300, 1000, 3000} {
		enc16, dec8 := newG722Encoder(), newG722DecoderAt(8000)
		in := tone(16000, freq, 16000, 8000)
		var out []int16
		g := make([]byte, 160)
		pcm := make([]int16, 160)
		for i := 0; i+320 <= len(in); i += 320 {
			n, _ := enc16.Encode(in[i:i+320], g)
			m, err := dec8.Decode(g[:n], pcm)
			if err != nil || m != 160 {
				t.Fatalf("decode at 8 kHz: %d samples, %v", m, err)
			}
			out = append(out, pcm[:m]...)
		}
		checkTone(t, fmt.Sprintf("%.0f Hz, 16 kHz G.722 decoded at 8 kHz", freq), out[800:], 8000, freq, 8000/math.Sqrt2, 1)

		enc8, dec16 := newG722EncoderAt(8000), newG722Decoder()
		in = tone(8000, freq, 8000, 8000)
		out = out[:0]
		pcm = make([]int16, 320)
		for i := 0; i+160 <= len(in); i += 160 {
			n, err := enc8.Encode(in[i:i+160], g)
			if err != nil || n != 160 {
				t.Fatalf("encode from 8 kHz: %d bytes, %v", n, err)
			}
			m, _ := dec16.Decode(g[:n], pcm)
			out = append(out, pcm[:m]...)
		}
		checkTone(t, fmt.Sprintf("%.0f Hz, encoded from 8 kHz, decoded at 16 kHz", freq), out[1600:], 16000, freq, 8000/math.Sqrt2, 1)
	}
}
