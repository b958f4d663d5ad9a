// SPDX-License-Identifier: Apache-2.0

package inetsum

import (
	"math/rand/v2"
	"testing"
)

// naive is RFC 1071's sum word by word, folded and complemented.
func naive(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestAgainstRFC1071(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 20, 28, 171, 172, 1500, 65535} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if got, want := Checksum(Add(b, 0)), naive(b); got != want {
			t.Errorf("%d bytes: %#04x, want %#04x", n, got, want)
		}
		// In pieces at even offsets, as headers and payload are added.
		if n >= 20 {
			if got, want := Checksum(Add(b[12:], Add(b[:12], 0))), naive(b); got != want {
				t.Errorf("%d bytes in two pieces: %#04x, want %#04x", n, got, want)
			}
		}
	}
	// RFC 1071 §3's example: 0001 f203 f4f5 f6f7 sums to ddf2.
	if got := Checksum(Add([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0)); got != ^uint16(0xddf2) {
		t.Errorf("RFC 1071 example: %#04x, want %#04x", got, ^uint16(0xddf2))
	}
	if UDP(0xffff) != 0xffff { // a sum that checksums to 0
		t.Errorf("UDP checksum 0 not sent as 0xffff")
	}
}
