// SPDX-License-Identifier: Apache-2.0

package sdp

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParseRewrite parses an offer and rewrites it with the plan the
// session layer would make, as every offer and answer does once (twice with
// the SDP-version rules). The cases are golden cases: a SIP trunk, a browser
// offer with its ICE replaced or removed, and IPv6 audio and video.
func BenchmarkParseRewrite(b *testing.B) {
	for _, name := range []string{"sip-trunk-offer-relay", "browser-ice-plan", "browser-remove-ice", "ipv6-audio-video"} {
		base := filepath.Join("testdata", "golden", name)
		in, err := os.ReadFile(base + ".in.sdp")
		if err != nil {
			b.Fatal(err)
		}
		p := readPlan(b, base+".plan.json")
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				d, err := Parse(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Rewrite(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
