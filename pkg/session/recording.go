// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mplane "github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/recording"
	"github.com/relayd/relayd/pkg/sdp"
	"github.com/relayd/relayd/pkg/webrtc"
)

// Call recording (recording-dir, pkg/recording). A recorded call has two
// taps on every one of its streams: one first among the stream's Stages,
// which copies what the party sends as it sent it, once SRTP is decrypted
// (a Handler) and before any transform, and one among its Egress stages
// right before SRTP protection, which copies what the relay sends the party. Taps keep a stream in userspace, so starting, pausing or
// stopping a recording re-stages every stream (media.Stream.Reconfigure:
// learned endpoints stay latched) and the fast path takes the streams out
// of the kernel or back. A recording starts with record-call in an offer or
// answer or with "start recording", pauses with "pause recording" (the file
// stays open; "start recording" resumes), and ends with "stop recording",
// record-call=off, or the end of the call.

// recordingOff is the warning for recording asked of a relay without
// recording-dir.
const recordingOff = "recording is off (recording-dir is not set)"

// recordCall reads an offer's or answer's record-call key and flag: +1
// start, -1 stop, 0 nothing asked.
func recordCall(o *Options) int {
	switch strings.ToLower(o.RecordCall) {
	case "yes", "on":
		return 1
	case "no", "off":
		if !o.Flags.RecordCall {
			return -1
		}
	}
	if o.Flags.RecordCall {
		return 1
	}
	return 0
}

// applyRecordCall acts on the record-call of an offer or answer, before its
// media are configured so that new streams get their taps. A paused
// recording stays paused: only "start recording" resumes it (as the
// incumbent does).
func (c *Call) applyRecordCall(opts *Options) {
	if opts.Metadata != "" {
		c.recMetadata = opts.Metadata
	}
	if c.m.cfg.Recorder == nil {
		return
	}
	switch recordCall(opts) {
	case 1:
		if c.rec == nil {
			c.startRecording()
		}
	case -1:
		if c.rec != nil {
			c.stopRecording("record-call=off", false)
		}
	}
}

func (c *Call) startRecording() {
	rec, err := c.m.cfg.Recorder.Start(c.id)
	if err != nil {
		c.m.log.Warn("recording not started", "call-id", c.id, "error", err)
		return
	}
	c.rec = rec
	c.retap()
	c.refreshRecordingMeta()
}

// refreshRecordingMeta hands the recording what the call looks like now, so
// that a recording the Recorder finishes on its own (at a hand-over to
// another relay, at shutdown) still describes the call.
func (c *Call) refreshRecordingMeta() {
	if c.rec != nil {
		c.rec.SetMeta(c.recordingMeta())
	}
}

func (c *Call) stopRecording(why string, discard bool) {
	rec := c.rec
	c.rec = nil
	c.retap()
	rec.SetMeta(c.recordingMeta())
	rec.Stop(why, discard)
}

// finishRecording ends the recording with the call.
func (c *Call) finishRecording(reason endReason) {
	if c.rec != nil {
		c.stopRecording("call ended: "+reason.String(), c.discardRecording)
	}
}

// recordingState is the recording as a call's saved state keeps it.
func (c *Call) recordingState() string {
	switch {
	case c.rec == nil:
		return ""
	case c.rec.Paused():
		return "paused"
	}
	return "on"
}

// continueRecording goes on, in a relay that restored the call, with the
// recording the previous relay was running, in a new file: the previous
// relay finished its own when it stopped.
func (c *Call) continueRecording(state string) {
	if state == "" {
		return
	}
	if c.m.cfg.Recorder == nil {
		c.m.log.Warn("restored call was being recorded; recording not continued: "+recordingOff, "call-id", c.id)
		return
	}
	c.startRecording()
	if state == "paused" && c.rec != nil {
		c.rec.Pause()
		c.retap()
	}
}

// configureStream configures one socket of the call, with the recording's
// taps when the call is recorded, and keeps the configuration without them
// for when the recording changes.
func (c *Call) configureStream(st *streamState, cfg mplane.StreamConfig) {
	st.cfg, st.configured = cfg, true
	st.ms.Configure(c.tapped(cfg))
}

// tapped is cfg with the recording's taps, if the call is being recorded.
func (c *Call) tapped(cfg mplane.StreamConfig) mplane.StreamConfig {
	if c.rec == nil || c.rec.Paused() {
		return cfg
	}
	cfg.Stages = append([]mplane.Stage{c.rec.Ingress()}, cfg.Stages...)
	at := len(cfg.Egress)
	if at > 0 {
		if _, ok := cfg.Egress[at-1].(*webrtc.Protect); ok {
			at-- // the copy is taken before encryption
		}
	}
	cfg.Egress = slices.Insert(slices.Clone(cfg.Egress), at, c.rec.Egress())
	return cfg
}

