// SPDX-License-Identifier: Apache-2.0

package session

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/relayd/relayd/pkg/sdp"
)

// plan decides what the SDP from party from says when it reaches party to.
func (c *Call) plan(from, to *monologue, desc *sdp.Description, opts *Options, isOffer bool, zero []bool, secs []secOut, cods []codecOut) sdp.Plan {
	plan := sdp.Plan{RemoveICE: opts.ICE == "remove", Media: make([]sdp.MediaPlan, len(desc.Media))}
	has := func(list []string, v string) bool { return slices.Contains(list, v) }
	first := -1
	iceLite := false
	for i, dm := range desc.Media {
		fm, tm := from.medias[i], to.medias[i]
		if fm.rejected {
			addr := c.m.pick(to.iface, to.family).advertised
			if tm.cur != nil {
				addr = tm.cur.addr.advertised
			}
			plan.Media[i] = sdp.MediaPlan{Reject: true, Addr: addr}
			continue
		}
		set := tm.cur
		mp := sdp.MediaPlan{Port: set.rtpPort(), Addr: set.addr.advertised}
		if zero[i] && !has(opts.Replace, "zero-address") {
			mp.ZeroAddress = true
			if fm.direction != "inactive" {
				mp.Direction = "sendonly"
			}
		}

		var mux bool
		if isOffer {
			switch {
			case has(opts.RTCPMux, "require"), has(opts.RTCPMux, "offer"):
				mux = true
			case has(opts.RTCPMux, "demux"), has(opts.RTCPMux, "reject"):
				mux = false
			default:
				mux = fm.rtcpMux
			}
		} else {
			// to is the offerer: it gets mux if it offered it and the
			// answering side took it (or relayd terminates the mux itself).
			mux = tm.rtcpMux && !has(opts.RTCPMux, "reject") &&
				(fm.rtcpMux || has(opts.RTCPMux, "accept") || has(opts.RTCPMux, "require") || tm.demuxRequested)
		}
		tm.advertisedMux = mux
		mp.RTCPMux = mux
		rtcpPort := set.rtcpPort()
		if mux && (!isOffer || has(opts.RTCPMux, "require")) {
			rtcpPort = set.rtpPort()
		}
		mp.RTCP = sdp.RTCPPlan{Port: rtcpPort, Omit: opts.Flags.NoRTCPAttribute, Full: opts.Flags.FullRTCPAttribute}

		sec := secs[i]
		// A DTLS-SRTP party is a WebRTC one: it gets ICE unless told not to.
		if opts.ICE == "force" || (opts.ICE != "remove" && (fm.ice || transportOf(sec.proto) == dtlsSRTP)) {
			mp.ICE = tm.icePlan(set, mux)
			mp.ICE.Trickle, mp.ICE.EndOfCandidates = opts.ICETrickle, opts.ICETrickle
			iceLite = true
		}
		tm.advertisedICE = mp.ICE != nil
		if sec.proto != "" && sec.proto != dm.Proto {
			mp.Proto = sec.proto
		}
		mp.AddAttributes = sec.add
		mp.RemoveAttributes = sec.remove
		for _, a := range sec.sessRemove {
			if !slices.Contains(plan.RemoveSessionAttributes, a) {
				plan.RemoveSessionAttributes = append(plan.RemoveSessionAttributes, a)
			}
		}
		cod := cods[i]
		mp.Formats, mp.FormatAttributes, mp.OwnFormatLines, mp.PTime = cod.formats, cod.attrs, cod.own, cod.ptime
		if cod.reject {
			mp = sdp.MediaPlan{Reject: true, Addr: mp.Addr}
		}
		plan.Media[i] = mp
		if first < 0 {
			first = i
		}
	}

	if first >= 0 {
		mp := plan.Media[first]
		plan.SessionConnection = mp.Addr
		if mp.ZeroAddress {
			plan.SessionConnection = netip.IPv4Unspecified()
			if mp.Addr.Is6() {
				plan.SessionConnection = netip.IPv6Unspecified()
			}
		}
		if has(opts.Replace, "origin") || has(opts.Replace, "origin-full") {
			plan.Origin.Addr = mp.Addr
		}
	}
	if has(opts.Replace, "origin-full") {
		if to.outSessID == "" {
			to.outSessID = strconv.FormatUint(uint64(randUint32()), 10)
		}
		plan.Origin.Username, plan.Origin.SessionID = "-", to.outSessID
	}
	if has(opts.Replace, "username") {
		if to.outUsername == "" {
			to.outUsername = desc.Origin.Username
		}
		plan.Origin.Username = to.outUsername
	}
	if has(opts.Replace, "session-name") {
		if to.outSession == "" {
			to.outSession = desc.SessionName
		}
		plan.SessionName = to.outSession
	}
	for i := range secs {
		if secs[i].mid != "" && !plan.Media[i].Reject {
			plan.AddSessionAttributes = append(plan.AddSessionAttributes, "group:BUNDLE "+secs[i].mid)
		}
	}
	if iceLite {
		// The relay answers checks and never sends any (RFC 8445 §2.5).
		plan.AddSessionAttributes = append(plan.AddSessionAttributes, "ice-lite")
		plan.RemoveSessionAttributes = slices.DeleteFunc(plan.RemoveSessionAttributes,
			func(a string) bool { return a == "ice-lite" })
	}
	if opts.Flags.LoopProtect {
		plan.AddSessionAttributes = append(plan.AddSessionAttributes, "rtpengine:"+c.m.instance())
	}
	return plan
}

