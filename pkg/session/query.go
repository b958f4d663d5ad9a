// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net/netip"
	"time"

	"github.com/relayd/relayd/pkg/webrtc"
)

// CallInfo is the state of one call as query and delete report it.
type CallInfo struct {
	CallID     string
	Created    time.Time
	LastSignal time.Time
	Tags       []TagInfo
	RTP, RTCP  Counters // totals over all streams, received side
	// Recording is the call's recording, nil when none runs.
	Recording *RecordingInfo
}

// TagInfo is one monologue.
type TagInfo struct {
	Tag            string // "" for a party that has not answered yet
	Label          string
	ViaBranch      string
	Aliases        []string
	Created        time.Time
	InDialogueWith string
	Medias         []MediaInfo
}

// MediaInfo is one m= line of a party.
type MediaInfo struct {
	Index    int // 1-based as the reference prints it
	Type     string
	Protocol string
	Flags    []string
	Streams  []StreamInfo
	// Security is the party's SRTP/DTLS/ICE state; nil for plain RTP.
	Security *SecurityInfo
	// Codec is what the party speaks ("PCMU/8000"), "" when unknown;
	// Transcoding what the relay's transcoder does on its side, nil when
	// the media is not transcoded.
	Codec       string
	Transcoding *TranscodeInfo
}

// SecurityInfo is what query shows of a secure party: how it is keyed and
// what its stages refused.
type SecurityInfo struct {
	Keying    string // "DTLS", "SDES" or "" before any
	DTLSRole  string // "active" or "passive" when DTLS
	DTLSState string // "handshaking", "connected", "failed" when DTLS
	Suite     string // the SRTP crypto suite in use, once known
	Counters  webrtc.Snapshot
}

// StreamInfo is one local socket facing the party.
type StreamInfo struct {
	Local              netip.AddrPort // bound address and port
	Advertised         netip.Addr     // address printed in SDP for it
	Endpoint           netip.AddrPort // where relayd sends to the party now
	AdvertisedEndpoint netip.AddrPort // what the party's SDP said
	RTCP               bool
	Flags              []string
	LastPacket         time.Time
	LastKernelPacket   time.Time // zero when the kernel forwarded nothing
	LastUserPacket     time.Time // zero when unknown or all went through the kernel
	KernelPackets      uint64    // the part of In.Packets the kernel forwarded
	In, Out            Counters  // received from / sent to the party
	SSRCs              []SSRCInfo
	// Reports are the party's RTCP receiver reports on what it receives,
	// with their MOS (see media.ReportStats).
	Reports []ReportInfo
	// CryptoSuite is the SRTP suite on this socket's side, "" when plain.
	CryptoSuite string
}

// ReportInfo is what a party reported about one source it receives.
type ReportInfo struct {
	SSRC                        uint32
	FractionLost                float64
	JitterMs, RTTLegMs          float64
	At                          time.Time
	MOS, MOSAvg, MOSMin, MOSMax float64
	Samples                     uint64
}

// Counters are packet counters of one direction.
type Counters struct {
	Packets, Bytes, Errors uint64
}

// SSRCInfo is the RTP quality of one source as seen by a stream.
type SSRCInfo struct {
	SSRC                  uint32
	Packets               uint64
	Lost                  int64
	Duplicates, Reordered uint64
	JitterMs              float64
	// MOS is the relay's own estimate from the loss and jitter it measured.
	MOS float64
}

