// SPDX-License-Identifier: Apache-2.0

package session

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	"github.com/relayd/relayd/pkg/ports"
	"github.com/relayd/relayd/pkg/sdp"
)

// Signal is one offer or answer: who sends it, and its SDP.
type Signal struct {
	CallID    string
	FromTag   string
	ToTag     string
	ViaBranch string
	SDP       []byte
	Options   Options
}

// Outcome is what an offer or answer produces: the SDP for the party that
// receives it, and warnings about what the relay did not do as asked (the
// proxy gets them in the reply's "warning").
type Outcome struct {
	SDP      []byte
	Warnings []string
	// Recordings are the pcap files the call is being recorded into.
	Recordings []string
}

// Offer handles an offer from FromTag: it creates the call if needed, allocates
// the ports both parties will send to and returns the SDP for the receiver.
func (m *Manager) Offer(s Signal) ([]byte, error) {
	o, err := m.OfferOutcome(s)
	return o.SDP, err
}

// Answer handles the answer from ToTag to the offer of FromTag.
func (m *Manager) Answer(s Signal) ([]byte, error) {
	o, err := m.AnswerOutcome(s)
	return o.SDP, err
}

// OfferOutcome is Offer with its warnings.
func (m *Manager) OfferOutcome(s Signal) (Outcome, error) {
	desc, err := parseSDP(s.SDP)
	if err != nil {
		return Outcome{}, err
	}
	c, created, err := m.lookupOrCreate(s.CallID)
	if err != nil {
		return Outcome{}, err
	}
	c.mu.Lock()
	if c.ended {
		// Lost a race with expiry: the call is gone, start over once.
		c.mu.Unlock()
		if c, created, err = m.lookupOrCreate(s.CallID); err != nil {
			return Outcome{}, err
		}
		c.mu.Lock()
	}
	out, err := c.offer(s, desc)
	c.reschedule()
	c.mu.Unlock()
	if err != nil && created {
		// Nobody will use a call whose first offer failed, whatever of it
		// was set up before the failure (ports, when the rewritten SDP
		// turned out too large to send).
		c.end(endRejected)
		return out, err
	}
	m.changed(c.id)
	return out, err
}

// AnswerOutcome is Answer with its warnings.
func (m *Manager) AnswerOutcome(s Signal) (Outcome, error) {
	desc, err := parseSDP(s.SDP)
	if err != nil {
		return Outcome{}, err
	}
	c := m.lookup(s.CallID)
	if c == nil {
		return Outcome{}, ErrUnknownCall
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return Outcome{}, ErrUnknownCall
	}
	out, err := c.answer(s, desc)
	c.reschedule()
	c.mu.Unlock()
	m.changed(c.id)
	return out, err
}

func parseSDP(b []byte) (*sdp.Description, error) {
	d, err := sdp.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrParseSDP, err)
	}
	return d, nil
}

func (c *Call) offer(s Signal, desc *sdp.Description) (Outcome, error) {
	if out, ok := loopProtected(s.SDP); ok {
		return Outcome{SDP: out}, nil
	}
	from := c.monologue(s.FromTag)
	if from == nil {
		from = c.newMonologue(s.FromTag)
	}
	var to *monologue
	if s.ToTag != "" {
		to = c.monologue(s.ToTag)
	}
	if to == nil {
		to = from.branches[s.ViaBranch]
	}
	if to == nil && s.ViaBranch == "" && from.peer != nil {
		to = from.peer
	}
	if to == nil {
		to = c.newMonologue(s.ToTag)
		to.viaBranch = s.ViaBranch
	}
	if to == from {
		return Outcome{}, ErrDialogue
	}
	from.branches[s.ViaBranch] = to
	link(from, to)
	if s.Options.Label != "" {
		from.label = s.Options.Label
	}
	// direction is [interface facing the sender, interface facing the receiver];
	// the initial offer decides, later messages keep it.
	dir := s.Options.Direction
	if from.iface == "" {
		from.iface = c.ifaceName(dir, 0)
	}
	if to.iface == "" {
		to.iface = c.ifaceName(dir, 1)
	}
	return c.forward(from, to, desc, s, true)
}

