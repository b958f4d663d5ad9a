// SPDX-License-Identifier: Apache-2.0

package codecs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Offer is the outcome of an offer: what the answerer is offered, and what
// the relay remembers to map the answer back.
type Offer struct {
	// From is what the offerer listed (less what Ignore took away).
	From []Format
	// To is what the answerer is offered, in order.
	To []Format
	// Added are the formats of To the offerer did not list: they reach the
	// answerer only through the transcoder.
	Added []Format
	// Accepted are the offerer's codecs the relay would transcode from and
	// to, in the offerer's order of preference (masked ones included,
	// stripped ones not).
	Accepted []Format
	// Prefer are the offerer's codecs to speak towards it when transcoding
	// (Consume, or Accept when the answerer picks another codec).
	Prefer []Spec
	// Forced is set when transcoding was asked for even where the two sides
	// could share a codec (always-transcode, consume, accept, ptime).
	Forced bool
	// Reject is set when stripping left no codec and AllowNoCodec asked for
	// the media to be rejected rather than offered unchanged.
	Reject bool
	// Set tunes the encoders (bit rate) of codecs transcoded to.
	Set []Spec
	// PTime is the ptime asked for towards the answerer (0: theirs).
	PTime int
	// Warnings say what was asked for and not done.
	Warnings []string
}

// Changed tells whether To differs from what the offerer listed.
func (o *Offer) Changed() bool {
	if len(o.To) != len(o.From) {
		return true
	}
	for i := range o.To {
		if o.To[i] != o.From[i] {
			return true
		}
	}
	return false
}

// Negotiate computes the offer towards the answerer from the offerer's
// formats and the proxy's options. audio says whether the media is audio:
// the transcoder only handles audio, so the transcoding options are
// ignored (with a warning) for other media. can may be nil when nothing
// can be transcoded.
func Negotiate(offered []Format, opt Options, audio bool, can Capability) Offer {
	o := Offer{Set: opt.Set, PTime: opt.PTime}
	for _, f := range offered {
		if !matchAny(opt.Ignore, f) {
			o.From = append(o.From, f)
		}
	}
	if can == nil {
		can = func(f Format) error { return errors.New("transcoding is not available") }
	}
	if !audio && (len(opt.Transcode)+len(opt.Consume)+len(opt.Accept) > 0 || opt.AlwaysTranscode) {
		o.Warnings = append(o.Warnings, "codec transcoding applies to audio media only")
		opt.Transcode, opt.Consume, opt.Accept, opt.AlwaysTranscode = nil, nil, nil, false
	}

	strippedByName := func(f Format) bool { return named(opt.Strip, f) || named(opt.Mask, f) || named(opt.Consume, f) }
	removed := func(f Format) bool {
		return matchAny(opt.Strip, f) || matchAny(opt.Mask, f) || matchAny(opt.Consume, f)
	}
	// The offerer's codecs as they go on: stripped, masked and consumed
	// ones out, a whitelist (except, offer) keeping what it names.
	var keep []Format
	whitelist := append(slices.Clone(opt.Offer), opt.Except...)
	switch {
	case len(opt.Offer) > 0:
		// In the offer list's order, then what except adds in the original's.
		for _, sp := range opt.Offer {
			for _, f := range o.From {
				if sp.Matches(f) && !strippedByName(f) && !slices.Contains(keep, f) {
					keep = append(keep, f)
				}
			}
		}
		for _, f := range o.From {
			if matchAny(opt.Except, f) && !strippedByName(f) && !slices.Contains(keep, f) {
				keep = append(keep, f)
			}
		}
	case len(opt.Except) > 0:
		for _, f := range o.From {
			if matchAny(opt.Except, f) && !strippedByName(f) {
				keep = append(keep, f)
			}
		}
	default:
		for _, f := range o.From {
			if !removed(f) {
				keep = append(keep, f)
			}
		}
	}
	if len(whitelist) > 0 {
		// A whitelist names codecs; their telephone-event and comfort
		// noise go with them unless stripped by name.
		for _, f := range o.From {
			if f.Supplementary() && !slices.Contains(keep, f) && !strippedByName(f) &&
				slices.ContainsFunc(keep, func(k Format) bool { return !k.Supplementary() && k.Rate == f.Rate }) {
				keep = append(keep, f)
			}
		}
	}

	// What the offerer's side of the transcoder may speak.
	var cannot error
	for _, f := range o.From {
		if f.Supplementary() || named(opt.Strip, f) {
			continue
		}
		if err := can(f); err != nil {
			if cannot == nil {
				cannot = err
			}
			continue
		}
		o.Accepted = append(o.Accepted, f)
	}

	// Codecs to transcode to: one the offerer listed stays (restored if a
	// keyword stripped it); any other is added — if there is anything of
	// the offerer's to transcode from.
	used := map[uint8]bool{}
	for _, f := range o.From {
		used[f.PT] = true
	}
	var added []Format
	for _, sp := range opt.Transcode {
		if sp.All || sp.PT >= 0 {
			o.Warnings = append(o.Warnings, fmt.Sprintf("codec transcode %s: name a codec", sp))
			continue
		}
		present := false
		for _, f := range o.From {
			if sp.Matches(f) && !strippedByName(f) {
				present = true
				if !slices.Contains(keep, f) {
					keep = append(keep, f)
				}
			}
		}
		if present {
			continue
		}
		f, err := formatOf(sp)
		if err == nil {
			err = can(f)
		}
		if err == nil && len(o.Accepted) == 0 {
			err = fmt.Errorf("none of the offerer's codecs can be transcoded from (%v)", cannot)
			if cannot == nil {
				err = errors.New("the offerer lists no codec to transcode from")
			}
		}
		if err != nil {
			o.Warnings = append(o.Warnings, fmt.Sprintf("codec transcode %s: %v", sp, err))
			continue
		}
		if slices.ContainsFunc(added, f.Same) {
			continue
		}
		f.PT = pickPT(f, used)
		used[f.PT] = true
		added = append(added, f)
	}
	if len(added) > 0 {
		// The relay must be able to receive and send every codec it
		// offers: what it cannot transcode goes (comfort noise and
		// telephone-event are handled by the transcoder itself).
		keep = slices.DeleteFunc(keep, func(f Format) bool { return !f.Supplementary() && can(f) != nil })
		// Telephone-event at each new clock rate, if the offerer has it.
		if slices.ContainsFunc(o.From, Format.IsDTMF) {
			var dtmf []Format
			for _, a := range added {
				if slices.ContainsFunc(keep, func(k Format) bool { return k.IsDTMF() && k.Rate == a.Rate }) ||
					slices.ContainsFunc(dtmf, func(k Format) bool { return k.Rate == a.Rate }) {
					continue
				}
				te := Format{Name: "telephone-event", Rate: a.Rate, Channels: 1, Fmtp: "0-15"}
				te.PT = pickPT(te, used)
				used[te.PT] = true
				dtmf = append(dtmf, te)
			}
			added = append(added, dtmf...)
		}
	}
	o.Added = added

	// Main codecs first — the offerer's, then the added ones — then the
	// added telephone-events, then the offerer's supplementary formats.
	var to []Format
	for _, f := range keep {
		if !f.Supplementary() {
			to = append(to, f)
		}
	}
	for _, f := range added {
		if !f.Supplementary() {
			to = append(to, f)
		}
	}
	for _, f := range added {
		if f.Supplementary() {
			to = append(to, f)
		}
	}
	for _, f := range keep {
		if f.Supplementary() {
			to = append(to, f)
		}
	}
	if len(to) != len(o.From) || len(added) > 0 {
		// A telephone-event whose codec left goes with it.
		to = slices.DeleteFunc(to, func(f Format) bool {
			return f.IsDTMF() && !slices.ContainsFunc(to, func(m Format) bool { return !m.Supplementary() && m.Rate == f.Rate })
		})
	}
	if !slices.ContainsFunc(to, func(f Format) bool { return !f.Supplementary() }) {
		if opt.AllowNoCodec {
			o.Reject = true
		} else if len(o.From) > 0 {
			o.Warnings = append(o.Warnings, "codec options left no codec: the offer keeps its own")
			to, o.Added = slices.Clone(o.From), nil
		}
	}
	o.To = to

	o.Prefer = append(slices.Clone(opt.Consume), opt.Accept...)
	o.Forced = opt.AlwaysTranscode || len(opt.Consume) > 0 || len(opt.Accept) > 0 || opt.PTime > 0
	return o
}

