// SPDX-License-Identifier: Apache-2.0

// Package codecs negotiates the codecs of one media stream between the two
// parties of a call, as the proxy's codec options (the ng "codec"
// dictionary and its flag spellings) ask: which codecs the answerer is
// offered, which the offerer is answered, and — when the two share no codec,
// or the proxy forces it — which codec each side of the transcoder speaks.
// It sees SDP as lists of formats and knows nothing of packets; which codecs
// the relay can transcode is asked of a Capability.
package codecs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/relayd/relayd/pkg/sdp"
)

// Format is one payload type of a media as its SDP describes it.
type Format struct {
	PT       uint8
	Name     string // encoding name as written ("opus", "PCMU", "telephone-event")
	Rate     int    // RTP clock rate
	Channels int    // 1 unless the rtpmap says otherwise
	Fmtp     string // a=fmtp parameters, "" for none
}

func (f Format) String() string {
	s := strconv.Itoa(int(f.PT)) + " " + f.Name + "/" + strconv.Itoa(f.Rate)
	if f.Channels > 1 {
		s += "/" + strconv.Itoa(f.Channels)
	}
	return s
}

// Same tells whether f and g are the same codec whatever their payload
// types: name (case-insensitive), clock rate and channels.
func (f Format) Same(g Format) bool {
	return strings.EqualFold(f.Name, g.Name) && f.Rate == g.Rate && f.Channels == g.Channels
}

// IsDTMF tells whether f is RFC 4733 telephone-event.
func (f Format) IsDTMF() bool { return strings.EqualFold(f.Name, "telephone-event") }

// IsCN tells whether f is RFC 3389 comfort noise.
func (f Format) IsCN() bool { return strings.EqualFold(f.Name, "CN") }

// Supplementary tells whether f rides along a codec rather than being one
// (telephone-event, comfort noise).
func (f Format) Supplementary() bool { return f.IsDTMF() || f.IsCN() }

// Lines are f's a=rtpmap and a=fmtp values.
func (f Format) Lines() []string {
	rm := "rtpmap:" + strconv.Itoa(int(f.PT)) + " " + f.Name + "/" + strconv.Itoa(f.Rate)
	if f.Channels > 1 {
		rm += "/" + strconv.Itoa(f.Channels)
	}
	if f.Fmtp == "" {
		return []string{rm}
	}
	return []string{rm, "fmtp:" + strconv.Itoa(int(f.PT)) + " " + f.Fmtp}
}

// static are the RFC 3551 payload types an SDP may use without an rtpmap.
var static = map[uint8]Format{
	0: {PT: 0, Name: "PCMU", Rate: 8000, Channels: 1}, 3: {PT: 3, Name: "GSM", Rate: 8000, Channels: 1},
	4: {PT: 4, Name: "G723", Rate: 8000, Channels: 1}, 8: {PT: 8, Name: "PCMA", Rate: 8000, Channels: 1},
	9: {PT: 9, Name: "G722", Rate: 8000, Channels: 1}, 13: {PT: 13, Name: "CN", Rate: 8000, Channels: 1},
	18: {PT: 18, Name: "G729", Rate: 8000, Channels: 1},
}

// FromMedia lists m's formats in m= order. A payload type without an
// rtpmap gets its RFC 3551 meaning; a non-numeric format (not RTP) or an
// unknown dynamic one without an rtpmap is left out.
func FromMedia(m *sdp.Media) []Format {
	out := make([]Format, 0, len(m.Formats))
	for _, s := range m.Formats {
		pt, err := strconv.Atoi(s)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		f, ok := static[uint8(pt)]
		if rm, has := m.RTPMaps[uint8(pt)]; has {
			f, ok = Format{PT: uint8(pt), Name: rm.Encoding, Rate: rm.ClockRate, Channels: max(rm.Channels, 1)}, true
		}
		if !ok {
			continue
		}
		f.Fmtp = m.Fmtp[uint8(pt)]
		out = append(out, f)
	}
	return out
}

// Spec is a codec as the proxy names it in a codec option: a name or a
// payload type number, optionally with clock rate, channels, bit rate,
// ptime and fmtp ("opus/48000/2/32000//useinbandfec=1"), or one of the
// keywords all and full.
type Spec struct {
	Name     string // "" for a payload type or a keyword
	PT       int    // -1 unless the spec is a number
	All      bool   // "all" or "full"
	Full     bool   // "full": like all, but a later transcode of a stripped codec restores it
	Rate     int
	Channels int
	Bitrate  int
	PTime    int
	Fmtp     string
}

// ErrSpec means a codec option could not be read.
var ErrSpec = errors.New("invalid codec")

