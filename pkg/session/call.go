// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/ports"
	"github.com/relayd/relayd/pkg/recording"
)

type endReason int

const (
	endDeleted endReason = iota
	endTimeout
	endSilentTimeout
	endOfferTimeout
	endFinalTimeout
	endForced
	endRejected
	// endDropped: a foreign call removed because its owner ended it (or
	// this relay stopped); it is neither counted nor reported here.
	endDropped
)

func (r endReason) String() string {
	return [...]string{"deleted", "timeout", "silent-timeout", "offer-timeout", "final-timeout", "forced", "rejected", "dropped"}[r]
}

// Call is one call-id: its monologues (one per tag) and their media.
type Call struct {
	m       *Manager
	id      string
	created time.Time

	mu         sync.Mutex
	lastSignal time.Time
	monos      []*monologue
	tags       map[string]*monologue
	deleteAt   time.Time // zero: not scheduled
	answered   bool
	tos        int
	learning   learningFlags
	detectDTMF bool // in-band digits become telephone-events on transcoded media
	ended      bool
	// due is when expiry looks at the call next, dueIdx its place in the
	// manager's heap (-1: not there); both guarded by Manager.mu.
	due    time.Time
	dueIdx int
	// group keeps the call's sockets on one media worker, so that a packet
	// leaves by its sink's socket where it was received.
	group mplane.Group
	// rec is the call's recording while one runs or is paused
	// (recording.go); recMetadata the proxy's "metadata" for it.
	rec              *recording.Recording
	recMetadata      string
	discardRecording bool // a delete said discard-recording

	// foreign: another relay owns the call (foreign.go); written under
	// c.mu, read anywhere. fstate is what it keeps until its takeover and
	// reuse the sockets a replaced state may keep; both under c.mu.
	foreign atomic.Bool
	fstate  *foreignState
	reuse   map[reuseKey]*portSet
	// ownSince is when the call became this relay's (created, restored or
	// taken over); under c.mu.
	ownSince time.Time
}

func newCall(m *Manager, id string) *Call {
	now := m.now()
	c := &Call{m: m, id: id, created: now, lastSignal: now, tags: map[string]*monologue{}, tos: m.cfg.TOS, dueIdx: -1,
		ownSince: time.Now()}
	if m.cfg.Media != nil {
		c.group = m.cfg.Media.NewGroup()
	}
	if mode, err := mplane.ParseLearningMode(m.cfg.EndpointLearning); err == nil {
		c.learning.mode = mode
	}
	return c
}

// monologue is one party (one tag) of a call and the media it sends and receives.
type monologue struct {
	tag       string // "" while the answerer is unknown
	aliases   []string
	label     string
	viaBranch string
	created   time.Time
	iface     string // logical interface facing this party ("" = not chosen yet)
	family    int    // address family of SDP sent to this party (0 = follow)
	peer      *monologue
	branches  map[string]*monologue // peers of the offers this party made, by via-branch
	medias    []*media

	// State of the SDP relayd sends to this party (the replace-* rules).
	lastOut     []byte
	outVersion  uint64
	outSession  string
	outUsername string
	outSessID   string
}

// media is one m= line of one party.
type media struct {
	index int
	typ   string
	proto string

	// From the party's own latest SDP.
	sdpRTP, sdpRTCP netip.AddrPort
	rtcpMux         bool // the party uses/offers rtcp-mux
	direction       string
	rejected        bool
	ice             bool
	clockRates      map[uint8]uint32
	demuxRequested  bool              // offer asked to demux this party's rtcp-mux onward
	ptime           int               // the party's a=ptime, 0 when absent
	sdpCodecs       []recording.Codec // the codecs its SDP listed, for a recording's metadata

	// codecOffer is how the relay negotiated this party's last offer (what
	// the answerer was offered), kept to map the answer back; nil before
	// this party offered.
	codecOffer *codecs.Offer
	// transcoding is set while the two parties of this media share no
	// codec (or the proxy forced transcoding); transcodeOfferer says which
	// side of it this party is.
	transcoding      *codecs.Transcoding
	transcodeOfferer bool
	// bridge transcodes between this party and the other while
	// transcoding is set and the relay has a transcoder.
	bridge *bridged
	// firstCodec is the first codec of the party's latest SDP, for query.
	firstCodec string

	// What relayd advertised to this party.
	advertisedMux   bool
	advertisedProto string // the profile of the relay's SDP to the party ("" before any)
	advertisedICE   bool   // the relay offered ICE to the party: it answers its checks
	// sec is the security of the party's side (WebRTC, SRTP), nil while
	// it is plain RTP.
	sec *security

	// Local sockets facing this party: a history of port sets keyed by the
	// other party's endpoint, as the reference keeps its endpoint maps.
	sets  []*portSet
	cur   *portSet
	ufrag string
	pwd   string
}

