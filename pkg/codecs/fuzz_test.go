// SPDX-License-Identifier: Apache-2.0

package codecs

import (
	"strings"
	"testing"
)

// Codec options come from the proxy's flags: any string must parse or fail
// cleanly, and whatever parses must negotiate and answer without panicking.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"PCMU", "opus/48000/2/32000", "iLBC/8000/1///mode=30", "8", "all", "full", "//", "opus/a"} {
		f.Add(s, "strip")
	}
	f.Fuzz(func(t *testing.T, s, verb string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		_ = sp.String()
		opt := Options{}
		switch strings.ToLower(verb) {
		case "strip":
			opt.Strip = []Spec{sp}
		case "mask":
			opt.Mask = []Spec{sp}
		case "offer":
			opt.Offer = []Spec{sp}
		case "consume":
			opt.Consume = []Spec{sp}
		default:
			opt.Transcode = []Spec{sp}
		}
		o := Negotiate(chrome, opt, true, canAll)
		if len(o.To) == 0 && !o.Reject {
			t.Fatalf("offer left empty for %q", s)
		}
		if _, err := o.Answer(o.To, 20, 20, opt); err != nil && !strings.Contains(err.Error(), "no codec") {
			t.Fatalf("answer: %v", err)
		}
	})
}