func (c *Call) answer(s Signal, desc *sdp.Description) (Outcome, error) {
	offerer := c.monologue(s.FromTag)
	if offerer == nil {
		return Outcome{}, ErrDialogue
	}
	answerer := c.monologue(s.ToTag)
	if answerer == nil {
		answerer = offerer.branches[s.ViaBranch]
		if answerer == nil {
			answerer = offerer.peer
		}
		if answerer == nil {
			return Outcome{}, ErrDialogue
		}
		// A new to-tag on a branch that already answered is a fork further
		// downstream: the branch's ports stay, the new tag takes them over.
		c.setTag(answerer, s.ToTag)
	}
	if answerer == offerer {
		return Outcome{}, ErrDialogue
	}
	link(answerer, offerer)
	if s.Options.Label != "" {
		answerer.label = s.Options.Label
	}
	if answerer.iface == "" {
		answerer.iface = c.ifaceName(s.Options.Direction, 0)
	}
	if offerer.iface == "" {
		offerer.iface = c.ifaceName(s.Options.Direction, 1)
	}
	c.answered = true
	return c.forward(answerer, offerer, desc, s, false)
}

func link(a, b *monologue) {
	a.peer, b.peer = b, a
}

func (c *Call) ifaceName(dir []string, i int) string {
	if i < len(dir) && dir[i] != "" {
		if !c.m.knownInterface(dir[i]) {
			c.m.lim.Log(slog.LevelWarn, "unknown interface in direction, using the default", "unknown interface",
				netip.Addr{}, "call-id", c.id, "interface", dir[i])
			return c.m.def
		}
		return dir[i]
	}
	return c.m.def
}

