// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"errors"
	"slices"
	"testing"
)

func TestParseSDP(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		version   string
		origin    string
		audioAddr string
		audioPort int
		formats   []string
		media     int
	}{
		{
			name:      "session connection",
			body:      "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 8 101\r\na=rtcp:30001\r\n",
			version:   "2",
			origin:    "192.0.2.1",
			audioAddr: "192.0.2.1",
			audioPort: 30000,
			formats:   []string{"8", "101"},
			media:     1,
		},
		{
			name:      "media connection wins, video first",
			body:      "v=0\no=- 1 1 IN IP4 198.51.100.1\ns=-\nc=IN IP4 198.51.100.1\nt=0 0\nm=video 0 RTP/AVP 96\nm=audio 31000/2 RTP/AVP 0\nc=IN IP4 198.51.100.9\n",
			version:   "1",
			origin:    "198.51.100.1",
			audioAddr: "198.51.100.9",
			audioPort: 31000,
			formats:   []string{"0"},
			media:     2,
		},
		{
			name:      "IPv6",
			body:      "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n",
			version:   "1",
			origin:    "2001:db8::1",
			audioAddr: "2001:db8::1",
			audioPort: 4000,
			formats:   []string{"0"},
			media:     1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSDP(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			a, ok := s.Audio()
			if !ok {
				t.Fatal("no audio")
			}
			if s.OriginVersion != tt.version || s.OriginAddress != tt.origin {
				t.Errorf("o= version %q address %q, want %q %q", s.OriginVersion, s.OriginAddress, tt.version, tt.origin)
			}
			if a.Connection != tt.audioAddr || a.Port != tt.audioPort || !slices.Equal(a.Formats, tt.formats) {
				t.Errorf("audio = %s:%d %v, want %s:%d %v", a.Connection, a.Port, a.Formats, tt.audioAddr, tt.audioPort, tt.formats)
			}
			if len(s.Media) != tt.media {
				t.Errorf("%d media sections, want %d", len(s.Media), tt.media)
			}
		})
	}
}

func TestParseSDPNoAudio(t *testing.T) {
	s, err := ParseSDP("v=0\r\nm=video 1 RTP/AVP 96\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Audio(); ok {
		t.Error("Audio() found a section in a video-only SDP")
	}
}

func TestParseSDPErrors(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", ""},
		{"no version", "o=- 1 1 IN IP4 192.0.2.1\r\n"},
		{"bad version", "v=1\r\n"},
		{"not type=value", "v=0\r\nhello\r\n"},
		{"short o=", "v=0\r\no=- 1 1 IN IP4\r\n"},
		{"bad c= net type", "v=0\r\nc=XX IP4 192.0.2.1\r\n"},
		{"bad c= address", "v=0\r\nc=IN IP4 example.com\r\n"},
		{"c= family mismatch", "v=0\r\nc=IN IP4 2001:db8::1\r\n"},
		{"short m=", "v=0\r\nm=audio 1\r\n"},
		{"bad m= port", "v=0\r\nm=audio x RTP/AVP 0\r\n"},
		{"m= port too big", "v=0\r\nm=audio 70000 RTP/AVP 0\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSDP(tt.body); !errors.Is(err, ErrMalformedSDP) {
				t.Errorf("ParseSDP(%q) error = %v, want ErrMalformedSDP", tt.body, err)
			}
		})
	}
}

// FuzzParseSDP's seeds are in testdata/fuzz/FuzzParseSDP.
func FuzzParseSDP(f *testing.F) {
	f.Fuzz(func(t *testing.T, body string) {
		s, err := ParseSDP(body)
		if err != nil {
			return
		}
		for _, m := range s.Media {
			if m.Port < 0 || m.Port > 65535 {
				t.Fatalf("port %d out of range from %q", m.Port, body)
			}
		}
	})
}
