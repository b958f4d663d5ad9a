// SPDX-License-Identifier: Apache-2.0

package session

import (
	"fmt"
	"strconv"

	"github.com/relayd/relayd/pkg/codecs"
	"github.com/relayd/relayd/pkg/sdp"
)

// codecOut is what codec negotiation decided for one media of one signal:
// the formats the receiver's SDP lists, and the negotiation state to keep
// once the signal commits.
type codecOut struct {
	offer  *codecs.Offer  // an offer's negotiation, kept on the offerer's media
	answer *codecs.Answer // an answer's outcome
	// The receiver's m= formats, nil to keep the SDP's; lines for the
	// formats it lacks (all of them when own is set).
	formats []string
	attrs   []string
	own     bool
	ptime   int
	reject  bool
}

// negotiateCodecs applies the codec options to media i of desc, which
// party fm sends towards tm. An offer is negotiated afresh; an answer is
// mapped back through the negotiation of tm's offer.
func (c *Call) negotiateCodecs(fm, tm *media, dm *sdp.Media, opts *Options, isOffer bool) (codecOut, []string, error) {
	var out codecOut
	audio := dm.Type == "audio"
	if isOffer {
		if !audio && opts.Codec.Empty() {
			return out, nil, nil
		}
		o := codecs.Negotiate(codecs.FromMedia(dm), opts.Codec, audio, c.m.cfg.Codecs)
		out.offer = &o
		out.reject = o.Reject
		out.ptime = o.PTime
		if o.Changed() {
			out.formats = formatList(o.To)
			for _, f := range o.Added {
				out.attrs = append(out.attrs, f.Lines()...)
			}
		}
		return out, o.Warnings, nil
	}
	off := tm.codecOffer
	if off == nil {
		return out, nil, nil
	}
	a, err := off.Answer(codecs.FromMedia(dm), tm.ptime, dm.PTime, opts.Codec)
	if err != nil {
		return out, nil, fmt.Errorf("media %d: %w", dm.Port, err)
	}
	out.answer = &a
	if a.Transcoding != nil {
		// The offerer gets its own codecs back, in its own payload types:
		// none of the answerer's lines apply.
		out.formats, out.own = formatList(a.ToOfferer), true
		for _, f := range a.ToOfferer {
			out.attrs = append(out.attrs, f.Lines()...)
		}
		out.ptime = a.Transcoding.Offerer.PTime
		return out, a.Warnings, nil
	}
	answered := codecs.FromMedia(dm)
	if len(a.ToOfferer) != len(answered) {
		out.formats = formatList(a.ToOfferer)
	}
	return out, a.Warnings, nil
}

// commitCodecs keeps what negotiation decided once the signal is applied.
func commitCodecs(fm, tm *media, out codecOut) {
	if out.offer != nil {
		fm.codecOffer = out.offer
	}
	if a := out.answer; a != nil {
		// fm answered tm's offer.
		fm.transcoding, tm.transcoding = a.Transcoding, a.Transcoding
		fm.transcodeOfferer, tm.transcodeOfferer = false, true
	}
}

func formatList(fs []codecs.Format) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = strconv.Itoa(int(f.PT))
	}
	return out
}