// defaults are the codecs a transcode option may add, as the relay offers
// them when the option names only the codec.
var defaults = map[string]Format{
	"pcmu": {PT: 0, Name: "PCMU", Rate: 8000, Channels: 1},
	"pcma": {PT: 8, Name: "PCMA", Rate: 8000, Channels: 1},
	"g722": {PT: 9, Name: "G722", Rate: 8000, Channels: 1},
	"opus": {PT: 96, Name: "opus", Rate: 48000, Channels: 2, Fmtp: "useinbandfec=1"},
}

// formatOf is the format a transcode spec adds.
func formatOf(sp Spec) (Format, error) {
	f, ok := defaults[strings.ToLower(sp.Name)]
	if !ok {
		// The capability decides whether the relay has this codec.
		f = Format{PT: 96, Name: sp.Name, Rate: 8000, Channels: 1}
	}
	if sp.Rate > 0 {
		f.Rate = sp.Rate
	}
	if sp.Channels > 0 {
		f.Channels = sp.Channels
	}
	if sp.Fmtp != "" {
		f.Fmtp = sp.Fmtp
	}
	return f, nil
}

// pickPT keeps a static payload type when it is free, else takes the
// lowest free dynamic one.
func pickPT(f Format, used map[uint8]bool) uint8 {
	if s, ok := static[f.PT]; ok && f.PT < 96 && s.Same(f) && !used[f.PT] {
		return f.PT
	}
	for pt := uint8(96); pt <= 127; pt++ {
		if !used[pt] {
			return pt
		}
	}
	// Every dynamic type taken: the unassigned range of RFC 3551.
	for pt := uint8(35); pt < 72; pt++ {
		if !used[pt] {
			return pt
		}
	}
	return f.PT
}
