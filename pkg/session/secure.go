// SPDX-License-Identifier: Apache-2.0

package session

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/sdp"
	"github.com/relayd/relayd/pkg/webrtc"
)

// WebRTC bridging: each party of a media has a transport — plain RTP, SRTP
// keyed by SDES (RTP/SAVP, RTP/SAVPF) or SRTP keyed by a DTLS handshake
// (UDP/TLS/RTP/SAVP, UDP/TLS/RTP/SAVPF) — and the relay terminates the
// security of each side on its own: it decrypts what a party sends and
// encrypts what it sends to a party with keys of that side alone. ICE is
// answered as a lite agent on whichever side the relay advertises ICE to.

// transport is how a party's media is protected.
type transport uint8

const (
	plainRTP transport = iota
	sdesSRTP
	dtlsSRTP
)

func transportOf(proto string) transport {
	switch strings.ToUpper(proto) {
	case "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF":
		return dtlsSRTP
	case "RTP/SAVP", "RTP/SAVPF":
		return sdesSRTP
	}
	return plainRTP
}

// feedback reports an AVPF profile (RTCP feedback, a=rtcp-fb).
func feedback(proto string) bool { return strings.HasSuffix(strings.ToUpper(proto), "AVPF") }

// protoFor names the profile of transport t with or without feedback.
func protoFor(t transport, avpf bool) string {
	f := ""
	if avpf {
		f = "F"
	}
	switch t {
	case dtlsSRTP:
		return "UDP/TLS/RTP/SAVP" + f
	case sdesSRTP:
		return "RTP/SAVP" + f
	}
	return "RTP/AVP" + f
}

// browserOnly are the attributes a plain RTP/AVP leg never gets: WebRTC
// transport and RTP extensions a SIP phone does not use and some mishandle.
// (a=rtcp-fb stays on AVPF legs, a=mid when generate-mid asks for it.)
var browserOnly = []string{"fingerprint", "setup", "tls-id", "crypto", "extmap", "extmap-allow-mixed",
	"rtcp-fb", "ssrc", "ssrc-group", "msid", "mid", "rtcp-rsize"}

// browserOnlySession are their session-level counterparts.
var browserOnlySession = []string{"fingerprint", "setup", "tls-id", "extmap-allow-mixed", "msid-semantic",
	"group", "ice-lite", "ice-options"}

// security is what the relay knows and runs for the security of one party's
// media: the party's own parameters from its SDP, the relay's towards it,
// and the live stages.
type security struct {
	peerParams // from the party's latest SDP

	// What the relay offered the party (its own SDES keys, one per suite)
	// and what was agreed: the party's key (rx) and the relay's (tx).
	offered []webrtc.Crypto
	rx, tx  *webrtc.Keys

	// role is the relay's DTLS role towards the party, once final.
	role      webrtc.Role
	roleFinal bool

	counters webrtc.Counters
	// dtlsKeys are the keys the last handshake exported (the relay's, the
	// party's), kept for the call's saved state; written by the handshake's
	// goroutine.
	dtlsKeys atomic.Pointer[[2]webrtc.Keys]
	// resumed: the keys came from a saved state, not from a handshake of
	// this process; no handshake starts until the party's fingerprint or
	// role changes (resumedFP, resumedRole).
	resumed     bool
	resumedFP   webrtc.Fingerprint
	resumedRole webrtc.Role
	ice         *webrtc.ICE
	dtls        *webrtc.DTLS
	dtlsOn      *mplane.Stream // the socket the handshake runs on
	protect     *webrtc.Protect
	unprotect   *webrtc.Unprotect
}

// peerParams are a party's security parameters from its SDP.
type peerParams struct {
	peerFP     *webrtc.Fingerprint
	peerSetup  string // actpass, active, passive, holdconn
	peerCrypto []webrtc.Crypto
	peerUfrag  string
	peerMid    string
}

// close ends the live parts (call over, or the party left).
func (s *security) close() {
	if s == nil {
		return
	}
	if s.dtls != nil {
		s.dtls.Close()
		s.dtls = nil
	}
}

