// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/relayd/relayd/pkg/codecs"
)

// Options are the per-request choices a SIP proxy makes for one offer, answer or
// delete. The ng decoder fills them from the wire dictionary; the session layer
// interprets them. Zero values mean "not given" so that defaults stay in one place
// (the session manager), not in the decoder.
type Options struct {
	// Direction names the logical interfaces facing [sender of this message,
	// receiver of it]; only the initial offer's value is remembered.
	Direction []string
	// ReceivedFrom is the source address of the SIP message (used with
	// SIP-source-address instead of the SDP address).
	ReceivedFrom netip.Addr
	// MediaAddress overrides both the SDP address and ReceivedFrom.
	MediaAddress netip.Addr
	// AddressFamily is "IP4", "IP6" or "" (follow the SDP).
	AddressFamily string
	// ICE is "remove", "force", "default", "force-relay", "optional" or "".
	ICE string
	// ICETrickle is set by "trickle" in the ICE list, or the trickle-ICE or
	// WebRTC flags: the party trickles candidates. The relay, ICE-lite with
	// every candidate known at once, says a=ice-options:trickle and
	// a=end-of-candidates to it.
	ICETrickle bool
	// DTLS is "off", "passive", "active" or "".
	DTLS string
	// SDES holds the SDES options ("off", "no-SUITE", "only-SUITE", ...).
	SDES []string
	// RTCPMux holds "offer", "require", "demux", "accept", "reject".
	RTCPMux []string
	// TransportProtocol is the outgoing media profile ("RTP/AVP", ...) or "accept".
	TransportProtocol string
	// Replace holds canonical replace values: "origin", "origin-full",
	// "session-connection", "SDP-version", "force-increment-sdp-ver",
	// "zero-address", "username", "session-name".
	Replace []string
	// Label tags the sender's monologue (label / from-label).
	Label string
	// ToLabel names the receiving monologue by label.
	ToLabel string
	// TOS is the DSCP/TOS byte for this call's media; nil when not given.
	// Per the reference: < 0 keeps the current value, >= 256 reverts to the default.
	TOS *int
	// DeleteDelay overrides the configured delete-delay (seconds); nil when not given.
	DeleteDelay *int
	// Codec holds the codec options (the ng "codec" dictionary, its flag
	// spellings, ptime, always-transcode, single-codec).
	Codec codecs.Options
	// EndpointLearning is "off", "immediate", "delayed", "heuristic" or "".
	EndpointLearning string
	// Supports lists optional reply features the client understands ("load limit").
	Supports []string
	// RecordCall is the record-call key ("yes", "no", "on", "off") when given.
	RecordCall string
	// Metadata is free-form text for a recording's metadata file.
	Metadata string
	// Flags are the boolean flags of the "flags" list.
	Flags Flags
}

// Flags are the boolean entries of the ng "flags" list that relayd acts on.
// Unknown flags are logged and ignored by the decoder.
type Flags struct {
	TrustAddress      bool
	SIPSourceAddress  bool
	Asymmetric        bool
	Symmetric         bool
	StrictSource      bool
	MediaHandover     bool
	PortLatching      bool
	NoPortLatching    bool
	NoRTCPAttribute   bool
	FullRTCPAttribute bool
	OriginalSendrecv  bool
	LoopProtect       bool
	RecordCall        bool
	GenerateMid       bool
	// DetectDTMF turns in-band digits into telephone-events on transcoded
	// media (the incumbent's "detect DTMF").
	DetectDTMF bool
	Reset      bool
	// Delete-only flags.
	Fatal            bool
	Fast             bool
	ToTag            bool
	DiscardRecording bool
	// Answer-side / misc.
	Unidirectional bool
	Directional    bool
	All            bool
}

// unhonoured lists what an offer or answer asked for that the relay accepts
// but does not do (yet), for the reply's warning: a proxy must never believe
// a flag took effect when it did not. recording tells whether recording is
// configured.
func (o *Options) unhonoured(recording bool) []string {
	var w []string
	switch o.ICE {
	case "force-relay", "optional":
		w = append(w, "ICE="+o.ICE+" (treated as default)")
	}
	if !recording && recordCall(o) > 0 {
		w = append(w, "record-call (recording-dir is not set)")
	}
	if o.Flags.OriginalSendrecv {
		w = append(w, "original-sendrecv")
	}
	if o.Flags.Reset {
		w = append(w, "reset")
	}
	if o.ToLabel != "" {
		w = append(w, "to-label")
	}
	slices.Sort(w)
	if len(w) == 0 {
		return nil
	}
	return []string{"not acted on: " + strings.Join(w, ", ")}
}
