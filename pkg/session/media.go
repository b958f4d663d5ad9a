// SPDX-License-Identifier: Apache-2.0

package session

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	mplane "github.com/relayd/relayd/pkg/media"
)

// MediaPlane forwards the packets of the sockets a call owns. The userspace
// engine (media.Engine) implements it; without one, sockets are bound but
// carry nothing (signalling-only tests).
type MediaPlane interface {
	// NewGroup places a call: its sockets share a worker.
	NewGroup() mplane.Group
	// Attach takes the socket over; closed is called once it is closed.
	// It never waits for a media worker.
	Attach(g mplane.Group, sock mplane.Socket, closed func()) (*mplane.Stream, error)
	// Totals are the running sums the per-second rates come from.
	Totals() mplane.Totals
}

// streamState is one local socket of a port set.
type streamState struct {
	local netip.AddrPort
	rtcp  bool
	ms    *mplane.Stream // nil without a media plane
	// cfg is the socket's configuration without recording taps, kept for
	// when a recording starts or stops (recording.go).
	cfg        mplane.StreamConfig
	configured bool
}

// attach hands the set's sockets to the media plane, which closes them after
// Detach and gives the slot back to the pool once the last is closed.
func (c *Call) attach(ps *portSet) error {
	for i, sock := range ps.alloc.Sockets {
		st := &streamState{local: sock.Local, rtcp: i == 1}
		ps.streams = append(ps.streams, st)
		if c.m.cfg.Media == nil {
			continue
		}
		ms, err := c.m.cfg.Media.Attach(c.group, mplane.Socket{FD: sock.FD, Local: sock.Local}, ps.alloc.SocketClosed)
		if err != nil {
			return fmt.Errorf("attach %s: %w", sock.Local, err)
		}
		ps.alloc.HandOver(i)
		st.ms = ms
		if c.tos >= 0 {
			if err := ms.SetTOS(c.tos); err != nil {
				c.m.log.Warn("set TOS", "call-id", c.id, "tos", c.tos, "error", err)
			}
		}
	}
	return nil
}

// releaseSet stops forwarding on the set's sockets and lets them close: the
// media plane closes the ones it took, the rest close here.
func (c *Call) releaseSet(ps *portSet) {
	for _, st := range ps.streams {
		if st.ms != nil {
			st.ms.Detach()
		}
	}
	ps.alloc.Close()
}

// learningFlags are the endpoint-learning choices of a call. They stick once a
// signal sets them: a SIP proxy sends them with the offer, not always again.
type learningFlags struct {
	mode                         mplane.LearningMode
	strict, asymmetric, handover bool
}

func (c *Call) updateLearning(opts *Options) {
	if opts.EndpointLearning != "" {
		if mode, err := mplane.ParseLearningMode(opts.EndpointLearning); err == nil {
			c.learning.mode = mode
		} else {
			c.m.lim.Log(slog.LevelWarn, "unknown endpoint-learning, keeping the current mode", "unknown mode",
				netip.Addr{}, "call-id", c.id, "value", opts.EndpointLearning)
		}
	}
	c.learning.strict = c.learning.strict || opts.Flags.StrictSource
	c.learning.asymmetric = c.learning.asymmetric || opts.Flags.Asymmetric
	c.learning.handover = c.learning.handover || opts.Flags.MediaHandover
}

// configureMedia points the sockets of both parties of one media at each
// other; it runs on every signal, which restarts learning on both sides as the
// reference does.
func (c *Call) configureMedia(fm, tm *media, opts *Options) {
	if c.m.cfg.Media == nil || fm.cur == nil || tm.cur == nil {
		return
	}
	if opts != nil && opts.Flags.DetectDTMF {
		c.detectDTMF = true
	}
	c.updateBridge(fm, tm, opts)
	for _, ps := range fm.sets {
		c.configureSet(ps, fm, tm)
	}
	for _, ps := range tm.sets {
		c.configureSet(ps, tm, fm)
	}
}