// readSecurity takes the party's security parameters from its SDP for
// media i (media-level attributes win over session-level ones).
func readSecurity(desc *sdp.Description, i int) (peerParams, []string) {
	var s peerParams
	var bad []string
	attr := func(name string) string {
		if v := desc.MediaAttributes(i, name); len(v) > 0 {
			return v[0]
		}
		if v := desc.SessionAttributes(name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if v := attr("fingerprint"); v != "" {
		if fp, err := webrtc.ParseFingerprint(v); err == nil {
			s.peerFP = &fp
		} else {
			bad = append(bad, fmt.Sprintf("a=fingerprint of media %d: %v", i+1, err))
		}
	}
	s.peerSetup = strings.ToLower(attr("setup"))
	for _, v := range desc.MediaAttributes(i, "crypto") {
		c, err := webrtc.ParseCrypto(v)
		if err != nil {
			continue // another line may be usable; none at all is checked later
		}
		s.peerCrypto = append(s.peerCrypto, c)
	}
	s.peerUfrag = attr("ice-ufrag")
	if v := desc.MediaAttributes(i, "mid"); len(v) > 0 {
		s.peerMid = v[0]
	}
	return s, bad
}

// sdesOptions are the SDES flags of a request, as far as the relay honours
// them.
type sdesOptions struct {
	off      bool
	pad      bool
	no, only []string // suite names
	order    []string
	unknown  []string
}

func parseSDES(list []string) sdesOptions {
	var o sdesOptions
	for _, v := range list {
		switch {
		case v == "off":
			o.off = true
		case strings.EqualFold(v, "pad"):
			o.pad = true
		case strings.HasPrefix(strings.ToLower(v), "no-"):
			o.no = append(o.no, v[3:])
		case strings.HasPrefix(strings.ToLower(v), "only-"):
			o.only = append(o.only, v[5:])
		case strings.HasPrefix(strings.ToLower(v), "order:"):
			o.order = strings.Split(v[6:], ",")
		default:
			o.unknown = append(o.unknown, v)
		}
	}
	return o
}

// suites are the suites the relay offers under o, in offer order.
func (o sdesOptions) suites() []webrtc.Suite {
	var out []webrtc.Suite
	for _, s := range webrtc.Suites() {
		if slices.ContainsFunc(o.no, func(n string) bool { return strings.EqualFold(n, s.Name) }) {
			continue
		}
		if len(o.only) > 0 && !slices.ContainsFunc(o.only, func(n string) bool { return strings.EqualFold(n, s.Name) }) {
			continue
		}
		out = append(out, s)
	}
	if len(o.order) > 0 {
		rank := func(s webrtc.Suite) int {
			for i, n := range o.order {
				if strings.EqualFold(n, s.Name) {
					return i
				}
			}
			return len(o.order)
		}
		slices.SortStableFunc(out, func(a, b webrtc.Suite) int { return rank(a) - rank(b) })
	}
	return out
}

// acceptable reports whether the relay may use suite s under o.
func (o sdesOptions) acceptable(s webrtc.Suite) bool {
	if slices.ContainsFunc(o.no, func(n string) bool { return strings.EqualFold(n, s.Name) }) {
		return false
	}
	return len(o.only) == 0 || slices.ContainsFunc(o.only, func(n string) bool { return strings.EqualFold(n, s.Name) })
}

// secOut is what the SDP to a party says about security for one media.
type secOut struct {
	proto      string
	add        []string // media attributes
	remove     []string
	sessRemove []string
	// mid is the media's a=mid in the SDP to a WebRTC party: it gets a
	// BUNDLE group of its own (pion and browsers with max-bundle reject a
	// media outside any group; the relay does not bundle media on one port).
	mid string
}

// negotiate records the security of the party that sent this SDP (fm, from
// its attributes) and decides what the SDP to the other party (tm) says.
// It returns warnings for requests the relay acts on only in part.
func (c *Call) negotiate(fm, tm *media, fromProto string, desc *sdp.Description, i int, opts *Options, isOffer bool) (secOut, []string, error) {
	var warn []string
	peer, bad := readSecurity(desc, i)
	warn = append(warn, bad...)
	fsec := fm.security()
	fsec.peerFP, fsec.peerSetup, fsec.peerCrypto, fsec.peerMid = peer.peerFP, peer.peerSetup, peer.peerCrypto, peer.peerMid
	if peer.peerUfrag != fsec.peerUfrag && fsec.peerUfrag != "" && peer.peerUfrag != "" {
		// ICE restart (RFC 8445 §9): the relay's credentials towards the
		// party change too.
		fm.ufrag, fm.pwd = "", ""
		fsec.ice = nil
	}
	fsec.peerUfrag = peer.peerUfrag
	sdes := parseSDES(opts.SDES)
	for _, u := range sdes.unknown {
		warn = append(warn, fmt.Sprintf("SDES option %q is not supported and was ignored", u))
	}

	// The sender's own transport: what it sent, and the keys of its side.
	ft := transportOf(fromProto)
	switch {
	case ft == sdesSRTP && len(peer.peerCrypto) > 0 && !(fm.answeredDTLS(peer)):
		if err := c.keysFromPeer(fm, sdes, isOffer); err != nil {
			return secOut{}, warn, err
		}
	case ft == sdesSRTP || ft == dtlsSRTP:
		if peer.peerFP == nil {
			if ft == sdesSRTP {
				return secOut{}, warn, fmt.Errorf("%w: media %d is %s without a=crypto or a=fingerprint",
					ErrIncompleteSDP, i+1, fromProto)
			}
			return secOut{}, warn, fmt.Errorf("%w: media %d is %s without a=fingerprint", ErrIncompleteSDP, i+1, fromProto)
		}
		if !isOffer {
			// The party answers an offer of the relay (actpass): its
			// setup fixes the relay's role now.
			fsec.role = webrtc.Server
			if peer.peerSetup == "passive" {
				fsec.role = webrtc.Client
			}
			fsec.roleFinal = true
		}
	}

	// The receiver's transport: transport-protocol, else what it already
	// uses, else the sender's.
	tt := transportOf(tm.proto)
	avpf := feedback(tm.proto)
	if tm.proto == "" {
		tt, avpf = ft, feedback(fromProto)
	}
	if p := opts.TransportProtocol; p != "" && p != "accept" {
		tt, avpf = transportOf(p), feedback(p)
	} else if p == "accept" && !isOffer {
		tt, avpf = ft, feedback(fromProto)
	}
	out := secOut{proto: protoFor(tt, avpf)}
	if isOffer && tt == plainRTP && (opts.DTLS == "passive" || opts.DTLS == "active") {
		missing := []string{"transport-protocol=UDP/TLS/RTP/SAVPF (or the WebRTC flag)"}
		if !slices.Contains(opts.RTCPMux, "require") && !slices.Contains(opts.RTCPMux, "offer") {
			missing = append(missing, "rtcp-mux-offer or rtcp-mux-require")
		}
		warn = append(warn, fmt.Sprintf("DTLS=%s has no effect on an offer that goes out as %s: "+
			"a WebRTC peer rejects it (no fingerprint); add %s", opts.DTLS, out.proto, strings.Join(missing, " and ")))
	}
	tsec := tm.security()
	switch tt {
	case plainRTP:
		out.remove = append(out.remove, browserOnly...)
		if avpf {
			out.remove = slices.DeleteFunc(out.remove, func(a string) bool { return a == "rtcp-fb" })
		}
		out.sessRemove = browserOnlySession
	case sdesSRTP, dtlsSRTP:
		out.remove = []string{"fingerprint", "setup", "tls-id", "crypto"}
		out.sessRemove = []string{"fingerprint", "setup", "tls-id"}
		if tt == sdesSRTP {
			// An SDES party is a SIP phone or trunk: no browser extras.
			out.remove = append(out.remove, "extmap", "extmap-allow-mixed", "ssrc", "ssrc-group", "msid", "mid", "rtcp-rsize")
			if !avpf {
				out.remove = append(out.remove, "rtcp-fb")
			}
			out.sessRemove = browserOnlySession
		}
		haveDTLS := opts.DTLS != "off" && c.m.identity() != nil
		useSDES := tt == sdesSRTP && !sdes.off
		// An offer over RTP/SAVP(F) carries both methods, as the incumbent's
		// does; the answer to a party's offer uses the one it offered
		// (SDES when it had a usable a=crypto line).
		useDTLS := haveDTLS && (tt == dtlsSRTP || isOffer)
		if !isOffer && tt == sdesSRTP {
			switch {
			case useSDES && len(tsec.peerCrypto) > 0:
				useDTLS = false
			case tsec.peerFP != nil && haveDTLS:
				useSDES, useDTLS = false, true
			}
		}
		if !useSDES && !useDTLS {
			return secOut{}, warn, fmt.Errorf("%w: %s towards the other party with neither SDES nor DTLS usable "+
				"(SDES-off, DTLS=off or no certificate)", ErrRewriteSDP, out.proto)
		}
		if useSDES {
			lines, err := c.cryptoTowards(tm, tsec, sdes, isOffer)
			if err != nil {
				return secOut{}, warn, err
			}
			for _, l := range lines {
				out.add = append(out.add, "crypto:"+l)
			}
		}
		if useDTLS {
			fp, err := c.m.fingerprint()
			if err != nil {
				return secOut{}, warn, fmt.Errorf("%w: %w", ErrRewriteSDP, err)
			}
			out.add = append(out.add, "setup:"+c.setupTowards(tm, tsec, opts, isOffer), "fingerprint:"+fp)
		}
	}
	if tt == dtlsSRTP || opts.Flags.GenerateMid {
		// A browser matches its media by a=mid: it must come back, and
		// generate-mid adds one where the SDP has none.
		have := desc.MediaAttributes(i, "mid")
		switch {
		case len(have) > 0:
			out.mid = have[0]
		case tsec.peerMid != "":
			out.add = append(out.add, "mid:"+tsec.peerMid)
			out.mid = tsec.peerMid
		case opts.Flags.GenerateMid || tt == dtlsSRTP:
			out.mid = fmt.Sprintf("%d", i)
			out.add = append(out.add, "mid:"+out.mid)
		}
		out.remove = slices.DeleteFunc(out.remove, func(a string) bool { return a == "mid" })
		if tt == dtlsSRTP {
			out.sessRemove = append(out.sessRemove, "group")
		} else {
			out.mid = ""
		}
	}
	return out, warn, nil
}

// answeredDTLS tells an SDES/DTLS answer that chose DTLS (a fingerprint and
// no crypto line) from one that chose SDES.
func (md *media) answeredDTLS(peer peerParams) bool {
	return peer.peerFP != nil && len(peer.peerCrypto) == 0
}

// keysFromPeer takes the SDES keys of party fm: from its offer, the first
// suite the relay accepts (in the party's order) becomes its receive key and
// the relay answers with a fresh key of that suite; from its answer, the
// tag it chose among the relay's offer.
func (c *Call) keysFromPeer(fm *media, o sdesOptions, isOffer bool) error {
	s := fm.security()
	if !isOffer {
		for _, pc := range s.peerCrypto {
			for _, oc := range s.offered {
				if oc.Tag == pc.Tag && oc.Keys.Suite == pc.Keys.Suite {
					rx, tx := pc.Keys, oc.Keys
					s.rx, s.tx = &rx, &tx
					return c.installSDES(fm)
				}
			}
		}
		return fmt.Errorf("%w: the answer's a=crypto matches no suite the relay offered", ErrIncompleteSDP)
	}
	for _, pc := range s.peerCrypto {
		if !o.acceptable(pc.Keys.Suite) {
			continue
		}
		rx := pc.Keys
		// Keep the relay's key across re-offers with the same suite, so a
		// re-INVITE does not re-key a running call.
		if s.tx == nil || s.tx.Suite != rx.Suite {
			tx, err := webrtc.NewKeys(rx.Suite)
			if err != nil {
				return err
			}
			s.tx = &tx
		}
		s.rx = &rx
		s.offered = []webrtc.Crypto{{Tag: pc.Tag, Keys: *s.tx}}
		return c.installSDES(fm)
	}
	return fmt.Errorf("%w: no a=crypto suite the relay supports", ErrIncompleteSDP)
}

// installSDES sets the keys of an SDES party on its stages.
func (c *Call) installSDES(md *media) error {
	s := md.security()
	if s.rx == nil || s.tx == nil {
		return nil
	}
	s.ensureStages()
	if err := s.unprotect.SetKeys(*s.rx); err != nil {
		return fmt.Errorf("%w: %w", ErrRewriteSDP, err)
	}
	if err := s.protect.SetKeys(*s.tx); err != nil {
		return fmt.Errorf("%w: %w", ErrRewriteSDP, err)
	}
	return nil
}

func (s *security) ensureStages() {
	if s.protect == nil {
		s.protect = webrtc.NewProtect(&s.counters)
		s.unprotect = webrtc.NewUnprotect(&s.counters)
	}
}

// cryptoTowards writes the relay's a=crypto lines for party tm: an offer
// lists every suite the options allow (a fresh key each, kept across
// re-offers); an answer to the party's offer carries the relay's key for the
// suite picked from that offer.
func (c *Call) cryptoTowards(tm *media, s *security, o sdesOptions, isOffer bool) ([]string, error) {
	if !isOffer {
		if err := c.keysFromPeer(tm, o, true); err != nil {
			return nil, err
		}
		return []string{webrtc.FormatCrypto(s.offered[0], o.pad)}, nil
	}
	suites := o.suites()
	if len(suites) == 0 {
		return nil, fmt.Errorf("%w: the SDES options leave no crypto suite to offer", ErrRewriteSDP)
	}
	var next []webrtc.Crypto
	for i, suite := range suites {
		var keys webrtc.Keys
		if j := slices.IndexFunc(s.offered, func(oc webrtc.Crypto) bool { return oc.Keys.Suite == suite }); j >= 0 {
			keys = s.offered[j].Keys
		} else {
			k, err := webrtc.NewKeys(suite)
			if err != nil {
				return nil, err
			}
			keys = k
		}
		next = append(next, webrtc.Crypto{Tag: i + 1, Keys: keys})
	}
	s.offered = next
	lines := make([]string, len(next))
	for i, oc := range next {
		lines[i] = webrtc.FormatCrypto(oc, o.pad)
	}
	return lines, nil
}

// setupTowards is the relay's a=setup towards party tm. An offer says
// actpass and decides nothing: the answer fixes the role, and no handshake
// starts before it (a handshake started in a role the answer then reverses
// never completes). An answer to the party's offer takes the role the
// request asks for (DTLS=passive or active) where the party's setup allows
// it, active otherwise, as browsers and the incumbent do.
func (c *Call) setupTowards(tm *media, s *security, opts *Options, isOffer bool) string {
	if isOffer {
		s.roleFinal = false
		return "actpass"
	}
	switch s.peerSetup {
	case "active":
		s.role = webrtc.Server
	case "passive":
		s.role = webrtc.Client
	default: // actpass or nothing
		s.role = webrtc.Client
		if opts.DTLS == "passive" {
			s.role = webrtc.Server
		}
	}
	s.roleFinal = true
	return s.role.String()
}

// security returns the party's security record, making it on first use.
func (md *media) security() *security {
	if md.sec == nil {
		md.sec = &security{}
	}
	return md.sec
}

// secureStages are the stages of the sockets facing party md: ICE (when the
// relay advertises ICE to it), DTLS (on the socket the handshake runs on)
// and SRTP, per its transport. It (re)starts the DTLS endpoint when the role,
// the peer's fingerprint or the socket changed.
func (c *Call) secureStages(md *media, sock *mplane.Stream, isRTP bool) (handlers, egress []mplane.Stage) {
	s := md.sec
	if s == nil {
		return nil, nil
	}
	t := transportOf(md.advertisedProto)
	if md.advertisedICE && md.ufrag != "" {
		if s.ice == nil || s.ice.Local().Ufrag != md.ufrag {
			s.ice = webrtc.NewICE(webrtc.Credentials{Ufrag: md.ufrag, Pwd: md.pwd}, &s.counters)
		}
		s.ice.SetRemote(s.peerUfrag)
		handlers = append(handlers, s.ice)
	}
	if t == plainRTP {
		return handlers, nil
	}
	s.ensureStages()
	if s.resumed && (s.peerFP == nil || *s.peerFP != s.resumedFP || s.role != s.resumedRole) {
		s.resumed = false // a new fingerprint or role: a new handshake
	}
	useDTLS := s.rx == nil && s.peerFP != nil && s.roleFinal && c.m.identity() != nil && !s.resumed
	if useDTLS && isRTP && sock == md.cur.streams[0].ms {
		if s.dtls == nil || s.dtlsOn != sock || s.dtls.Role() != s.role || s.dtls.Remote() != *s.peerFP || s.dtls.Failed() {
			s.close()
			d, err := webrtc.NewDTLS(webrtc.DTLSConfig{
				Identity: c.m.identity(), Role: s.role, Remote: *s.peerFP, Stream: sock,
				FromDestinationOnly: md.advertisedICE, Counters: &s.counters, Logger: c.m.log.With("call-id", c.id),
				OnKeys: func(local, remote webrtc.Keys) {
					_ = s.protect.SetKeys(local)
					_ = s.unprotect.SetKeys(remote)
					s.dtlsKeys.Store(&[2]webrtc.Keys{local, remote})
					// The keys are the call's state now: a restart or a
					// standby needs them before the next sweep.
					c.m.changed(c.id)
				},
			})
			if err != nil {
				c.m.log.Warn("DTLS endpoint", "call-id", c.id, "error", err)
			} else {
				s.dtls, s.dtlsOn = d, sock
				switch {
				case s.ice == nil:
				case s.role == webrtc.Client && md.advertisedICE:
					// Active behind ICE: the handshake goes to the pair
					// the peer nominates (or has nominated already).
					s.ice.SetOnNominated(d.StartClient)
				default:
					s.ice.SetOnNominated(nil) // not the replaced endpoint's
				}
			}
		}
		if s.dtls != nil {
			handlers = append(handlers, s.dtls)
		}
	}
	handlers = append(handlers, s.unprotect)
	egress = append(egress, s.protect)
	return handlers, egress
}

// startDTLSClient starts an active relay's handshake towards a party without
// ICE, at the address its SDP (now configured on sock) names.
func (c *Call) startDTLSClient(md *media, sock *mplane.Stream) {
	s := md.sec
	if s == nil || s.dtls == nil || s.dtlsOn != sock || s.role != webrtc.Client || md.advertisedICE {
		return
	}
	if dst, ok := sock.Destination(); ok {
		s.dtls.StartClient(net.UDPAddrFromAddrPort(dst))
	}
}

// securityInfo reports the party's security for query; nil when plain.
func (md *media) securityInfo() *SecurityInfo {
	s := md.sec
	if s == nil || (transportOf(md.proto) == plainRTP && transportOf(md.advertisedProto) == plainRTP) {
		return nil
	}
	si := &SecurityInfo{Counters: s.counters.Snapshot()}
	switch {
	case s.rx != nil:
		si.Keying, si.Suite = "SDES", s.rx.Suite.Name
	case s.dtls != nil:
		si.Keying, si.DTLSRole = "DTLS", s.dtls.Role().String()
		switch {
		case s.dtls.Connected():
			si.DTLSState = "connected"
			if suite, err := webrtc.SuiteByProfile(s.dtls.Profile()); err == nil {
				si.Suite = suite.Name
			}
		case s.dtls.Failed():
			si.DTLSState = "failed"
		default:
			si.DTLSState = "handshaking"
		}
	}
	return si
}

// securityTotals sums the security counters of the call's parties; c.mu is
// held.
func (c *Call) securityTotals() webrtc.Snapshot {
	var t webrtc.Snapshot
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			if md.sec != nil {
				t = t.Add(md.sec.counters.Snapshot())
			}
		}
	}
	return t
}