// forward processes the SDP that party from sends towards party to: it records
// from's endpoints, makes sure both have ports, and rewrites the SDP for to.
func (c *Call) forward(from, to *monologue, desc *sdp.Description, s Signal, isOffer bool) (Outcome, error) {
	opts := &s.Options
	now := c.m.now()
	c.lastSignal = now
	c.deleteAt = time.Time{} // a new signal revives a call scheduled for deletion
	if opts.TOS != nil {
		old := c.tos
		switch t := *opts.TOS; {
		case t >= 256:
			c.tos = c.m.cfg.TOS
		case t >= 0:
			c.tos = t
		}
		if c.tos != old {
			defer c.setTOS() // after this signal's new sockets exist
		}
	}
	c.updateLearning(opts)
	if isOffer {
		switch opts.AddressFamily {
		case "IP4":
			to.family = 4
		case "IP6":
			to.family = 6
		}
	}

	sessionICE := desc.HasICE()
	var pending []pendingSet
	zero := make([]bool, len(desc.Media))
	// Nothing of the call changes until every port is in hand: updates are
	// computed here and applied together below.
	fms, tms := make([]*media, len(desc.Media)), make([]*media, len(desc.Media))
	upd := make([]media, len(desc.Media))
	for i, dm := range desc.Media {
		fm, tm := from.peekMedia(i), to.peekMedia(i)
		fms[i], tms[i] = fm, tm
		u := &upd[i]
		u.typ, u.proto = dm.Type, dm.Proto
		if dm.Port == 0 {
			u.rejected = true
			continue
		}
		ep, ok := desc.Endpoint(i)
		if !ok {
			return Outcome{}, fmt.Errorf("media %d has no connection address: %w", i, ErrIncompleteSDP)
		}
		rtcpEp, _ := desc.RTCPEndpoint(i)
		addr := ep.Addr()
		zero[i] = addr.IsUnspecified()
		if !zero[i] {
			addr = peerAddr(addr, opts)
		}
		rtcpAddr := rtcpEp.Addr()
		if !rtcpAddr.IsValid() || rtcpAddr == ep.Addr() {
			rtcpAddr = addr
		}
		u.sdpRTP = netip.AddrPortFrom(addr, ep.Port())
		u.sdpRTCP = netip.AddrPortFrom(rtcpAddr, rtcpEp.Port())
		u.rtcpMux = dm.RTCPMux
		u.direction = dm.Direction
		if u.direction == "" {
			u.direction = desc.SessionDirection()
		}
		u.ice = dm.ICE || sessionICE
		u.clockRates = clockRates(dm)
		u.ptime = dm.PTime
		u.firstCodec = firstCodecOf(codecs.FromMedia(dm))
		u.sdpCodecs = codecsOf(dm)
		u.demuxRequested = fm.demuxRequested
		if isOffer {
			u.demuxRequested = slices.Contains(opts.RTCPMux, "demux")
		}

		famFrom := familyOf(addr)
		famTo := to.family
		if famTo == 0 && tm.sdpRTP.IsValid() && !tm.sdpRTP.Addr().IsUnspecified() {
			famTo = familyOf(tm.sdpRTP.Addr())
		}
		if famTo == 0 {
			famTo = famFrom
		}

		wantFrom := c.m.pick(from.iface, famFrom)
		if fm.cur == nil || fm.cur.addr != wantFrom {
			pending = append(pending, pendingSet{md: fm, want: wantFrom, n: 2})
		}
		wantTo := c.m.pick(to.iface, famTo)
		n := 2
		if slices.Contains(opts.RTCPMux, "require") {
			n = 1
		}
		latch := opts.Flags.PortLatching || (u.ice && !opts.Flags.NoPortLatching) ||
			!receiving(u.direction) || zero[i]
		set, claim := tm.choose(u.sdpRTP, latch, wantTo, zero[i])
		pending = append(pending, pendingSet{md: tm, want: wantTo, n: n, key: u.sdpRTP, set: set, claim: claim})
	}

	// What each side's security is, and what the SDP to the receiver says
	// about it; refused before anything of the call changes.
	warnings := opts.unhonoured(c.m.cfg.Recorder != nil)
	secs := make([]secOut, len(desc.Media))
	for i := range desc.Media {
		if upd[i].rejected {
			continue
		}
		out, w, err := c.negotiate(fms[i], tms[i], upd[i].proto, desc, i, opts, isOffer)
		warnings = append(warnings, w...)
		if err != nil {
			return Outcome{}, err
		}
		secs[i] = out
	}
	cods := make([]codecOut, len(desc.Media))
	for i, dm := range desc.Media {
		if upd[i].rejected {
			continue
		}
		out, w, err := c.negotiateCodecs(fms[i], tms[i], dm, opts, isOffer)
		warnings = append(warnings, w...)
		if err != nil {
			return Outcome{}, err
		}
		cods[i] = out
	}
	if err := c.allocate(pending); err != nil {
		return Outcome{}, err
	}
	for i := range desc.Media {
		from.storeMedia(fms[i])
		to.storeMedia(tms[i])
		tms[i].typ = upd[i].typ
		if p := secs[i].proto; p != "" {
			// The receiver's profile is what it uses once it has said so
			// in its own SDP; until then, what the relay offered it.
			if tms[i].proto == "" || (opts.TransportProtocol != "" && opts.TransportProtocol != "accept") {
				tms[i].proto = p
			}
			tms[i].advertisedProto = p
		}
		fms[i].apply(&upd[i])
		commitCodecs(fms[i], tms[i], cods[i])
	}
	for _, p := range pending {
		if p.fresh {
			p.md.sets = append(p.md.sets, p.set)
		}
		if p.claim {
			p.set.key = p.key
		}
		p.md.cur = p.set
	}
	// The plan decides what each party is told (rtcp-mux among it), which
	// the media configuration then follows.
	plan := c.plan(from, to, desc, opts, isOffer, zero, secs, cods)
	c.applyRecordCall(opts) // before the media are configured: new sockets get their taps
	for i := range desc.Media {
		if !fms[i].rejected {
			c.configureMedia(fms[i], tms[i], opts)
		}
	}
	c.refreshRecordingMeta()
	out, err := c.rewrite(to, desc, plan, opts)
	if err != nil {
		return Outcome{}, err
	}
	o := Outcome{SDP: out, Warnings: warnings}
	if c.rec != nil {
		o.Recordings = []string{c.rec.Path()}
	}
	return o, nil
}

