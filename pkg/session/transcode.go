// SPDX-License-Identifier: Apache-2.0

package session

import (
	"strconv"
	"strings"

	"github.com/relayd/relayd/pkg/codecs"
	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/transcode"
)

// Transcoders makes the bridges of transcoded media (transcode.Pool).
type Transcoders interface {
	NewBridge(cfg transcode.BridgeConfig) (*transcode.Bridge, error)
}

// bridged is the transcoding bridge of one media of a call, shared by the
// media of its two parties.
type bridged struct {
	b   *transcode.Bridge
	cfg *codecs.Transcoding
	// streams the bridge was built on: another port set (a re-INVITE)
	// needs another bridge.
	rtp  [2]*mplane.Stream
	rtcp [2]*mplane.Stream
}

// transcodeSide is md's side of its bridge: 0 for the offerer's.
func transcodeSide(md *media) int {
	if md.transcodeOfferer {
		return 0
	}
	return 1
}

// rtcpStream is the stream that carries RTCP to and from md's party: its
// RTCP socket, or the RTP one when the party multiplexes.
func rtcpStream(md *media) *mplane.Stream {
	st := md.cur.streams
	if len(st) > 1 && !(md.rtcpMux && md.advertisedMux) {
		return st[1].ms
	}
	return st[0].ms
}

// updateBridge makes the bridge between fm and tm match their
// negotiation: built when the two share no codec, rebuilt when the codecs
// or the sockets changed, closed when they share one again. c.mu is held;
// building one neither blocks nor waits for a media worker.
func (c *Call) updateBridge(fm, tm *media, opts *Options) {
	cfg := fm.transcoding
	if cfg == nil || cfg != tm.transcoding || c.m.cfg.Transcoders == nil || fm.cur == nil || tm.cur == nil {
		closeBridge(fm, tm)
		return
	}
	sides := [2]*media{fm, tm}
	if transcodeSide(fm) != 0 {
		sides = [2]*media{tm, fm}
	}
	if b := fm.bridge; b != nil && b == tm.bridge && b.cfg == cfg &&
		b.rtp == [2]*mplane.Stream{sides[0].cur.streams[0].ms, sides[1].cur.streams[0].ms} &&
		b.rtcp == [2]*mplane.Stream{rtcpStream(sides[0]), rtcpStream(sides[1])} {
		return
	}
	closeBridge(fm, tm)
	bc := transcode.BridgeConfig{CallID: c.id, DetectDTMF: c.detectDTMF}
	legs := [2]codecs.Leg{cfg.Offerer, cfg.Answerer}
	nb := &bridged{cfg: cfg}
	for i, md := range sides {
		nb.rtp[i], nb.rtcp[i] = md.cur.streams[0].ms, rtcpStream(md)
		bc.Sides[i] = transcode.BridgeSide{Leg: legOf(legs[i]), RTP: nb.rtp[i], RTCP: nb.rtcp[i],
			Bitrate: bitrateFor(cfg.Set, legs[i].Audio)}
	}
	b, err := c.m.cfg.Transcoders.NewBridge(bc)
	if err != nil {
		// Negotiation asked the same registry: only a codec that failed
		// to start (out of memory, a broken libopus) gets here.
		c.m.log.Error("transcoding not started: the call's media is not transcoded", "call-id", c.id,
			"offerer", legs[0].Audio.String(), "answerer", legs[1].Audio.String(), "error", err)
		return
	}
	nb.b = b
	fm.bridge, tm.bridge = nb, nb
}

// closeBridge takes the bridge of a media pair down (never waiting).
func closeBridge(mds ...*media) {
	for _, md := range mds {
		if md.bridge != nil {
			md.bridge.b.Close()
			md.bridge = nil
		}
	}
}

// transcodeStages are the stages of the stream facing md on its bridge:
// RTP, or RTCP for the RTCP socket of a party that does not multiplex.
func transcodeStages(md *media, rtcp bool) []mplane.Stage {
	if md.bridge == nil {
		return nil
	}
	side := transcodeSide(md)
	if rtcp {
		return []mplane.Stage{md.bridge.b.RTCPStage(side)}
	}
	return []mplane.Stage{md.bridge.b.RTPStage(side)}
}

func legOf(l codecs.Leg) transcode.Leg {
	out := transcode.Leg{
		Format: transcode.Format{Name: l.Audio.Name, ClockRate: l.Audio.Rate, Channels: l.Audio.Channels, Fmtp: l.Audio.Fmtp},
		PT:     l.Audio.PT, PTime: l.PTime,
	}
	if e := l.DTMF; e != nil {
		out.Events = &transcode.EventFormat{PT: e.PT, ClockRate: e.Rate, Fmtp: e.Fmtp}
	}
	if cn := l.CN; cn != nil {
		out.CN = &transcode.CNFormat{PT: cn.PT}
	}
	return out
}

// bitrateFor is the bit rate a codec-set option gives f (0: the default).
func bitrateFor(set []codecs.Spec, f codecs.Format) int {
	for _, sp := range set {
		if sp.Bitrate > 0 && sp.Matches(f) {
			return sp.Bitrate
		}
	}
	return 0
}

// TranscodeCapability is the codecs.Capability of a transcode registry:
// what relayd can both decode and encode in this build.
func TranscodeCapability(r *transcode.Registry) codecs.Capability {
	return func(f codecs.Format) error {
		if f.Supplementary() {
			return nil
		}
		return r.Check(transcode.Format{Name: f.Name, ClockRate: f.Rate, Channels: f.Channels, Fmtp: f.Fmtp})
	}
}

// TranscodeInfo is what query shows of a transcoded party.
type TranscodeInfo struct {
	Receives, Sends string // codecs, "opus/48000/2"
	In, Out         uint64 // packets from and to the party through the transcoder
	Concealed       uint64
	Events          uint64
	Errors          map[string]uint64
}

func (md *media) transcodeInfo() *TranscodeInfo {
	if md.bridge == nil {
		return nil
	}
	st := md.bridge.b.Stats().Sides[transcodeSide(md)]
	ti := &TranscodeInfo{Receives: st.CodecReceived, Sends: st.CodecSent, In: st.In, Out: st.Out,
		Concealed: st.Concealed, Events: st.Events}
	if n := st.Errors.Total(); n > 0 {
		ti.Errors = st.Errors.ByReason()
	}
	return ti
}

// codecOf is the codec a party's media speaks, as SDP names it ("PCMU/8000"),
// "" when unknown.
func (md *media) codecOf() string {
	if md.transcoding != nil {
		l := md.transcoding.Answerer
		if md.transcodeOfferer {
			l = md.transcoding.Offerer
		}
		return l.Audio.Name + "/" + strconv.Itoa(l.Audio.Rate)
	}
	return md.firstCodec
}

// firstCodecOf names the first codec of a format list, skipping
// telephone-event and comfort noise.
func firstCodecOf(fs []codecs.Format) string {
	for _, f := range fs {
		if !f.Supplementary() {
			return f.Name + "/" + strconv.Itoa(f.Rate)
		}
	}
	if len(fs) > 0 {
		return strings.TrimSpace(fs[0].Name)
	}
	return ""
}