// rewrite applies plan and the SDP-version rules for the SDP sent to party to.
func (c *Call) rewrite(to *monologue, desc *sdp.Description, plan sdp.Plan, opts *Options) ([]byte, error) {
	out, err := desc.Rewrite(plan)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRewriteSDP, err)
	}
	force := slices.Contains(opts.Replace, "force-increment-sdp-ver")
	if force || slices.Contains(opts.Replace, "SDP-version") || slices.Contains(opts.Replace, "origin-full") {
		switch {
		case to.lastOut == nil:
			v, _ := strconv.ParseUint(desc.Origin.Version, 10, 64)
			to.outVersion = v
		case force || !sdp.EqualIgnoringOrigin(out, to.lastOut):
			to.outVersion++
		}
		plan.Origin.Version = strconv.FormatUint(to.outVersion, 10)
		if out, err = desc.Rewrite(plan); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrRewriteSDP, err)
		}
	}
	if len(out) > MaxSDPOut {
		return nil, fmt.Errorf("%w: %w", ErrRewriteSDP, &sdp.LimitError{What: "bytes of rewritten SDP", Max: MaxSDPOut, Got: len(out)})
	}
	to.lastOut = out
	return out, nil
}

// MaxSDPOut is the largest SDP the relay sends back: with the reply's
// envelope and warnings it must fit one ng reply datagram (65,507 bytes),
// or the proxy would never get it.
const MaxSDPOut = 60 << 10

// icePlan advertises relayd as the only (host) candidate of this party's ports,
// with credentials that stay stable across re-INVITEs.
func (md *media) icePlan(set *portSet, mux bool) *sdp.ICEPlan {
	if md.ufrag == "" {
		md.ufrag, md.pwd = randAlnum(8), randAlnum(26)
	}
	prio := uint32(2130706431)
	if set.addr.advertised.Is6() {
		prio -= 256 // one local-preference step below IPv4, as the reference does
	}
	foundation := md.ufrag + md.pwd[:8]
	addr := set.addr.advertised.String()
	cands := []string{fmt.Sprintf("candidate:%s 1 UDP %d %s %d typ host", foundation, prio, addr, set.rtpPort())}
	if !mux && len(set.alloc.Sockets) > 1 {
		cands = append(cands, fmt.Sprintf("candidate:%s 2 UDP %d %s %d typ host", foundation, prio-1, addr, set.rtcpPort()))
	}
	return &sdp.ICEPlan{Ufrag: md.ufrag, Pwd: md.pwd, Candidates: cands}
}

const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randAlnum(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