// portSet is the local port(s) one party sends a media to.
type portSet struct {
	key     netip.AddrPort // other party's endpoint it was made for; invalid = not claimed yet
	addr    *ifaceAddr
	alloc   *ports.Allocation
	streams []*streamState // RTP, then RTCP when there is a separate port
}

func (ps *portSet) rtpPort() int { return ps.alloc.Port }

func (ps *portSet) rtcpPort() int {
	if len(ps.alloc.Sockets) > 1 {
		return ps.alloc.Port + 1
	}
	return ps.alloc.Port
}

func (c *Call) monologue(tag string) *monologue {
	if tag == "" {
		return nil
	}
	return c.tags[tag]
}

func (c *Call) newMonologue(tag string) *monologue {
	ml := &monologue{tag: tag, created: c.m.now(), branches: map[string]*monologue{}}
	c.monos = append(c.monos, ml)
	if tag != "" {
		c.tags[tag] = ml
	}
	return ml
}

func (c *Call) setTag(ml *monologue, tag string) {
	if ml.tag == tag {
		return
	}
	if ml.tag != "" {
		ml.aliases = append(ml.aliases, ml.tag)
	}
	ml.tag = tag
	c.tags[tag] = ml
}

// peekMedia returns media i of the party, or a new one not yet stored.
func (ml *monologue) peekMedia(i int) *media {
	if i < len(ml.medias) {
		return ml.medias[i]
	}
	return &media{index: i}
}

// storeMedia keeps md (from peekMedia) as the party's media md.index.
func (ml *monologue) storeMedia(md *media) {
	for len(ml.medias) < md.index {
		ml.medias = append(ml.medias, &media{index: len(ml.medias), rejected: true})
	}
	if md.index == len(ml.medias) {
		ml.medias = append(ml.medias, md)
	}
}

// apply takes the party's SDP-derived state from u.
func (md *media) apply(u *media) {
	md.typ, md.proto, md.rejected = u.typ, u.proto, u.rejected
	if u.rejected {
		return
	}
	md.sdpRTP, md.sdpRTCP, md.rtcpMux = u.sdpRTP, u.sdpRTCP, u.rtcpMux
	md.direction, md.ice, md.clockRates, md.demuxRequested = u.direction, u.ice, u.clockRates, u.demuxRequested
	md.ptime = u.ptime
	md.sdpCodecs, md.firstCodec = u.sdpCodecs, u.firstCodec
}

// release closes every socket of the call.
func (c *Call) releaseAll() {
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			md.sec.close()
			closeBridge(md)
			for _, ps := range md.sets {
				c.releaseSet(ps)
			}
			md.sets, md.cur = nil, nil
		}
	}
}

// end destroys the call for reason, once.
func (c *Call) end(reason endReason) {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	if c.foreign.Load() {
		// Another relay owns the call: its end is not this one's to count,
		// report or save.
		c.releaseAll()
		c.mu.Unlock()
		c.m.forget(c, endDropped)
		return
	}
	rec := c.endRecord(reason) // admin.go: for the CDR line and teardown notices
	c.finishRecording(reason)
	c.collectTotals()
	c.releaseAll()
	c.mu.Unlock()
	c.m.forget(c, reason)
	c.m.changed(c.id)
	c.m.ended(c, rec) // admin.go: the call's one log line (CDR) and the OnCallEnd hook
}