// configureSet configures the sockets of ps, which face the party of md, to
// forward to the current sockets facing the party of other.
func (c *Call) configureSet(ps *portSet, md, other *media) {
	sink := other.cur.streams
	peer := md.sdpRTP
	if md.rejected {
		peer = netip.AddrPort{}
	}
	base := mplane.StreamConfig{
		Learning: c.learning.mode, StrictSource: c.learning.strict,
		Asymmetric: c.learning.asymmetric, MediaHandover: c.learning.handover,
		ClockRates: md.clockRates,
	}
	rtp := base
	rtp.Sink, rtp.Peer = sink[0].ms, peer
	rtp.Handlers, rtp.Egress = c.secureStages(md, ps.streams[0].ms, true)
	if ps == md.cur {
		rtp.Stages = transcodeStages(md, false)
	}
	// This party multiplexes RTCP onto RTP and the other does not: its RTCP
	// leaves by the other side's RTCP socket (rtcp-mux demux).
	if md.rtcpMux && md.advertisedMux && len(sink) > 1 && !(other.rtcpMux && other.advertisedMux) {
		rtp.RTCPSink = sink[1].ms
	}
	c.configureStream(ps.streams[0], rtp)
	c.startDTLSClient(md, ps.streams[0].ms)
	if len(ps.streams) < 2 {
		return
	}
	// RTCP goes to the other party's RTCP socket, or its RTP socket when
	// that party multiplexes RTCP onto RTP.
	rtcp := base
	rtcp.RTCP = true
	rtcp.Sink = sink[0].ms
	if len(sink) > 1 && !(other.rtcpMux && other.advertisedMux) {
		rtcp.Sink = sink[1].ms
	}
	rtcp.Peer = md.sdpRTCP
	if md.rejected {
		rtcp.Peer = netip.AddrPort{}
	}
	rtcp.Handlers, rtcp.Egress = c.secureStages(md, ps.streams[1].ms, false)
	if ps == md.cur {
		rtcp.Stages = transcodeStages(md, true)
	}
	c.configureStream(ps.streams[1], rtcp)
}

// setTOS applies the call's TOS to every socket.
func (c *Call) setTOS() {
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			for _, ps := range md.sets {
				for _, st := range ps.streams {
					if st.ms != nil {
						if err := st.ms.SetTOS(c.tos); err != nil {
							c.m.log.Warn("set TOS", "call-id", c.id, "tos", c.tos, "error", err)
						}
					}
				}
			}
		}
	}
}

func (st *streamState) stats() mplane.StreamStats {
	if st.ms == nil {
		return mplane.StreamStats{}
	}
	return st.ms.Stats()
}

// received is the cheap read of what the party sent (no SSRC snapshot).
func (st *streamState) received() (mplane.Counters, uint64) {
	if st.ms == nil {
		return mplane.Counters{}, 0
	}
	in, _, dropped := st.ms.Received()
	return in, dropped
}

func (st *streamState) info(md *media) StreamInfo {
	local := st.local
	si := StreamInfo{Local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), RTCP: st.rtcp}
	si.AdvertisedEndpoint = md.sdpRTP
	if st.rtcp {
		si.AdvertisedEndpoint = md.sdpRTCP
	}
	if md.cur != nil {
		si.Advertised = md.cur.addr.advertised
	}
	si.Flags = []string{"RTP"}
	if st.rtcp {
		si.Flags = []string{"RTCP"}
	}
	s := st.stats()
	si.Endpoint = s.Endpoint
	if !si.Endpoint.IsValid() {
		si.Endpoint = si.AdvertisedEndpoint
	}
	if s.Confirmed {
		si.Flags = append(si.Flags, "confirmed")
	}
	if s.Kernel {
		si.Flags = append(si.Flags, "kernelized")
	}
	si.In = Counters{Packets: s.In.Packets, Bytes: s.In.Bytes, Errors: s.In.Errors + s.Dropped}
	si.Out = Counters{Packets: s.Out.Packets, Bytes: s.Out.Bytes, Errors: s.Out.Errors}
	si.LastPacket = s.In.LastPacket
	si.KernelPackets = s.KernelIn.Packets
	si.LastKernelPacket = s.KernelIn.LastPacket
	if s.In.Packets > s.KernelIn.Packets {
		si.LastUserPacket = s.In.LastPacket // userspace saw the newest unless the kernel did
		if !s.KernelIn.LastPacket.Before(s.In.LastPacket) {
			si.LastUserPacket = time.Time{}
		}
	}
	for _, x := range s.SSRCs {
		si.SSRCs = append(si.SSRCs, SSRCInfo{SSRC: x.SSRC, Packets: x.Packets, Lost: x.Lost,
			Duplicates: x.Duplicates, Reordered: x.Reordered, JitterMs: x.JitterMs, MOS: x.MOS})
	}
	for _, r := range s.Reports {
		si.Reports = append(si.Reports, ReportInfo{SSRC: r.SSRC, FractionLost: r.FractionLost, JitterMs: r.JitterMs,
			RTTLegMs: r.RTTLegMs, At: r.At, MOS: r.MOS, MOSAvg: r.MOSAvg, MOSMin: r.MOSMin, MOSMax: r.MOSMax,
			Samples: r.Samples})
	}
	return si
}

