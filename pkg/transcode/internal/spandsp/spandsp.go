// SPDX-License-Identifier: Apache-2.0

//go:build cgo && spandsp

// Package spandsp wraps the few spandsp (Debian libspandsp-dev, LGPL-2.1)
// functions the transcode tests cross-check against: G.711, G.722 and the
// DTMF receiver. Test-only: it is built with the spandsp tag, which the
// Makefile sets when pkg-config finds spandsp, and never linked into relayd.
package spandsp

/*
#cgo pkg-config: spandsp
#include <stdint.h>
#include <stdlib.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>
#include <spandsp/logging.h>
#include <spandsp/super_tone_rx.h>
#include <spandsp/dtmf.h>

static uint8_t lin2ulaw(int x) { return linear_to_ulaw(x); }
static int16_t ulaw2lin(uint8_t c) { return ulaw_to_linear(c); }
static uint8_t lin2alaw(int x) { return linear_to_alaw(x); }
static int16_t alaw2lin(uint8_t c) { return alaw_to_linear(c); }
*/
import "C"

import "unsafe"

// UlawEncode is spandsp's linear_to_ulaw.
func UlawEncode(x int16) byte { return byte(C.lin2ulaw(C.int(x))) }

// UlawDecode is spandsp's ulaw_to_linear.
func UlawDecode(c byte) int16 { return int16(C.ulaw2lin(C.uint8_t(c))) }

// AlawEncode is spandsp's linear_to_alaw.
func AlawEncode(x int16) byte { return byte(C.lin2alaw(C.int(x))) }

// AlawDecode is spandsp's alaw_to_linear.
func AlawDecode(c byte) int16 { return int16(C.alaw2lin(C.uint8_t(c))) }

// G722Encode encodes 16 kHz PCM at 64 kbit/s with a fresh encoder.
func G722Encode(pcm []int16) []byte {
	s := C.g722_encode_init(nil, 64000, 0)
	defer C.g722_encode_free(s)
	out := make([]byte, len(pcm)/2+1)
	if len(pcm) == 0 {
		return nil
	}
	n := C.g722_encode(s, (*C.uint8_t)(unsafe.Pointer(&out[0])), (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)))
	return out[:n]
}

// G722Decode decodes 64 kbit/s G.722 to 16 kHz PCM with a fresh decoder.
func G722Decode(data []byte) []int16 {
	s := C.g722_decode_init(nil, 64000, 0)
	defer C.g722_decode_free(s)
	if len(data) == 0 {
		return nil
	}
	out := make([]int16, 2*len(data))
	n := C.g722_decode(s, (*C.int16_t)(unsafe.Pointer(&out[0])), (*C.uint8_t)(unsafe.Pointer(&data[0])), C.int(len(data)))
	return out[:n]
}

// DTMFDigits runs spandsp's DTMF receiver over 8 kHz PCM and returns the
// digits it heard.
func DTMFDigits(pcm []int16) string {
	s := C.dtmf_rx_init(nil, nil, nil)
	defer C.dtmf_rx_free(s)
	if len(pcm) > 0 {
		C.dtmf_rx(s, (*C.int16_t)(unsafe.Pointer(&pcm[0])), C.int(len(pcm)))
	}
	buf := make([]byte, 128)
	n := C.dtmf_rx_get(s, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)-1))
	return string(buf[:n])
}
