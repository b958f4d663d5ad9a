// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// SDPSummary is the part of a session description the harness checks: who
// the relay told each party to send media to.
type SDPSummary struct {
	// OriginVersion is the o= line's session version, as written.
	OriginVersion string
	// OriginAddress is the o= line's unicast address.
	OriginAddress string
	// Connection is the session-level c= address ("" when absent).
	Connection string
	Media      []SDPMedia
}

// SDPMedia is one m= section.
type SDPMedia struct {
	Type    string
	Port    int
	Proto   string
	Formats []string
	// Connection is the media-level c= address, or the session-level one
	// when the section has none.
	Connection string
}

// Audio returns the first audio section.
func (s SDPSummary) Audio() (SDPMedia, bool) {
	for _, m := range s.Media {
		if m.Type == "audio" {
			return m, true
		}
	}
	return SDPMedia{}, false
}

// ParseSDP summarises a session description. It is deliberately strict about
// the lines it reads (v=, o=, c=, m=) and ignores all others.
func ParseSDP(body string) (SDPSummary, error) {
	var s SDPSummary
	sawVersion := false
	for i, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return s, fmt.Errorf("line %d %q is not <type>=<value>: %w", i+1, line, ErrMalformedSDP)
		}
		value := line[2:]
		switch line[0] {
		case 'v':
			if value != "0" {
				return s, fmt.Errorf("version %q: %w", value, ErrMalformedSDP)
			}
			sawVersion = true
		case 'o':
			f := strings.Fields(value)
			if len(f) != 6 {
				return s, fmt.Errorf("o= line %q: %w", value, ErrMalformedSDP)
			}
			s.OriginVersion, s.OriginAddress = f[2], f[5]
		case 'c':
			addr, err := parseConnection(value)
			if err != nil {
				return s, err
			}
			if len(s.Media) == 0 {
				s.Connection = addr
			} else {
				s.Media[len(s.Media)-1].Connection = addr
			}
		case 'm':
			f := strings.Fields(value)
			if len(f) < 3 {
				return s, fmt.Errorf("m= line %q: %w", value, ErrMalformedSDP)
			}
			portText, _, _ := strings.Cut(f[1], "/") // port/count
			port, err := strconv.Atoi(portText)
			if err != nil || port < 0 || port > 65535 {
				return s, fmt.Errorf("m= port %q: %w", f[1], ErrMalformedSDP)
			}
			s.Media = append(s.Media, SDPMedia{Type: f[0], Port: port, Proto: f[2], Formats: f[3:]})
		}
	}
	if !sawVersion {
		return s, fmt.Errorf("no v= line: %w", ErrMalformedSDP)
	}
	for i := range s.Media {
		if s.Media[i].Connection == "" {
			s.Media[i].Connection = s.Connection
		}
	}
	return s, nil
}

func parseConnection(value string) (string, error) {
	f := strings.Fields(value)
	if len(f) != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return "", fmt.Errorf("c= line %q: %w", value, ErrMalformedSDP)
	}
	host, _, _ := strings.Cut(f[2], "/") // multicast TTL/count
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("c= address %q: %w", f[2], ErrMalformedSDP)
	}
	if addr.Is4() != (f[1] == "IP4") {
		return "", fmt.Errorf("c= address %q does not match %s: %w", f[2], f[1], ErrMalformedSDP)
	}
	return addr.String(), nil
}
