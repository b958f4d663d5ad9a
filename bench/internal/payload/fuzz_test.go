// SPDX-License-Identifier: Apache-2.0

package payload

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary datagrams, as a relay or a stray sender could
// deliver them, to the decoder: it must never panic, and whatever it accepts
// must re-encode to the same header bytes.
func FuzzDecode(f *testing.F) {
	good := make([]byte, 172)
	Fill(good)
	Encode(good, Header{PT: 8, SSRC: 0x11223344, SamplesPerPacket: 160}, Fields{Run: 1, Slot: 2, Gen: 3, Seq: 4, SentNs: 5})
	f.Add(good, uint32(1))
	f.Add(good[:44], uint32(1))
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, run uint32) {
		got, err := Decode(b, run)
		if err != nil {
			return
		}
		again := make([]byte, RTPHeaderLen+BenchLen)
		Encode(again, Header{PT: b[1], SSRC: uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11]),
			SamplesPerPacket: 0}, got)
		// The RTP timestamp is the sender's business; compare the rest.
		// The marker bit is not the bench's either.
		if again[0] != b[0] || again[1] != b[1]&0x7f || !bytes.Equal(again[2:4], b[2:4]) ||
			!bytes.Equal(again[8:RTPHeaderLen+BenchLen], b[8:RTPHeaderLen+BenchLen]) {
			t.Errorf("accepted %x, re-encoded %x", b[:RTPHeaderLen+BenchLen], again)
		}
	})
}
