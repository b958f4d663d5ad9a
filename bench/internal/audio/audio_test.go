// SPDX-License-Identifier: Apache-2.0

package audio

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/relayd/relayd/pkg/transcode"
)

// available skips a codec this build of the test cannot run (Opus without
// cgo and libopus), unless the build was meant to have it (the Makefile
// sets RELAYD_WANT_OPUS in cgo builds).
func available(t *testing.T, p Pair) {
	t.Helper()
	if err := p.Available(); err != nil {
		if errors.Is(err, transcode.ErrCodecUnavailable) && os.Getenv("RELAYD_WANT_OPUS") == "" {
			t.Skipf("%s: %v", p.Name, err)
		}
		t.Fatal(err)
	}
}

func TestLookup(t *testing.T) {
	for _, n := range Names() {
		p, err := Lookup(n)
		if err != nil || p.Name != n {
			t.Errorf("Lookup(%q) = %v, %v", n, p.Name, err)
		}
	}
	if _, err := Lookup("OPUS-PCMU"); err != nil {
		t.Errorf("lookup is case-insensitive: %v", err)
	}
	if _, err := Lookup("amr-pcmu"); !errors.Is(err, ErrUnknownPair) {
		t.Errorf("unknown pair: %v", err)
	}
	if got := Opus.Rtpmap(); got != "opus/48000/2" {
		t.Errorf("Opus rtpmap %q", got)
	}
	if got := G722.Rtpmap(); got != "G722/8000" {
		t.Errorf("G.722 rtpmap %q", got)
	}
}

// check runs a checker over packets from n on and judges them.
func check(t *testing.T, c Codec, payload func(i int) []byte, tone float64) Result {
	t.Helper()
	k, err := NewChecker(c)
	if err != nil {
		t.Fatal(err)
	}
	k.Reset()
	for i := 0; ; i++ {
		if k.Add(payload(i)) {
			return k.Judge(tone)
		}
	}
}

// TestFramesDecodeToTheirTone encodes every pair's rings and decodes them
// back: each carries its tone, not the other party's, also across the
// ring's wrap.
func TestFramesDecodeToTheirTone(t *testing.T) {
	for _, p := range Pairs() {
		t.Run(p.Name, func(t *testing.T) {
			available(t, p)
			for _, c := range []struct {
				codec       Codec
				tone, other float64
			}{{p.Caller, CallerTone, CalleeTone}, {p.Callee, CalleeTone, CallerTone}} {
				f, err := Encode(c.codec, c.tone)
				if err != nil {
					t.Fatal(err)
				}
				if f.Len() != framesKept || f.MaxLen() > MaxFrame || f.MaxLen() == 0 {
					t.Fatalf("%s: %d frames of at most %d bytes", c.codec.Name, f.Len(), f.MaxLen())
				}
				for _, start := range []int{0, framesKept - 3} {
					frame := func(i int) []byte { return f.Frame(uint64(start + i)) }
					if r := check(t, c.codec, frame, c.tone); !r.OK {
						t.Errorf("%s from frame %d: %v, want %.0f Hz", c.codec.Name, start, r, c.tone)
					}
					if r := check(t, c.codec, frame, c.other); r.OK {
						t.Errorf("%s passed as the other party's tone: %v", c.codec.Name, r)
					}
				}
			}
		})
	}
}

// TestCheckerSeesTranscoding puts the caller's frames through relayd's
// transcoder, as a relay would, and through no transcoder at all: only the
// first decodes to the caller's tone as PCMU.
func TestCheckerSeesTranscoding(t *testing.T) {
	for _, p := range Pairs() {
		t.Run(p.Name, func(t *testing.T) {
			available(t, p)
			f, err := Encode(p.Caller, CallerTone)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := transcode.NewTranscoder(transcode.Config{
				In:   transcode.Leg{Format: p.Caller.format(), PT: uint8(p.Caller.PT)},
				Out:  transcode.Leg{Format: p.Callee.format(), PT: uint8(p.Callee.PT)},
				SSRC: 1, Seq: 1, TS: 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			var pkts [][]byte
			for i := range 20 {
				in := make([]byte, 12, 12+MaxFrame)
				in[0], in[1] = 0x80, byte(p.Caller.PT)
				binary.BigEndian.PutUint16(in[2:], uint16(i))
				binary.BigEndian.PutUint32(in[4:], uint32(i)*p.Caller.Step)
				in = append(in, f.Frame(uint64(i))...)
				out, err := tr.Process(in, nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out {
					pkts = append(pkts, append([]byte(nil), o[12:]...))
				}
			}
			if r := check(t, p.Callee, func(i int) []byte { return pkts[10+i] }, CallerTone); !r.OK {
				t.Errorf("transcoded: %v, want %.0f Hz", r, CallerTone)
			}
			if r := check(t, p.Callee, func(i int) []byte { return f.Frame(uint64(i)) }, CallerTone); r.OK {
				t.Errorf("%s passed through untouched and decoded as PCMU passed the check: %v", p.Caller.Name, r)
			}
		})
	}
}
