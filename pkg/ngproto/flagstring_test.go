// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"encoding/json"
	"testing"
)

// The production route's flag strings become the dictionaries Kamailio 5.6 was
// captured sending (reference notes §1.7), minus the keys Kamailio adds itself.
func TestFlagString(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"replace-origin replace-session-connection ICE=remove RTP/AVP direction=external direction=internal trust-address symmetric rtcp-mux-demux SDES-off",
			`{"ICE":"remove","SDES":["off"],"direction":["external","internal"],"flags":["trust-address","symmetric"],"replace":["origin","session-connection"],"rtcp-mux":["demux"],"transport-protocol":"RTP/AVP"}`},
		{"ICE=force DTLS=passive SDES-off UDP/TLS/RTP/SAVPF rtcp-mux-offer codec-strip-PCMU codec-transcode-G722 codec-mask-opus label=caller record-call=yes",
			`{"DTLS":"passive","ICE":"force","SDES":["off"],"codec":{"mask":["opus"],"strip":["PCMU"],"transcode":["G722"]},"label":"caller","record-call":"yes","rtcp-mux":["offer"],"transport-protocol":"UDP/TLS/RTP/SAVPF"}`},
		{"RTP SRTP AVPF TOS=184 delete-delay=0 internal external received-from=2001:db8::1",
			`{"TOS":184,"delete delay":0,"direction":["internal","external"],"received-from":["IP6","2001:db8::1"],"transport-protocol":"RTP/SAVPF"}`},
		{"", `{}`},
	}
	for i, tc := range tests {
		got, _ := json.Marshal(FlagString(tc.in))
		if string(got) != tc.want {
			t.Errorf("case %d %q:\n got  %s\n want %s", i, tc.in, got, tc.want)
		}
	}
}