// ParseSpec reads one codec option value.
func ParseSpec(s string) (Spec, error) {
	s = strings.TrimSpace(s)
	sp := Spec{PT: -1}
	if s == "" {
		return sp, fmt.Errorf("%w: empty", ErrSpec)
	}
	switch strings.ToLower(s) {
	case "all":
		sp.All = true
		return sp, nil
	case "full":
		sp.All, sp.Full = true, true
		return sp, nil
	}
	parts := strings.SplitN(s, "/", 7)
	if pt, err := strconv.Atoi(parts[0]); err == nil {
		if pt < 0 || pt > 127 || len(parts) > 1 {
			return sp, fmt.Errorf("%w: %q", ErrSpec, s)
		}
		sp.PT = pt
		return sp, nil
	}
	sp.Name = parts[0]
	for i, p := range parts[1:] {
		if i == 4 { // the fmtp
			sp.Fmtp = p
			continue
		}
		if i == 5 { // codec-specific options: taken as given, nothing here reads them
			continue
		}
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return sp, fmt.Errorf("%w: %q: %q is not a number", ErrSpec, s, p)
		}
		switch i {
		case 0:
			sp.Rate = n
		case 1:
			sp.Channels = n
		case 2:
			sp.Bitrate = n
		case 3:
			sp.PTime = n
		}
	}
	return sp, nil
}

func (sp Spec) String() string {
	switch {
	case sp.Full:
		return "full"
	case sp.All:
		return "all"
	case sp.PT >= 0:
		return strconv.Itoa(sp.PT)
	}
	s := sp.Name
	if sp.Rate > 0 {
		s += "/" + strconv.Itoa(sp.Rate)
		if sp.Channels > 0 {
			s += "/" + strconv.Itoa(sp.Channels)
		}
	}
	return s
}

// Matches tells whether f is a codec sp names: every keyword matches,
// a number matches that payload type, a name matches case-insensitively
// with whatever rate, channels and fmtp the spec gives.
func (sp Spec) Matches(f Format) bool {
	switch {
	case sp.All:
		return true
	case sp.PT >= 0:
		return int(f.PT) == sp.PT
	}
	if !strings.EqualFold(sp.Name, f.Name) {
		return false
	}
	if sp.Rate > 0 && sp.Rate != f.Rate {
		return false
	}
	if sp.Channels > 0 && sp.Channels != f.Channels {
		return false
	}
	return sp.Fmtp == "" || sp.Fmtp == f.Fmtp
}

// Options are the proxy's codec choices for one offer (or answer).
type Options struct {
	// Strip leaves codecs out of the outgoing offer; they are not used
	// towards the offerer either.
	Strip []Spec
	// Mask leaves codecs out of the outgoing offer but keeps accepting them
	// from the offerer, for transcoding.
	Mask []Spec
	// Consume is Mask that also engages the transcoder.
	Consume []Spec
	// Accept keeps codecs in the outgoing offer and, when the answerer
	// picks another, keeps them towards the offerer, transcoding.
	Accept []Spec
	// Ignore treats codecs as never offered by the offerer.
	Ignore []Spec
	// Except keeps only (or restores after strip/mask all) the codecs it
	// names; Offer does the same in its own order.
	Except, Offer []Spec
	// Transcode adds codecs the offerer did not list, engaging the
	// transcoder when the answerer picks one.
	Transcode []Spec
	// Set tunes the encoder of codecs transcoded to (bit rate).
	Set []Spec
	// AlwaysTranscode transcodes whenever the two sides' preferred codecs
	// differ, even when they share another.
	AlwaysTranscode bool
	// PTime is the packet time asked for towards the recipient of this SDP
	// (its a=ptime); the transcoder repacketises when it differs.
	PTime int
	// SingleCodec answers with the first codec only.
	SingleCodec bool
	// AllowNoCodec rejects a media left without codecs instead of keeping
	// its original list.
	AllowNoCodec bool
}

// Empty tells whether o asks nothing of the codecs.
func (o *Options) Empty() bool {
	return len(o.Strip)+len(o.Mask)+len(o.Consume)+len(o.Accept)+len(o.Ignore)+len(o.Except)+
		len(o.Offer)+len(o.Transcode)+len(o.Set) == 0 && !o.AlwaysTranscode && o.PTime == 0 && !o.SingleCodec
}

// Capability tells whether the relay can both decode and encode a codec;
// the error says why not (a build without libopus, a codec never
// implemented).
type Capability func(f Format) error

func matchAny(specs []Spec, f Format) bool {
	for _, sp := range specs {
		if sp.Matches(f) {
			return true
		}
	}
	return false
}

// named reports whether a spec names f explicitly (not by keyword).
func named(specs []Spec, f Format) bool {
	for _, sp := range specs {
		if !sp.All && sp.Matches(f) {
			return true
		}
	}
	return false
}
