// SPDX-License-Identifier: Apache-2.0

//go:build cgo && spandsp

package transcode

import (
	"math"
	"slices"
	"testing"

	"github.com/relayd/relayd/pkg/transcode/internal/spandsp"
)

// Cross-checks against spandsp 0.0.6 (Debian libspandsp-dev), run when the
// spandsp build tag is set (the Makefile sets it when pkg-config finds
// spandsp).

// G.711 against spandsp for every input. spandsp's A-law is G.191's; its
// µ-law quantises a negative sample on its two's complement where G.191 (and
// relayd) use the ones' complement, so negative µ-law inputs are checked
// against spandsp's code for the mirrored positive sample.
func TestG711AgainstSpandsp(t *testing.T) {
	for c := range 256 {
		if got, want := UlawDecode(byte(c)), spandsp.UlawDecode(byte(c)); got != want {
			t.Errorf("µ-law decode %#02x = %d, spandsp %d", c, got, want)
		}
		if got, want := AlawDecode(byte(c)), spandsp.AlawDecode(byte(c)); got != want {
			t.Errorf("A-law decode %#02x = %d, spandsp %d", c, got, want)
		}
	}
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		s := int16(x)
		if got, want := AlawEncode(s), spandsp.AlawEncode(s); got != want {
			t.Fatalf("A-law encode %d = %#02x, spandsp %#02x", s, got, want)
		}
		want := spandsp.UlawEncode(s)
		if s < 0 {
			want = spandsp.UlawEncode(^s) & 0x7f
		}
		if got := UlawEncode(s); got != want {
			t.Fatalf("µ-law encode %d = %#02x, G.191 (via spandsp) %#02x", s, got, want)
		}
	}
}

// G.722 through gotranspile/g722 against spandsp's C: the same bytes out of
// the encoder and the same samples out of the decoder, for speech-like
// signals and for random payloads, with the state carried across packets.
func TestG722AgainstSpandsp(t *testing.T) {
	for _, sig := range g722TestSignals() {
		want := spandsp.G722Encode(sig.pcm)
		enc := newG722Encoder()
		var got []byte
		for i := 0; i+320 <= len(sig.pcm); i += 320 {
			out := make([]byte, 160)
			n, err := enc.Encode(sig.pcm[i:i+320], out)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, out[:n]...)
		}
		if !slices.Equal(got, want[:len(got)]) {
			t.Errorf("%s: encoder differs from spandsp", sig.name)
		}
		wantPCM := spandsp.G722Decode(want)
		dec := newG722Decoder()
		var gotPCM []int16
		pcm := make([]int16, 320)
		for i := 0; i+160 <= len(want); i += 160 {
			n, err := dec.Decode(want[i:i+160], pcm)
			if err != nil {
				t.Fatal(err)
			}
			gotPCM = append(gotPCM, pcm[:n]...)
		}
		if !slices.Equal(gotPCM, wantPCM[:len(gotPCM)]) {
			t.Errorf("%s: decoder differs from spandsp", sig.name)
		}
	}
	// Any byte sequence is a G.722 stream: garbage decodes the same too.
	garbage := make([]byte, 8000)
	x := uint32(1)
	for i := range garbage {
		x = x*1664525 + 1013904223
		garbage[i] = byte(x >> 24)
	}
	dec := newG722Decoder()
	got := make([]int16, 2*len(garbage))
	n, _ := dec.Decode(garbage[:960], got)
	if !slices.Equal(got[:n], spandsp.G722Decode(garbage[:960])) {
		t.Error("random payload: decoder differs from spandsp")
	}
}

// The golden hashes g722_test.go checks without spandsp are spandsp's.
func TestG722GoldenIsSpandsp(t *testing.T) {
	for _, sig := range g722TestSignals() {
		enc := spandsp.G722Encode(sig.pcm)
		if h := sha(enc); h != sig.encHash {
			t.Errorf("%s: spandsp encodes to %s, golden %s", sig.name, h, sig.encHash)
		}
		if h := sha(pcmBytes(spandsp.G722Decode(enc))); h != sig.decHash {
			t.Errorf("%s: spandsp decodes to %s, golden %s", sig.name, h, sig.decHash)
		}
	}
}

// The Goertzel detector and spandsp's receiver hear the same digits.
func TestDTMFDetectorAgainstSpandsp(t *testing.T) {
	pcm := dtmfSignal(t, 8000, "159#*0D", 100, 70, 10)
	if got := spandsp.DTMFDigits(pcm); got != "159#*0D" {
		t.Errorf("spandsp heard %q", got)
	}
	if got := detectDigits(t, pcm, 8000); got != "159#*0D" {
		t.Errorf("detector heard %q", got)
	}
}
