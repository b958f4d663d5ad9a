// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"net/netip"
	"time"
)

// Meta is what the session layer knows about a recorded call, for its
// metadata file: the parties, their media and the codecs their SDP listed.
type Meta struct {
	CallID  string    `json:"call-id"`
	Created time.Time `json:"created,omitzero"`
	// Metadata is the free-form "metadata" a SIP proxy sent.
	Metadata string  `json:"metadata,omitempty"`
	Parties  []Party `json:"parties"`
}

// Party is one tag (monologue) of the call.
type Party struct {
	Tag            string   `json:"tag"`
	Label          string   `json:"label,omitempty"`
	Aliases        []string `json:"tag-aliases,omitempty"`
	ViaBranch      string   `json:"via-branch,omitempty"`
	InDialogueWith string   `json:"in-dialogue-with,omitempty"`
	Medias         []Media  `json:"medias"`
}

// Media is one m= line of a party.
type Media struct {
	Index    int     `json:"index"` // 1-based, as query prints it
	Type     string  `json:"type"`
	Protocol string  `json:"protocol"`
	Codecs   []Codec `json:"codecs"`
	// Streams name the addresses under which the party's packets appear
	// in the pcap file.
	Streams []Stream `json:"streams"`
}

// Codec is one payload type the party's SDP listed.
type Codec struct {
	PayloadType int    `json:"payload-type"`
	Name        string `json:"name"` // encoding/clock rate[/channels], e.g. "PCMA/8000"
}

// Stream is one relay socket facing the party: in the pcap file, packets
// from Party to Relay are what the party sent, from Relay to Party what
// the relay sent it.
type Stream struct {
	Relay netip.AddrPort `json:"relay"`
	Party netip.AddrPort `json:"party"`
	RTCP  bool           `json:"rtcp,omitempty"`
}

// metaFile is the metadata file: the call, the recording's times and
// counters, and where its packets are.
type metaFile struct {
	Meta
	PCAP    string    `json:"pcap"`
	Format  string    `json:"recording-format"`
	Started time.Time `json:"started"`
	Stopped time.Time `json:"stopped"`
	Pauses  []Pause   `json:"pauses,omitempty"`
	EndedBy string    `json:"ended-by"`
	RecordingStats
}
