// SPDX-License-Identifier: Apache-2.0

package codecs

import (
	"errors"
	"fmt"
	"slices"
)

// Leg is one side of a transcoded stream: the codec it speaks, with its
// telephone-event and comfort noise when it has them.
type Leg struct {
	Audio Format
	DTMF  *Format
	CN    *Format
	// PTime is the packet time this side asked for (its a=ptime, or the
	// proxy's ptime option), 0 for the default.
	PTime int
}

// Transcoding says what each side of a transcoded stream speaks: packets
// from the offerer are decoded from Offerer.Audio and encoded to
// Answerer.Audio, and the other way round.
type Transcoding struct {
	Offerer, Answerer Leg
	// Set tunes the encoders (bit rate) per codec.
	Set []Spec
}

// Answer is the outcome of an answer.
type Answer struct {
	// ToOfferer are the formats of the answer sent to the offerer.
	ToOfferer []Format
	// Transcoding is nil when media passes as it is.
	Transcoding *Transcoding
	Warnings    []string
}

// ErrNoCommonCodec means the answerer picked a codec the offerer cannot be
// given and the relay cannot transcode to one it can.
var ErrNoCommonCodec = errors.New("no codec both sides can use")

// Answer maps the answerer's formats back to the offerer. offererPTime and
// answererPTime are the two SDPs' a=ptime values; opt are the answer's
// options (single-codec).
func (o *Offer) Answer(answered []Format, offererPTime, answererPTime int, opt Options) (Answer, error) {
	var a Answer
	// The answerer's formats, each found in the offer (an answerer may
	// renumber a codec: its own payload type is what it receives and, in
	// practice, sends), and whether only the transcoder had offered it.
	var got []Format
	var isAdded []bool
	for _, f := range answered {
		i := slices.IndexFunc(o.To, func(t Format) bool { return t.PT == f.PT && t.Same(f) })
		if i < 0 {
			i = slices.IndexFunc(o.To, f.Same)
		}
		got = append(got, f)
		isAdded = append(isAdded, i >= 0 && slices.Contains(o.Added, o.To[i]))
	}
	added := func(f Format) bool {
		i := slices.Index(got, f)
		return i >= 0 && isAdded[i]
	}
	var main *Format
	for i := range got {
		if !got[i].Supplementary() {
			main = &got[i]
			break
		}
	}
	if main == nil {
		// Nothing but telephone-event or CN (or nothing): nothing to transcode.
		a.ToOfferer = passThrough(got, added)
		return a, nil
	}
	offerer, transcode, err := o.offererCodec(*main, added(*main))
	if err != nil {
		return a, err
	}
	if !transcode {
		a.ToOfferer = passThrough(got, added)
		if opt.SingleCodec {
			a.ToOfferer = single(a.ToOfferer)
		}
		return a, nil
	}
	tc := &Transcoding{Set: o.Set,
		Offerer:  Leg{Audio: offerer, PTime: offererPTime},
		Answerer: Leg{Audio: *main, PTime: answererPTime}}
	if o.PTime > 0 {
		tc.Answerer.PTime = o.PTime
	}
	tc.Offerer.DTMF = pickSupp(o.From, Format.IsDTMF, offerer.Rate)
	tc.Answerer.DTMF = pickSupp(got, Format.IsDTMF, main.Rate)
	if cn := pickSupp(got, Format.IsCN, 0); cn != nil {
		tc.Answerer.CN = cn
		tc.Offerer.CN = pickSupp(o.From, Format.IsCN, 0)
	}
	a.Transcoding = tc
	a.ToOfferer = []Format{offerer}
	if tc.Offerer.DTMF != nil {
		a.ToOfferer = append(a.ToOfferer, *tc.Offerer.DTMF)
	}
	if tc.Offerer.CN != nil {
		a.ToOfferer = append(a.ToOfferer, *tc.Offerer.CN)
	}
	return a, nil
}

// offererCodec picks what the offerer is answered with for the answerer's
// codec main, and whether that needs the transcoder.
func (o *Offer) offererCodec(main Format, mainAdded bool) (Format, bool, error) {
	if !mainAdded {
		// The offerer listed it: passed through unless the proxy wants
		// the offerer held to another codec (or another ptime).
		if !o.Forced {
			return main, false, nil
		}
		pick, ok := o.preferred(main)
		if !ok || pick.Same(main) && o.PTime == 0 {
			return main, false, nil
		}
		return pick, true, nil
	}
	pick, ok := o.preferred(main)
	if !ok {
		return Format{}, false, fmt.Errorf("%w: the answerer chose %s, which only the transcoder offered, and none of the offerer's codecs can be transcoded",
			ErrNoCommonCodec, main)
	}
	return pick, true, nil
}

// preferred is the offerer's codec to speak when transcoding towards main:
// a consumed or accepted one first, then the offerer's own order.
func (o *Offer) preferred(main Format) (Format, bool) {
	for _, sp := range o.Prefer {
		if sp.Matches(main) {
			// The answerer took the accepted codec: no reason to transcode.
			return main, true
		}
	}
	for _, sp := range o.Prefer {
		for _, f := range o.Accepted {
			if sp.Matches(f) {
				return f, true
			}
		}
	}
	if len(o.Accepted) == 0 {
		return Format{}, false
	}
	return o.Accepted[0], true
}

// passThrough is the answer to the offerer without transcoding: what the
// answerer took, less what only the transcoder had offered.
func passThrough(got []Format, added func(Format) bool) []Format {
	out := make([]Format, 0, len(got))
	for _, f := range got {
		if !added(f) {
			out = append(out, f)
		}
	}
	return out
}

// single keeps the first codec and the supplementary formats at its rate.
func single(fs []Format) []Format {
	var out []Format
	var rate int
	for _, f := range fs {
		if !f.Supplementary() {
			if rate != 0 {
				continue
			}
			rate = f.Rate
		}
		out = append(out, f)
	}
	return slices.DeleteFunc(out, func(f Format) bool { return f.IsDTMF() && f.Rate != rate })
}

// pickSupp finds a supplementary format of fs: at rate when there is one
// (rate 0: any), else the first.
func pickSupp(fs []Format, is func(Format) bool, rate int) *Format {
	var first *Format
	for i := range fs {
		if !is(fs[i]) {
			continue
		}
		if rate == 0 || fs[i].Rate == rate {
			f := fs[i]
			return &f
		}
		if first == nil {
			f := fs[i]
			first = &f
		}
	}
	// One at another clock still carries the digits: the transcoder
	// rescales its durations.
	return first
}