// dialoguePairs reports, per media of each dialogue, whether each side sent
// anything (for the zero-way/one-way stream counts).
func (c *Call) dialoguePairs() (pairs [][2]bool) {
	seen := map[*monologue]bool{}
	for _, ml := range c.monos {
		if ml.peer == nil || seen[ml] || seen[ml.peer] {
			continue
		}
		seen[ml], seen[ml.peer] = true, true
		for i, md := range ml.medias {
			var got [2]bool
			for side, m := range []*media{md, peerMedia(ml.peer, i)} {
				if m != nil && m.received() {
					got[side] = true
				}
			}
			pairs = append(pairs, got)
		}
	}
	return pairs
}

// received reports whether any socket facing the party got a packet.
func (md *media) received() bool {
	for _, ps := range md.sets {
		for _, st := range ps.streams {
			if in, _ := st.received(); in.Packets > 0 {
				return true
			}
		}
	}
	return false
}

func peerMedia(ml *monologue, i int) *media {
	if ml == nil || i >= len(ml.medias) {
		return nil
	}
	return ml.medias[i]
}

// lastPacket is the newest packet received from the party, or since when the
// wait counts if none came after it.
func (md *media) lastPacket(since time.Time) time.Time {
	last := since
	for _, ps := range md.sets {
		for _, st := range ps.streams {
			if in, _ := st.received(); in.LastPacket.After(last) {
				last = in.LastPacket
			}
		}
	}
	return last
}

// collectTotals adds the ending call's counters to the manager's totals.
func (c *Call) collectTotals() {
	live := c.liveCounters()
	sec := c.securityTotals()
	pairs := c.dialoguePairs()
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	t := &c.m.totals
	t.relayedPackets += live.packets
	t.relayedBytes += live.bytes
	t.relayedErrors += live.errors
	t.relayedPacketsKernel += live.kernelPackets
	t.relayedBytesKernel += live.kernelBytes
	t.security = t.security.Add(sec)
	for _, p := range pairs {
		switch {
		case !p[0] && !p[1]:
			t.zeroWayStreams++
		case p[0] != p[1]:
			t.oneWayStreams++
		}
	}
}

// liveCounters sums what the call's sockets received; c.mu must be held.
func (c *Call) liveCounters() liveTotals {
	var l liveTotals
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			if md.bridge != nil && md.transcodeOfferer {
				l.transcoded++ // once per bridge: its offerer's side
			}
			for _, ps := range md.sets {
				for _, st := range ps.streams {
					if st.ms == nil {
						continue
					}
					in, kern, dropped := st.ms.Received()
					l.packets += in.Packets
					l.bytes += in.Bytes
					l.kernelPackets += kern.Packets
					l.kernelBytes += kern.Bytes
					l.errors += in.Errors + dropped
					if st.ms.InKernel() {
						l.kernelStreams++
					} else {
						l.streams++
					}
				}
			}
		}
	}
	return l
}