// MOS is the call's quality score: the average of what the parties
// reported over RTCP, else of the relay's own estimates for what it
// received; false when there is neither.
func (ci *CallInfo) MOS() (float64, bool) {
	var sum float64
	var n int
	for _, t := range ci.Tags {
		for _, md := range t.Medias {
			for _, st := range md.Streams {
				for _, r := range st.Reports {
					if r.Samples > 0 {
						sum += r.MOSAvg
						n++
					}
				}
			}
		}
	}
	if n > 0 {
		return sum / float64(n), true
	}
	for _, t := range ci.Tags {
		for _, md := range t.Medias {
			for _, st := range md.Streams {
				for _, q := range st.SSRCs {
					if q.Packets > 0 {
						sum += q.MOS
						n++
					}
				}
			}
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// Query reports the call; fromTag/toTag, when given, must name parties of it.
func (m *Manager) Query(callID, fromTag, toTag string) (*CallInfo, error) {
	c := m.lookup(callID)
	if c == nil {
		return nil, ErrUnknownCall
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return nil, ErrUnknownCall
	}
	if (fromTag != "" && c.monologue(fromTag) == nil) || (toTag != "" && c.monologue(toTag) == nil) {
		return nil, ErrDialogue
	}
	return c.info(), nil
}

func (c *Call) info() *CallInfo {
	ci := &CallInfo{CallID: c.id, Created: c.created, LastSignal: c.lastSignal, Recording: c.recordingInfo()}
	for _, ml := range c.monos {
		ti := TagInfo{Tag: ml.tag, Label: ml.label, ViaBranch: ml.viaBranch, Aliases: ml.aliases, Created: ml.created}
		if ml.peer != nil {
			ti.InDialogueWith = ml.peer.tag
		}
		for _, md := range ml.medias {
			mi := MediaInfo{Index: md.index + 1, Type: md.typ, Protocol: md.proto}
			if md.sdpRTP.IsValid() {
				mi.Flags = append(mi.Flags, "initialized")
			}
			if receiving(md.direction) {
				mi.Flags = append(mi.Flags, "recv")
			}
			if md.direction != "recvonly" && md.direction != "inactive" {
				mi.Flags = append(mi.Flags, "send")
			}
			if md.advertisedMux {
				mi.Flags = append(mi.Flags, "rtcp-mux")
			}
			if md.ice || md.advertisedICE {
				mi.Flags = append(mi.Flags, "ICE")
			}
			mi.Security = md.securityInfo()
			mi.Codec, mi.Transcoding = md.codecOf(), md.transcodeInfo()
			if mi.Transcoding != nil {
				mi.Flags = append(mi.Flags, "transcoding")
			}
			if sec := mi.Security; sec != nil {
				switch sec.Keying {
				case "DTLS":
					mi.Flags = append(mi.Flags, "DTLS-SRTP")
				case "SDES":
					mi.Flags = append(mi.Flags, "SDES")
				}
			}
			if md.cur != nil {
				for _, st := range md.cur.streams {
					si := st.info(md)
					if mi.Security != nil {
						si.CryptoSuite = mi.Security.Suite
					}
					mi.Streams = append(mi.Streams, si)
					tot := &ci.RTP
					if si.RTCP {
						tot = &ci.RTCP
					}
					tot.Packets += si.In.Packets
					tot.Bytes += si.In.Bytes
					tot.Errors += si.In.Errors
				}
			}
			ti.Medias = append(ti.Medias, mi)
		}
		ci.Tags = append(ci.Tags, ti)
	}
	return ci
}

// DeleteRequest names what to delete: the whole call, or with tags a party.
type DeleteRequest struct {
	CallID    string
	FromTag   string
	ToTag     string
	ViaBranch string
	Options   Options
}

// Delete ends the call (after delete-delay) and returns its final state; a
// branch named by via-branch is removed alone while other branches remain.
func (m *Manager) Delete(r DeleteRequest) (*CallInfo, error) {
	c := m.lookup(r.CallID)
	if c == nil {
		return nil, ErrUnknownCall
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return nil, ErrUnknownCall
	}
	if (r.FromTag != "" && c.monologue(r.FromTag) == nil) || (r.ToTag != "" && c.monologue(r.ToTag) == nil) {
		c.mu.Unlock()
		return nil, ErrDialogue
	}
	c.takeOver(bySignal)
	if r.Options.Flags.DiscardRecording {
		c.discardRecording = true // the recording ends with the call
	}
	var info *CallInfo
	if !r.Options.Flags.Fast {
		info = c.info()
	}
	if r.FromTag != "" && r.ViaBranch != "" && c.deleteBranch(r.FromTag, r.ViaBranch) {
		c.mu.Unlock()
		m.changed(c.id)
		return info, nil
	}
	delay := m.limits().DeleteDelay
	if r.Options.DeleteDelay != nil && *r.Options.DeleteDelay >= 0 {
		delay = time.Duration(*r.Options.DeleteDelay) * time.Second
	}
	if delay > 0 {
		c.deleteAt = m.now().Add(delay)
		c.mu.Unlock()
		m.schedule(c, c.deleteAt)
		m.changed(c.id)
		return info, nil
	}
	c.mu.Unlock()
	c.end(endDeleted)
	return info, nil
}

// deleteBranch drops the peer of fromTag's offer on branch when fromTag has
// other branches left; it reports whether it did.
func (c *Call) deleteBranch(fromTag, branch string) bool {
	ml := c.monologue(fromTag)
	peer := ml.branches[branch]
	if peer == nil || len(ml.branches) < 2 {
		return false
	}
	delete(ml.branches, branch)
	for _, md := range peer.medias {
		md.sec.close()
		for _, ps := range md.sets {
			c.releaseSet(ps)
		}
		md.sets, md.cur = nil, nil
	}
	c.monos = removeMonologue(c.monos, peer)
	for tag, m := range c.tags {
		if m == peer {
			delete(c.tags, tag)
		}
	}
	if ml.peer == peer {
		ml.peer = nil
		for _, other := range ml.branches {
			ml.peer = other
			break
		}
	}
	return true
}

func removeMonologue(list []*monologue, ml *monologue) []*monologue {
	out := list[:0]
	for _, x := range list {
		if x != ml {
			out = append(out, x)
		}
	}
	return out
}
