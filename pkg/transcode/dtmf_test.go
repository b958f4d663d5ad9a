// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"math"
	"testing"
)

// dtmfSignal is digits as in-band tones at rate: onMs of tone (each tone at
// -volume dBm0), offMs of silence, after 50 ms of silence.
func dtmfSignal(t *testing.T, rate int, digits string, onMs, offMs int, volume uint8) []int16 {
	t.Helper()
	out := make([]int16, rate*50/1000)
	for i := range len(digits) {
		code, ok := EventCode(digits[i])
		if !ok {
			t.Fatalf("not a digit: %q", digits[i])
		}
		on := make([]int16, rate*onMs/1000)
		DTMFTone(on, code, volume, rate, 0)
		out = append(out, on...)
		out = append(out, make([]int16, rate*offMs/1000)...)
	}
	return out
}

// detectDigits feeds pcm in 20 ms packets and returns the digits heard,
// checking that each one starts and ends in turn.
func detectDigits(t *testing.T, pcm []int16, rate int) string {
	t.Helper()
	d, err := NewDTMFDetector(rate)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	active := false
	step := rate / 50
	for i := 0; i < len(pcm); i += step {
		for _, e := range d.Feed(pcm[i:min(i+step, len(pcm))]) {
			if e.Start == active {
				t.Fatalf("event %+v while active=%v", e, active)
			}
			active = e.Start
			if e.Start {
				got = append(got, DigitOf(e.Code))
			}
		}
	}
	return string(got)
}

func TestEventCodec(t *testing.T) {
	e := Event{Code: 11, End: true, Volume: 10, Duration: 800}
	b := make([]byte, 4)
	e.Put(b)
	if b[0] != 11 || b[1] != 0x8a || b[2] != 0x03 || b[3] != 0x20 {
		t.Fatalf("wire form % x", b)
	}
	got, err := ParseEvent(b)
	if err != nil || got != e {
		t.Fatalf("ParseEvent = %+v, %v", got, err)
	}
	if _, err := ParseEvent(b[:3]); err != ErrBadEvent {
		t.Fatalf("short event: %v", err)
	}
	// The R bit is ignored on input and cleared on output.
	b[1] |= 0x40
	if got, _ := ParseEvent(b); got != e {
		t.Fatalf("R bit changed the event: %+v", got)
	}
	for _, c := range "0123456789*#ABCD" {
		code, ok := EventCode(byte(c))
		if !ok || DigitOf(code) != byte(c) {
			t.Errorf("%c: code %d, back %c", c, code, DigitOf(code))
		}
	}
	if _, ok := EventCode('x'); ok {
		t.Error("x is not a digit")
	}
}

// Each generated digit has exactly its two frequencies at the asked level.
func TestDTMFToneFrequencies(t *testing.T) {
	for _, rate := range []int{8000, 16000, 48000} {
		for code := range uint8(16) {
			row, col, _ := dtmfFreqs(code)
			pcm := make([]int16, rate/10)
			if !DTMFTone(pcm, code, 10, rate, 0) {
				t.Fatalf("code %d refused", code)
			}
			peak := dbm0Peak * math.Pow(10, -10.0/20)
			for _, f := range []float64{row, col} {
				if a := 2 * math.Sqrt(Power(pcm, f, rate)); math.Abs(dbOf(a, peak)) > 0.3 {
					t.Errorf("%d Hz, code %d: amplitude %.0f, want %.0f", rate, code, a, peak)
				}
			}
		}
	}
	pcm := make([]int16, 100)
	if DTMFTone(pcm, 16, 10, 8000, 0) || RMS(pcm) != 0 {
		t.Error("flash (16) is not a DTMF tone")
	}
}

func TestDTMFDetector(t *testing.T) {
	for _, rate := range []int{8000, 16000, 48000} {
		pcm := dtmfSignal(t, rate, "0123456789*#ABCD", 70, 60, 10)
		if got := detectDigits(t, pcm, rate); got != "0123456789*#ABCD" {
			t.Errorf("%d Hz: heard %q", rate, got)
		}
	}
	// Through µ-law, quiet (-25 dBm0 per tone).
	pcm := dtmfSignal(t, 8000, "159#", 100, 100, 25)
	for i, s := range pcm {
		pcm[i] = UlawDecode(UlawEncode(s))
	}
	if got := detectDigits(t, pcm, 8000); got != "159#" {
		t.Errorf("µ-law, -25 dBm0: heard %q", got)
	}
}

// What must not be taken for a digit: tones too short, too quiet, too
// twisted, single tones, speech-like sound and noise.
func TestDTMFDetectorRejects(t *testing.T) {
	rate := 8000
	cases := map[string][]int16{
		"20 ms digit":   dtmfSignal(t, rate, "5", 20, 100, 10),
		"-45 dBm0":      dtmfSignal(t, rate, "5", 100, 100, 45),
		"single 770 Hz": tone(rate, 770, rate, 8000),
		"speech-like":   speechLike(4*rate, rate),
		"dial tone 350+440": func() []int16 {
			a, b := tone(rate, 350, rate, 6000), tone(rate, 440, rate, 6000)
			for i := range a {
				a[i] += b[i]
			}
			return a
		}(),
		"twist 12 dB": func() []int16 {
			a, b := tone(rate, 770, rate, 8000), tone(rate, 1336, rate, 2000)
			for i := range a {
				a[i] += b[i]
			}
			return a
		}(),
	}
	noise := make([]int16, rate)
	r := lcg(9)
	for i := range noise {
		noise[i] = int16(int32(r.next()) >> 19)
	}
	cases["noise"] = noise
	for name, pcm := range cases {
		if got := detectDigits(t, pcm, rate); got != "" {
			t.Errorf("%s: heard %q", name, got)
		}
	}
}

func TestDTMFDetectorAllocs(t *testing.T) {
	d, _ := NewDTMFDetector(8000)
	pcm := dtmfSignal(t, 8000, "1", 100, 100, 10)
	if n := testing.AllocsPerRun(50, func() { d.Feed(pcm[:160]) }); n != 0 {
		t.Errorf("Feed allocates %.0f times", n)
	}
}
