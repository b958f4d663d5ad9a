// SPDX-License-Identifier: Apache-2.0

package session

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/relayd/relayd/pkg/codecs"
	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/webrtc"
)

// A call's state, as a relay that restarts (or a standby that takes over)
// needs it to continue the call: its parties and what they signalled, the
// ports and interfaces facing each, what endpoint learning found, the SRTP
// keys of each secure side (SDES keys, and the keys DTLS handshakes
// exported, with their rollover counters) and the counters so far. It is
// plain data, serialised as JSON by whichever store keeps it.

// CallState is one call.
type CallState struct {
	Version    int       `json:"v"`
	CallID     string    `json:"call_id"`
	Created    time.Time `json:"created"`
	LastSignal time.Time `json:"last_signal"`
	DeleteAt   time.Time `json:"delete_at,omitzero"`
	Answered   bool      `json:"answered,omitempty"`
	TOS        int       `json:"tos"`
	Learning   struct {
		Mode       uint8 `json:"mode"`
		Strict     bool  `json:"strict,omitempty"`
		Asymmetric bool  `json:"asymmetric,omitempty"`
		Handover   bool  `json:"handover,omitempty"`
	} `json:"learning"`
	Origin     netip.AddrPort `json:"origin,omitzero"`
	Monologues []MonoState    `json:"monologues"`
	// Recording is "on" or "paused" while the call is recorded (the
	// relay that restores it records on, in a file of its own), with the
	// proxy's metadata for it.
	Recording         string `json:"recording,omitempty"`
	RecordingMetadata string `json:"recording_metadata,omitempty"`
}

// stateVersion changes when a field's meaning changes: a relay refuses
// states of another version (they are ended, not half-restored).
const stateVersion = 1

// MonoState is one party.
type MonoState struct {
	Tag         string         `json:"tag"`
	Aliases     []string       `json:"aliases,omitempty"`
	Label       string         `json:"label,omitempty"`
	ViaBranch   string         `json:"via_branch,omitempty"`
	Created     time.Time      `json:"created"`
	Iface       string         `json:"iface"`
	Family      int            `json:"family,omitempty"`
	Peer        int            `json:"peer"`               // index in Monologues, -1 for none
	Branches    map[string]int `json:"branches,omitempty"` // via-branch → index
	Medias      []MediaState   `json:"medias"`
	LastOut     []byte         `json:"last_out,omitempty"`
	OutVersion  uint64         `json:"out_version,omitempty"`
	OutSession  string         `json:"out_session,omitempty"`
	OutUsername string         `json:"out_username,omitempty"`
	OutSessID   string         `json:"out_sess_id,omitempty"`
}

// MediaState is one m= line of a party.
type MediaState struct {
	Index           int              `json:"index"`
	Type            string           `json:"type"`
	Proto           string           `json:"proto"`
	SDPRTP          netip.AddrPort   `json:"sdp_rtp,omitzero"`
	SDPRTCP         netip.AddrPort   `json:"sdp_rtcp,omitzero"`
	RTCPMux         bool             `json:"rtcp_mux,omitempty"`
	Direction       string           `json:"direction,omitempty"`
	Rejected        bool             `json:"rejected,omitempty"`
	ICE             bool             `json:"ice,omitempty"`
	ClockRates      map[uint8]uint32 `json:"clock_rates,omitempty"`
	DemuxRequested  bool             `json:"demux_requested,omitempty"`
	AdvertisedMux   bool             `json:"advertised_mux,omitempty"`
	AdvertisedProto string           `json:"advertised_proto,omitempty"`
	AdvertisedICE   bool             `json:"advertised_ice,omitempty"`
	Ufrag           string           `json:"ufrag,omitempty"`
	Pwd             string           `json:"pwd,omitempty"`
	Sets            []SetState       `json:"sets,omitempty"`
	Cur             int              `json:"cur"` // index in Sets, -1 for none
	Security        *SecurityState   `json:"security,omitempty"`
	PTime           int              `json:"ptime,omitempty"`
	// CodecOffer is the negotiation of this party's last offer; Transcoding
	// what each side of a transcoded media speaks (TranscodeOfferer: this
	// party is the offerer's side).
	CodecOffer       *codecs.Offer       `json:"codec_offer,omitempty"`
	Transcoding      *codecs.Transcoding `json:"transcoding,omitempty"`
	TranscodeOfferer bool                `json:"transcode_offerer,omitempty"`
}