// pendingSet is a port set chosen (set != nil) or to be allocated for one
// media by this signal; it is committed only when all succeeded, so that a
// failure leaves the call as it was.
type pendingSet struct {
	md    *media
	want  *ifaceAddr
	n     int
	key   netip.AddrPort
	set   *portSet
	claim bool
	fresh bool
}

// allocate binds the sets that pending still lacks, or none of them.
func (c *Call) allocate(pending []pendingSet) error {
	for i := range pending {
		p := &pending[i]
		if p.set != nil {
			continue
		}
		alloc, err := p.want.pool.Allocate(p.n)
		if err != nil {
			for _, q := range pending[:i] {
				if q.fresh {
					c.releaseSet(q.set)
				}
			}
			if errors.Is(err, ports.ErrNoPorts) || errors.Is(err, ports.ErrNoDescriptors) {
				c.m.lim.Log(slog.LevelWarn, "port allocation failed", "no ports", netip.Addr{}, "call-id", c.id, "error", err)
				return fmt.Errorf("%w: %w", ErrNoPorts, err)
			}
			return fmt.Errorf("allocate ports: %w", err)
		}
		p.set = &portSet{key: p.key, addr: p.want, alloc: alloc}
		p.fresh = true
		if err := c.attach(p.set); err != nil {
			c.releaseSet(p.set)
			for _, q := range pending[:i] {
				if q.fresh {
					c.releaseSet(q.set)
				}
			}
			return fmt.Errorf("attach media sockets: %w", err)
		}
	}
	return nil
}

// choose returns the port set media md should advertise to its party when the
// other party's endpoint is key, as the reference's endpoint maps do: the same
// endpoint gets the same ports, a new endpoint new ports (unless latched), and a
// set made before the other endpoint was known is claimed by the first one.
func (md *media) choose(key netip.AddrPort, latch bool, want *ifaceAddr, zero bool) (*portSet, bool) {
	if md.cur != nil && md.cur.addr == want {
		if latch {
			return md.cur, false
		}
		if !md.cur.key.IsValid() {
			return md.cur, true
		}
	}
	for _, ps := range md.sets {
		if ps.addr != want || !ps.key.IsValid() {
			continue
		}
		if ps.key == key || (zero && ps.key.Port() == key.Port()) {
			return ps, false
		}
	}
	return nil, false
}

func receiving(direction string) bool {
	return direction != "sendonly" && direction != "inactive"
}

// peerAddr is where a party's media is expected from, per the trust rules.
func peerAddr(sdpAddr netip.Addr, opts *Options) netip.Addr {
	if opts.MediaAddress.IsValid() {
		return opts.MediaAddress
	}
	if opts.Flags.SIPSourceAddress && opts.ReceivedFrom.IsValid() {
		return opts.ReceivedFrom
	}
	return sdpAddr
}

// loopProtected reports an SDP that has been through a relay with loop-protect
// already: it goes back untouched.
func loopProtected(raw []byte) ([]byte, bool) {
	if bytes.Contains(raw, []byte("\na=rtpengine:")) {
		return raw, true
	}
	return nil, false
}

// staticClock are the RFC 3551 static payload types' clock rates.
var staticClock = map[uint8]uint32{0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000,
	9: 8000, 10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025, 17: 22050,
	18: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000, 33: 90000, 34: 90000}

var staticName = map[uint8]string{0: "PCMU", 3: "GSM", 4: "G723", 5: "DVI4", 6: "DVI4", 7: "LPC",
	8: "PCMA", 9: "G722", 10: "L16", 11: "L16", 12: "QCELP", 13: "CN", 14: "MPA", 15: "G728",
	18: "G729", 26: "JPEG", 31: "H261", 32: "MPV", 34: "H263"}

func clockRates(dm *sdp.Media) map[uint8]uint32 {
	rates := map[uint8]uint32{}
	for _, f := range dm.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		if rm, ok := dm.RTPMaps[uint8(pt)]; ok && rm.ClockRate > 0 {
			rates[uint8(pt)] = uint32(rm.ClockRate)
		} else if r, ok := staticClock[uint8(pt)]; ok {
			rates[uint8(pt)] = r
		}
	}
	return rates
}