// retap re-stages every configured socket of the call after the recording
// started, paused, resumed or stopped.
func (c *Call) retap() {
	for _, ml := range c.monos {
		for _, md := range ml.medias {
			for _, ps := range md.sets {
				for _, st := range ps.streams {
					if st.ms != nil && st.configured {
						st.ms.Reconfigure(c.tapped(st.cfg))
					}
				}
			}
		}
	}
}

// recordingMeta describes the call for the recording's metadata file.
func (c *Call) recordingMeta() recording.Meta {
	m := recording.Meta{CallID: c.id, Created: c.created, Metadata: c.recMetadata}
	for _, ml := range c.monos {
		p := recording.Party{Tag: ml.tag, Label: ml.label, Aliases: ml.aliases, ViaBranch: ml.viaBranch}
		if ml.peer != nil {
			p.InDialogueWith = ml.peer.tag
		}
		for _, md := range ml.medias {
			rm := recording.Media{Index: md.index + 1, Type: md.typ, Protocol: md.proto, Codecs: md.sdpCodecs}
			for _, ps := range md.sets {
				for _, st := range ps.streams {
					party := md.sdpRTP
					if st.rtcp {
						party = md.sdpRTCP
					}
					if st.ms != nil {
						if d, ok := st.ms.Destination(); ok {
							party = d
						}
					}
					rm.Streams = append(rm.Streams, recording.Stream{
						Relay: netip.AddrPortFrom(st.local.Addr().Unmap(), st.local.Port()),
						Party: netip.AddrPortFrom(party.Addr().Unmap(), party.Port()), RTCP: st.rtcp})
				}
			}
			p.Medias = append(p.Medias, rm)
		}
		m.Parties = append(m.Parties, p)
	}
	return m
}

// codecsOf lists the payload types of a media as its SDP names them.
func codecsOf(dm *sdp.Media) []recording.Codec {
	var out []recording.Codec
	for _, f := range dm.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		name := ""
		if rm, ok := dm.RTPMaps[uint8(pt)]; ok {
			name = rm.Encoding + "/" + strconv.Itoa(rm.ClockRate)
			if rm.Channels > 1 {
				name += "/" + strconv.Itoa(rm.Channels)
			}
		} else if n, ok := staticName[uint8(pt)]; ok {
			name = n + "/" + strconv.Itoa(int(staticClock[uint8(pt)]))
		}
		out = append(out, recording.Codec{PayloadType: pt, Name: name})
	}
	return out
}

// RecordingInfo is what query shows of a call's recording.
type RecordingInfo struct {
	State string // "recording" or "paused"
	File  string // the pcap file
	recording.RecordingStats
}

func (c *Call) recordingInfo() *RecordingInfo {
	if c.rec == nil {
		return nil
	}
	ri := &RecordingInfo{State: "recording", File: c.rec.Path(), RecordingStats: c.rec.Stats()}
	if c.rec.Paused() {
		ri.State = "paused"
	}
	return ri
}

// RecordingRequest is a start, stop or pause recording command. The whole
// call is recorded: tags, when given, are not checked.
type RecordingRequest struct {
	CallID  string
	FromTag string
	ToTag   string
	Options Options
}

// StartRecording starts recording the call, or resumes a paused recording;
// a call being recorded is left as it is. The warnings say what was not
// done (recording off).
func (m *Manager) StartRecording(r RecordingRequest) ([]string, error) {
	return m.recordingCommand(r, func(c *Call) {
		switch {
		case c.rec == nil:
			c.startRecording()
		case c.rec.Paused():
			c.rec.Resume()
			c.retap()
		}
	})
}

// StopRecording ends the call's recording: the file is closed and the
// metadata file written; the call goes on unrecorded.
func (m *Manager) StopRecording(r RecordingRequest) ([]string, error) {
	return m.recordingCommand(r, func(c *Call) {
		if c.rec != nil {
			c.stopRecording("stop recording", false)
		}
	})
}

// PauseRecording stops taking packets and leaves the file open for a later
// StartRecording.
func (m *Manager) PauseRecording(r RecordingRequest) ([]string, error) {
	return m.recordingCommand(r, func(c *Call) {
		if c.rec != nil && !c.rec.Paused() {
			c.rec.Pause()
			c.retap()
		}
	})
}

func (m *Manager) recordingCommand(r RecordingRequest, do func(*Call)) ([]string, error) {
	c := m.lookup(r.CallID)
	if c == nil {
		return nil, ErrUnknownCall
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return nil, ErrUnknownCall
	}
	if r.Options.Metadata != "" {
		c.recMetadata = r.Options.Metadata
	}
	if m.cfg.Recorder == nil {
		c.mu.Unlock()
		return []string{recordingOff}, nil
	}
	do(c)
	c.mu.Unlock()
	m.changed(c.id) // the saved state says whether the call is recorded
	return nil, nil
}