// SetState is a port set: where it is bound and what each socket learned.
type SetState struct {
	Key     netip.AddrPort `json:"key,omitzero"`
	Iface   string         `json:"iface"`
	Local   netip.Addr     `json:"local"`
	Port    int            `json:"port"`
	Sockets []SocketState  `json:"sockets"`
}

// SocketState is one socket's learning state and counters.
type SocketState struct {
	Src      netip.AddrPort      `json:"src,omitzero"`
	Dest     netip.AddrPort      `json:"dest,omitzero"`
	Latched  bool                `json:"latched,omitempty"`
	Counters mplane.CounterState `json:"counters"`
}

// SecurityState is a secure party's parameters and keys.
type SecurityState struct {
	PeerFP     string       `json:"peer_fp,omitempty"`
	PeerSetup  string       `json:"peer_setup,omitempty"`
	PeerCrypto []CryptoJSON `json:"peer_crypto,omitempty"`
	PeerUfrag  string       `json:"peer_ufrag,omitempty"`
	PeerMid    string       `json:"peer_mid,omitempty"`
	Offered    []CryptoJSON `json:"offered,omitempty"`
	RX         *KeysJSON    `json:"rx,omitempty"` // SDES: the party's key
	TX         *KeysJSON    `json:"tx,omitempty"` // SDES: the relay's key
	Role       int          `json:"role"`
	RoleFinal  bool         `json:"role_final,omitempty"`
	// DTLSLocal and DTLSRemote are the keys the last DTLS handshake
	// exported (the relay's and the party's).
	DTLSLocal  *KeysJSON `json:"dtls_local,omitempty"`
	DTLSRemote *KeysJSON `json:"dtls_remote,omitempty"`
	// ROC are the SRTP rollover counters by SSRC: what the relay sent
	// (protect) and received (unprotect).
	ProtectROC   map[uint32]uint32 `json:"protect_roc,omitempty"`
	ProtectSRTCP map[uint32]uint32 `json:"protect_srtcp_index,omitempty"`
	UnprotectROC map[uint32]uint32 `json:"unprotect_roc,omitempty"`
}

// KeysJSON is webrtc.Keys with the suite by name.
type KeysJSON struct {
	Suite            string `json:"suite"`
	Key              []byte `json:"key"`
	Salt             []byte `json:"salt"`
	MKI              []byte `json:"mki,omitempty"`
	UnencryptedSRTP  bool   `json:"unencrypted_srtp,omitempty"`
	UnencryptedSRTCP bool   `json:"unencrypted_srtcp,omitempty"`
}

// CryptoJSON is an SDES crypto attribute.
type CryptoJSON struct {
	Tag  int      `json:"tag"`
	Keys KeysJSON `json:"keys"`
}

func keysJSON(k *webrtc.Keys) *KeysJSON {
	if k == nil {
		return nil
	}
	return &KeysJSON{Suite: k.Suite.Name, Key: k.Key, Salt: k.Salt, MKI: k.MKI,
		UnencryptedSRTP: k.UnencryptedSRTP, UnencryptedSRTCP: k.UnencryptedSRTCP}
}

func (k *KeysJSON) keys() (*webrtc.Keys, error) {
	if k == nil {
		return nil, nil
	}
	s, err := webrtc.SuiteByName(k.Suite)
	if err != nil {
		return nil, err
	}
	if len(k.Key) != s.KeyLen || len(k.Salt) != s.SaltLen {
		return nil, fmt.Errorf("%s key of %d+%d bytes: %w", s.Name, len(k.Key), len(k.Salt), webrtc.ErrBadCrypto)
	}
	return &webrtc.Keys{Suite: s, Key: k.Key, Salt: k.Salt, MKI: k.MKI,
		UnencryptedSRTP: k.UnencryptedSRTP, UnencryptedSRTCP: k.UnencryptedSRTCP}, nil
}

func cryptosJSON(list []webrtc.Crypto) []CryptoJSON {
	var out []CryptoJSON
	for _, c := range list {
		out = append(out, CryptoJSON{Tag: c.Tag, Keys: *keysJSON(&c.Keys)})
	}
	return out
}

func cryptosOf(list []CryptoJSON) ([]webrtc.Crypto, error) {
	var out []webrtc.Crypto
	for _, c := range list {
		k, err := c.Keys.keys()
		if err != nil {
			return nil, err
		}
		out = append(out, webrtc.Crypto{Tag: c.Tag, Keys: *k})
	}
	return out, nil
}

