// SPDX-License-Identifier: Apache-2.0

package payload

import (
	"errors"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		f    Fields
	}{
		{"first packet", Header{PT: 8, SSRC: 0x01020304, SamplesPerPacket: 160}, Fields{Run: 7, Slot: 0, Gen: 1, Seq: 0, SentNs: 1}},
		{"wrapping sequence", Header{PT: 0, SSRC: 0xffffffff, SamplesPerPacket: 80}, Fields{Run: 0xdeadbeef, Slot: 123456, Gen: 9, Seq: 70000, SentNs: 1_795_000_000_123_456_789}},
		{"pt high bit dropped", Header{PT: 0xff, SSRC: 1, SamplesPerPacket: 160}, Fields{Run: 1, Seq: 1 << 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Size(160)
			if err != nil {
				t.Fatalf("Size(160): %v", err)
			}
			buf := make([]byte, n)
			Fill(buf)
			Encode(buf, tc.h, tc.f)
			got, err := Decode(buf, tc.f.Run)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tc.f {
				t.Errorf("Decode = %+v, want %+v", got, tc.f)
			}
			if buf[1] != tc.h.PT&0x7f {
				t.Errorf("PT byte = %#x, want %#x", buf[1], tc.h.PT&0x7f)
			}
			if buf[len(buf)-1] != Silence {
				t.Errorf("last payload byte = %#x, want silence %#x", buf[len(buf)-1], Silence)
			}
			StampSent(buf, 42)
			if got, _ := Decode(buf, tc.f.Run); got.SentNs != 42 {
				t.Errorf("after StampSent(42): SentNs = %d", got.SentNs)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := make([]byte, RTPHeaderLen+BenchLen)
	Encode(good, Header{PT: 8, SSRC: 5, SamplesPerPacket: 160}, Fields{Run: 3, Seq: 5})
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		run  uint32
		want error
	}{
		{"empty", nil, 3, ErrShort},
		{"one short", good[:len(good)-1], 3, ErrShort},
		{"rtp v1", mutate(func(b []byte) { b[0] = 0x40 }), 3, ErrNotRTP},
		{"csrc count", mutate(func(b []byte) { b[0] = 0x81 }), 3, ErrNotRTP},
		{"bad magic", mutate(func(b []byte) { b[12] = 'X' }), 3, ErrMagic},
		{"other run", good, 4, ErrOtherRun},
		{"rewritten rtp sequence", mutate(func(b []byte) { b[3]++ }), 3, ErrNotRTP},
		{"stun", append([]byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 40)...), 3, ErrNotRTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in, tc.run)
			if !errors.Is(err, tc.want) {
				t.Errorf("Decode error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		payload int
		want    int
		wantErr bool
	}{
		{160, 172, false},
		{MinPayload, RTPHeaderLen + MinPayload, false},
		{MinPayload - 1, 0, true},
		{1401, 0, true},
	}
	for _, tc := range tests {
		got, err := Size(tc.payload)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Size(%d) = %d, %v; want %d, error %v", tc.payload, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestNoAllocs(t *testing.T) {
	buf := make([]byte, 172)
	h := Header{PT: 8, SSRC: 1, SamplesPerPacket: 160}
	allocs := testing.AllocsPerRun(100, func() {
		Encode(buf, h, Fields{Run: 1, Seq: 2})
		_, _ = Decode(buf, 1)
		_, _ = Decode(buf[:3], 1)
	})
	if allocs != 0 {
		t.Errorf("Encode+Decode allocate %.1f times per packet, want 0", allocs)
	}
}

func TestFillerIntact(t *testing.T) {
	b := make([]byte, RTPHeaderLen+160)
	Fill(b)
	Encode(b, Header{PT: 8}, Fields{Run: 1, Seq: 2})
	if !FillerIntact(b) || !FillerIntact(b[:20]) {
		t.Errorf("a filled packet's filler is not intact")
	}
	b[len(b)-1] ^= 1
	if FillerIntact(b) {
		t.Errorf("a changed filler byte went unnoticed")
	}
}
