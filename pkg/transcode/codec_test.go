// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"errors"
	"strings"
	"testing"
)

func TestRegistryLookup(t *testing.T) {
	r := NewRegistry()
	for _, tc := range []struct {
		f    Format
		name string
		rate int
	}{
		{Format{Name: "PCMU", ClockRate: 8000}, "PCMU", 8000},
		{Format{Name: "pcma", ClockRate: 8000, Channels: 1}, "PCMA", 8000},
		{Format{Name: "G722", ClockRate: 8000}, "G722", 16000},
		{Format{Name: "opus", ClockRate: 48000, Channels: 2}, "opus", 48000},
		{Format{Name: "OPUS", ClockRate: 48000}, "opus", 48000},
	} {
		c, err := r.Lookup(tc.f)
		if err != nil {
			t.Errorf("%v: %v", tc.f, err)
			continue
		}
		if c.Name != tc.name || c.NativeRate() != tc.rate {
			t.Errorf("%v: %s at %d Hz", tc.f, c.Name, c.NativeRate())
		}
	}
	for _, f := range []Format{
		{Name: "PCMU", ClockRate: 16000},
		{Name: "G722", ClockRate: 16000}, // RFC 3551: G722 is /8000
		{Name: "G729", ClockRate: 8000},
		{Name: "opus", ClockRate: 48000, Channels: 3},
		{Name: "telephone-event", ClockRate: 8000},
	} {
		if _, err := r.Lookup(f); !errors.Is(err, ErrUnknownCodec) {
			t.Errorf("%v: %v, want ErrUnknownCodec", f, err)
		}
		if err := r.Check(f); !errors.Is(err, ErrUnknownCodec) || !strings.Contains(err.Error(), f.Name) {
			t.Errorf("Check(%v) = %v: want ErrUnknownCodec naming it", f, err)
		}
	}
	if len(r.Codecs()) != 4 {
		t.Errorf("%d codecs", len(r.Codecs()))
	}
}

// Opus is known whatever the build; without libopus it answers
// ErrCodecUnavailable, naming the codec and the cause, everywhere it is
// asked for.
func TestOpusAvailability(t *testing.T) {
	r := NewRegistry()
	opus := Format{Name: "opus", ClockRate: 48000, Channels: 2}
	c, err := r.Lookup(opus)
	if err != nil {
		t.Fatal(err)
	}
	err = r.Check(opus)
	if opusBuilt {
		if err != nil || c.Available() != nil {
			t.Fatalf("built with libopus, yet %v", err)
		}
		return
	}
	if !errors.Is(err, ErrCodecUnavailable) || !strings.Contains(err.Error(), "opus") || !strings.Contains(err.Error(), "cgo") {
		t.Fatalf("Check = %v, want ErrCodecUnavailable naming opus and cgo", err)
	}
	if _, err := c.NewDecoder(Params{}, 8000); !errors.Is(err, ErrCodecUnavailable) {
		t.Errorf("NewDecoder: %v", err)
	}
	if _, err := c.NewEncoder(Params{}, 8000, EncoderOptions{}); !errors.Is(err, ErrCodecUnavailable) {
		t.Errorf("NewEncoder: %v", err)
	}
	_, err = NewTranscoder(Config{
		In:  Leg{Format: Format{Name: "PCMU", ClockRate: 8000}, PT: 0},
		Out: Leg{Format: opus, PT: 111},
	})
	if !errors.Is(err, ErrCodecUnavailable) || !strings.Contains(err.Error(), "opus") {
		t.Errorf("NewTranscoder PCMU→opus: %v", err)
	}
}

func TestCodecRates(t *testing.T) {
	r := NewRegistry()
	c, _ := r.Lookup(Format{Name: "PCMU", ClockRate: 8000})
	if _, err := c.NewDecoder(Params{}, 16000); !errors.Is(err, ErrBadParams) {
		t.Errorf("PCMU at 16 kHz: %v", err)
	}
	if _, err := c.NewEncoder(Params{}, 0, EncoderOptions{}); err != nil {
		t.Errorf("PCMU at its native rate: %v", err)
	}
}

func TestParseFmtp(t *testing.T) {
	p, err := ParseFmtp("opus", "minptime=10; useinbandfec=1;usedtx=1;maxaveragebitrate=20000;stereo=0;sprop-stereo=0;maxplaybackrate=16000;cbr=1")
	if err != nil {
		t.Fatal(err)
	}
	want := Params{UseInbandFEC: true, UseDTX: true, MaxAverageBitrate: 20000, MaxPlaybackRate: 16000, CBR: true}
	if p != want {
		t.Errorf("opus fmtp: %+v", p)
	}
	// RFC 7587: out-of-range values are clamped, not refused.
	if p, _ := ParseFmtp("opus", "maxaveragebitrate=1000000"); p.MaxAverageBitrate != 510000 {
		t.Errorf("maxaveragebitrate clamped to %d", p.MaxAverageBitrate)
	}
	for _, bad := range []string{"useinbandfec=yes", "maxaveragebitrate=fast", "usedtx="} {
		if _, err := ParseFmtp("opus", bad); !errors.Is(err, ErrBadParams) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	p, err = ParseFmtp("telephone-event", "0-15,16, 32-33")
	if err != nil {
		t.Fatal(err)
	}
	for e, want := range map[uint8]bool{0: true, 11: true, 15: true, 16: true, 17: false, 32: true, 33: true, 34: false, 255: false} {
		if p.Events.Has(e) != want {
			t.Errorf("event %d: %v", e, !want)
		}
	}
	p, _ = ParseFmtp("telephone-event", "")
	if !p.Events.Has(15) || p.Events.Has(16) {
		t.Error("an empty event list means 0-15")
	}
	for _, bad := range []string{"0-x", "15-0", "300", "a"} {
		if _, err := ParseFmtp("telephone-event", bad); !errors.Is(err, ErrBadParams) {
			t.Errorf("events %q: %v", bad, err)
		}
	}
}