// Snapshot returns the state of call id, false when there is no such live
// call.
func (m *Manager) Snapshot(id string) (CallState, bool) {
	c := m.lookup(id)
	if c == nil {
		return CallState{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return CallState{}, false
	}
	cs := c.state()
	cs.Origin = m.originOf(c)
	return cs, true
}

// SnapshotAll returns the state of every live call.
func (m *Manager) SnapshotAll() []CallState {
	var out []CallState
	for _, id := range m.List(0) {
		if cs, ok := m.Snapshot(id); ok {
			out = append(out, cs)
		}
	}
	return out
}

// state builds the call's state; c.mu is held.
func (c *Call) state() CallState {
	cs := CallState{Version: stateVersion, CallID: c.id, Created: c.created, LastSignal: c.lastSignal,
		DeleteAt: c.deleteAt, Answered: c.answered, TOS: c.tos}
	cs.Learning.Mode = uint8(c.learning.mode)
	cs.Learning.Strict, cs.Learning.Asymmetric, cs.Learning.Handover =
		c.learning.strict, c.learning.asymmetric, c.learning.handover
	index := func(ml *monologue) int { return slices.Index(c.monos, ml) }
	for _, ml := range c.monos {
		ms := MonoState{Tag: ml.tag, Aliases: ml.aliases, Label: ml.label, ViaBranch: ml.viaBranch,
			Created: ml.created, Iface: ml.iface, Family: ml.family, Peer: index(ml.peer),
			LastOut: ml.lastOut, OutVersion: ml.outVersion, OutSession: ml.outSession,
			OutUsername: ml.outUsername, OutSessID: ml.outSessID}
		if len(ml.branches) > 0 {
			ms.Branches = map[string]int{}
			for b, peer := range ml.branches {
				ms.Branches[b] = index(peer)
			}
		}
		for _, md := range ml.medias {
			ms.Medias = append(ms.Medias, md.state())
		}
		cs.Monologues = append(cs.Monologues, ms)
	}
	cs.Recording, cs.RecordingMetadata = c.recordingState(), c.recMetadata
	return cs
}

func (md *media) state() MediaState {
	st := MediaState{Index: md.index, Type: md.typ, Proto: md.proto, SDPRTP: md.sdpRTP, SDPRTCP: md.sdpRTCP,
		RTCPMux: md.rtcpMux, Direction: md.direction, Rejected: md.rejected, ICE: md.ice,
		ClockRates: md.clockRates, DemuxRequested: md.demuxRequested, AdvertisedMux: md.advertisedMux,
		AdvertisedProto: md.advertisedProto, AdvertisedICE: md.advertisedICE, Ufrag: md.ufrag, Pwd: md.pwd,
		Cur: slices.Index(md.sets, md.cur), PTime: md.ptime, CodecOffer: md.codecOffer, Transcoding: md.transcoding,
		TranscodeOfferer: md.transcodeOfferer}
	for _, ps := range md.sets {
		ss := SetState{Key: ps.key, Iface: ps.addr.name, Local: ps.addr.local, Port: ps.alloc.Port}
		for _, sock := range ps.streams {
			var sk SocketState
			if sock.ms != nil {
				l := sock.ms.Learned()
				sk.Src, sk.Dest, sk.Latched = l.Src, l.Dest, l.Latched
				sk.Counters = sock.ms.Counters()
			}
			ss.Sockets = append(ss.Sockets, sk)
		}
		st.Sets = append(st.Sets, ss)
	}
	if s := md.sec; s != nil {
		sec := &SecurityState{PeerSetup: s.peerSetup, PeerCrypto: cryptosJSON(s.peerCrypto), PeerUfrag: s.peerUfrag,
			PeerMid: s.peerMid, Offered: cryptosJSON(s.offered), RX: keysJSON(s.rx), TX: keysJSON(s.tx),
			Role: int(s.role), RoleFinal: s.roleFinal}
		if s.peerFP != nil {
			sec.PeerFP = s.peerFP.String()
		}
		if k := s.dtlsKeys.Load(); k != nil {
			sec.DTLSLocal, sec.DTLSRemote = keysJSON(&k[0]), keysJSON(&k[1])
		}
		if s.protect != nil {
			sec.ProtectROC = s.protect.ROCs()
			sec.ProtectSRTCP = s.protect.SRTCPIndexes()
			sec.UnprotectROC = s.unprotect.ROCs()
		}
		st.Security = sec
	}
	return st
}

// Locals lists the local addresses of every socket of the call: what a
// relayd that adopts its predecessor's kernel rules keeps.
func (cs *CallState) Locals() []netip.AddrPort {
	var out []netip.AddrPort
	for _, ml := range cs.Monologues {
		for _, md := range ml.Medias {
			for _, set := range md.Sets {
				for i := range set.Sockets {
					out = append(out, netip.AddrPortFrom(set.Local, uint16(set.Port+i)))
				}
			}
		}
	}
	return out
}

// ErrStateVersion means a saved call state from a relay whose state format
// this one cannot read.
var ErrStateVersion = errors.New("call state of another version")

// Restore recreates a call from its saved state: its parties, the very
// ports it had (bound again), what endpoint learning had found, its SRTP
// keys. Signalling then continues as if the relay had never stopped. The
// session limit does not apply: the call was admitted before.
func (m *Manager) Restore(cs CallState) error {
	if cs.Version != stateVersion {
		return fmt.Errorf("call %s: version %d: %w", cs.CallID, cs.Version, ErrStateVersion)
	}
	m.mu.Lock()
	if m.calls[cs.CallID] != nil {
		m.mu.Unlock()
		return fmt.Errorf("call %s: %w", cs.CallID, ErrCallExists)
	}
	c := newCall(m, cs.CallID)
	m.calls[cs.CallID] = c
	m.totals.managed++
	m.mu.Unlock()
	c.mu.Lock()
	err := c.restore(cs)
	if err == nil {
		c.reschedule()
	}
	c.mu.Unlock()
	if err != nil {
		c.end(endRejected)
		return fmt.Errorf("restore call %s: %w", cs.CallID, err)
	}
	if cs.Origin.IsValid() {
		m.NoteOrigin(cs.CallID, cs.Origin)
	}
	return nil
}

// restore fills c from cs; c.mu is held.
func (c *Call) restore(cs CallState) error {
	c.created, c.lastSignal, c.deleteAt, c.answered, c.tos = cs.Created, cs.LastSignal, cs.DeleteAt, cs.Answered, cs.TOS
	c.learning = learningFlags{mode: mplane.LearningMode(cs.Learning.Mode), strict: cs.Learning.Strict,
		asymmetric: cs.Learning.Asymmetric, handover: cs.Learning.Handover}
	for _, ms := range cs.Monologues {
		ml := c.newMonologue(ms.Tag)
		ml.aliases, ml.label, ml.viaBranch, ml.created = ms.Aliases, ms.Label, ms.ViaBranch, ms.Created
		ml.iface, ml.family = ms.Iface, ms.Family
		ml.lastOut, ml.outVersion, ml.outSession, ml.outUsername, ml.outSessID =
			ms.LastOut, ms.OutVersion, ms.OutSession, ms.OutUsername, ms.OutSessID
		for _, a := range ms.Aliases {
			c.tags[a] = ml
		}
	}
	at := func(i int) *monologue {
		if i < 0 || i >= len(c.monos) {
			return nil
		}
		return c.monos[i]
	}
	for i, ms := range cs.Monologues {
		ml := c.monos[i]
		ml.peer = at(ms.Peer)
		for b, j := range ms.Branches {
			if p := at(j); p != nil {
				ml.branches[b] = p
			}
		}
		for _, mds := range ms.Medias {
			md, err := c.restoreMedia(mds)
			if err != nil {
				return err
			}
			ml.medias = append(ml.medias, md)
		}
	}
	// Point every party's sockets at its peer's, then put back what
	// learning had found and what was counted. Two passes: configuring a
	// media configures both parties' sockets and restarts their learning,
	// so the second party's would wipe what the first had resumed.
	for _, ml := range c.monos {
		if ml.peer == nil {
			continue
		}
		for j, md := range ml.medias {
			if other := peerMedia(ml.peer, j); other != nil && !md.rejected {
				c.configureMedia(md, other, nil)
			}
		}
	}
	for i, ms := range cs.Monologues {
		ml := c.monos[i]
		if ml.peer == nil {
			continue
		}
		for j, md := range ml.medias {
			resumeSockets(md, ms.Medias[j])
		}
	}
	c.recMetadata = cs.RecordingMetadata
	c.continueRecording(cs.Recording) // taps on the restored sockets; latches stay
	return nil
}

func (c *Call) restoreMedia(st MediaState) (*media, error) {
	md := &media{index: st.Index, typ: st.Type, proto: st.Proto, sdpRTP: st.SDPRTP, sdpRTCP: st.SDPRTCP,
		rtcpMux: st.RTCPMux, direction: st.Direction, rejected: st.Rejected, ice: st.ICE,
		clockRates: st.ClockRates, demuxRequested: st.DemuxRequested, advertisedMux: st.AdvertisedMux,
		advertisedProto: st.AdvertisedProto, advertisedICE: st.AdvertisedICE, ufrag: st.Ufrag, pwd: st.Pwd,
		ptime: st.PTime, codecOffer: st.CodecOffer, transcoding: st.Transcoding, transcodeOfferer: st.TranscodeOfferer}
	for _, ss := range st.Sets {
		ia := c.m.addrOf(ss.Iface, ss.Local)
		if ia == nil {
			return nil, fmt.Errorf("interface %s/%s is not configured: %w", ss.Iface, ss.Local, ErrNoInterface)
		}
		alloc, err := ia.pool.Claim(ss.Port, len(ss.Sockets))
		if err != nil {
			return nil, fmt.Errorf("port %s:%d: %w", ss.Local, ss.Port, err)
		}
		ps := &portSet{key: ss.Key, addr: ia, alloc: alloc}
		if err := c.attach(ps); err != nil {
			c.releaseSet(ps)
			return nil, err
		}
		md.sets = append(md.sets, ps)
	}
	if st.Cur >= 0 && st.Cur < len(md.sets) {
		md.cur = md.sets[st.Cur]
	}
	if st.Security != nil {
		if err := c.restoreSecurity(md, st.Security); err != nil {
			return nil, err
		}
	}
	return md, nil
}

func (c *Call) restoreSecurity(md *media, st *SecurityState) error {
	s := md.security()
	s.peerSetup, s.peerUfrag, s.peerMid = st.PeerSetup, st.PeerUfrag, st.PeerMid
	s.role, s.roleFinal = webrtc.Role(st.Role), st.RoleFinal
	if st.PeerFP != "" {
		fp, err := webrtc.ParseFingerprint(st.PeerFP)
		if err != nil {
			return err
		}
		s.peerFP = &fp
	}
	var err error
	if s.peerCrypto, err = cryptosOf(st.PeerCrypto); err != nil {
		return err
	}
	if s.offered, err = cryptosOf(st.Offered); err != nil {
		return err
	}
	if s.rx, err = st.RX.keys(); err != nil {
		return err
	}
	if s.tx, err = st.TX.keys(); err != nil {
		return err
	}
	local, err := st.DTLSLocal.keys()
	if err != nil {
		return err
	}
	remote, err := st.DTLSRemote.keys()
	if err != nil {
		return err
	}
	switch {
	case s.rx != nil && s.tx != nil:
		if err := c.installSDES(md); err != nil {
			return err
		}
	case local != nil && remote != nil:
		// The DTLS session is gone with the old process, its keys are not:
		// media continues on them, and no new handshake starts until the
		// peer's fingerprint or role changes.
		s.ensureStages()
		if err := s.protect.SetKeys(*local); err != nil {
			return err
		}
		if err := s.unprotect.SetKeys(*remote); err != nil {
			return err
		}
		s.dtlsKeys.Store(&[2]webrtc.Keys{*local, *remote})
		if s.peerFP != nil {
			s.resumed, s.resumedFP, s.resumedRole = true, *s.peerFP, s.role
		}
	}
	if s.protect != nil {
		s.protect.SetROCs(st.ProtectROC, st.ProtectSRTCP)
		s.unprotect.SetROCs(st.UnprotectROC)
	}
	return nil
}

// resumeSockets puts back each socket's learning state and counters.
func resumeSockets(md *media, st MediaState) {
	for i, ps := range md.sets {
		if i >= len(st.Sets) {
			return
		}
		for j, sock := range ps.streams {
			if j >= len(st.Sets[i].Sockets) || sock.ms == nil {
				continue
			}
			ss := st.Sets[i].Sockets[j]
			sock.ms.Resume(mplane.Learned{Src: ss.Src, Dest: ss.Dest, Latched: ss.Latched})
			sock.ms.AddCounters(ss.Counters)
		}
	}
}

// addrOf finds the configured address local of logical interface name.
func (m *Manager) addrOf(name string, local netip.Addr) *ifaceAddr {
	for _, ia := range m.ifaces[name] {
		if ia.local == local {
			return ia
		}
	}
	return nil
}
