// SPDX-License-Identifier: Apache-2.0

package payload

import (
	"encoding/binary"
	"fmt"
)

// Layout of a bench packet (big-endian, offsets from the UDP payload):
//
//	 0  RTP header: 0x80, PT, sequence (16), timestamp (32), SSRC (32)
//	12  magic "RBNC"
//	16  run id
//	20  slot (the stream's index in its generator worker)
//	24  generation (bumped every time a slot is reused by a new call)
//	28  sequence (64 bits: the RTP one wraps every 22 minutes at 50/s)
//	36  send time, Unix nanoseconds (CLOCK_REALTIME, as SO_TIMESTAMPNS)
//	44  filler up to the payload size
const (
	RTPHeaderLen = 12
	BenchLen     = 32
	// MinPayload is the smallest RTP payload that carries the bench header.
	MinPayload = BenchLen
	// SentOffset is where the send time sits, for stamping just before
	// the send.
	SentOffset = RTPHeaderLen + 24
	magic      = 0x52424e43 // "RBNC"
	// Silence is G.711 A-law silence, the payload's filler.
	Silence = 0xd5
)

// Fields are what a bench packet carries besides its RTP header.
type Fields struct {
	Run    uint32
	Slot   uint32
	Gen    uint32
	Seq    uint64
	SentNs int64
}

// Header is the RTP header of a stream.
type Header struct {
	PT   uint8
	SSRC uint32
	// SamplesPerPacket advances the RTP timestamp (160 for 20 ms at 8 kHz).
	SamplesPerPacket uint32
}

// Size returns the datagram size for an RTP payload of payloadLen bytes,
// or an error when the bench header does not fit.
func Size(payloadLen int) (int, error) {
	if payloadLen < MinPayload || payloadLen > 1400 {
		return 0, fmt.Errorf("%w: %d bytes (want %d..1400)", ErrPayloadSize, payloadLen, MinPayload)
	}
	return RTPHeaderLen + payloadLen, nil
}

// Fill writes the filler once into a buffer that will carry packets of
// size bytes (from Size); Encode leaves it alone afterwards.
func Fill(buf []byte) {
	for i := RTPHeaderLen + BenchLen; i < len(buf); i++ {
		buf[i] = Silence
	}
}

// FillerIntact reports whether a decoded packet's filler is the silence
// Fill wrote: what the bench checks of a payload that went through SRTP,
// where a wrong key stream garbles it without touching the header.
func FillerIntact(b []byte) bool {
	for _, c := range b[min(len(b), RTPHeaderLen+BenchLen):] {
		if c != Silence {
			return false
		}
	}
	return true
}

// Encode writes the RTP header and the bench header into buf, which must
// hold at least RTPHeaderLen+BenchLen bytes. It does not allocate.
func Encode(buf []byte, h Header, f Fields) {
	_ = buf[RTPHeaderLen+BenchLen-1]
	buf[0] = 0x80
	buf[1] = h.PT & 0x7f
	binary.BigEndian.PutUint16(buf[2:], uint16(f.Seq))
	binary.BigEndian.PutUint32(buf[4:], uint32(f.Seq)*h.SamplesPerPacket)
	binary.BigEndian.PutUint32(buf[8:], h.SSRC)
	binary.BigEndian.PutUint32(buf[12:], magic)
	binary.BigEndian.PutUint32(buf[16:], f.Run)
	binary.BigEndian.PutUint32(buf[20:], f.Slot)
	binary.BigEndian.PutUint32(buf[24:], f.Gen)
	binary.BigEndian.PutUint64(buf[28:], f.Seq)
	binary.BigEndian.PutUint64(buf[SentOffset:], uint64(f.SentNs))
}

// StampSent overwrites the send time of an encoded packet.
func StampSent(buf []byte, ns int64) {
	binary.BigEndian.PutUint64(buf[SentOffset:SentOffset+8], uint64(ns))
}

// Decode reads a received datagram. run is this run's id: packets of other
// runs are reported with ErrOtherRun. It does not allocate, also on error.
func Decode(b []byte, run uint32) (Fields, error) {
	if len(b) < RTPHeaderLen+BenchLen {
		return Fields{}, ErrShort
	}
	// Version 2, no padding, no extension, no CSRCs: the relays pass the
	// header through, so anything else is not ours.
	if b[0] != 0x80 {
		return Fields{}, ErrNotRTP
	}
	if binary.BigEndian.Uint32(b[12:]) != magic {
		return Fields{}, ErrMagic
	}
	f := Fields{
		Run:    binary.BigEndian.Uint32(b[16:]),
		Slot:   binary.BigEndian.Uint32(b[20:]),
		Gen:    binary.BigEndian.Uint32(b[24:]),
		Seq:    binary.BigEndian.Uint64(b[28:]),
		SentNs: int64(binary.BigEndian.Uint64(b[SentOffset:])),
	}
	if f.Run != run {
		return f, ErrOtherRun
	}
	// The RTP sequence is the low 16 bits of the bench's: a relay that
	// rewrote it would be changing media it must pass through.
	if uint16(f.Seq) != binary.BigEndian.Uint16(b[2:]) {
		return f, ErrNotRTP
	}
	return f, nil
}
