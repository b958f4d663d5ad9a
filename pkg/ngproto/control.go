// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	stdstrings "strings"
	"time"

	"github.com/relayd/relayd/pkg/lograte"
	"github.com/relayd/relayd/pkg/session"
)

// notFoundWarning is the reference's text for a delete that matched nothing.
const notFoundWarning = "Call-ID not found or tags didn't match"

// Control answers ng commands with the session manager: it is the Handler the
// server runs in production.
type Control struct {
	mgr    *session.Manager
	log    *slog.Logger
	lim    *lograte.Limiter   // lines any proxy's requests can trigger
	server func() ServerStats // control statistics; nil until a server is attached
}

// NewControl returns the command dispatcher for mgr.
func NewControl(mgr *session.Manager, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "control")
	return &Control{mgr: mgr, log: log, lim: lograte.New(log, lograte.Config{})}
}

// AttachServer lets statistics report the server's per-proxy counters.
func (c *Control) AttachServer(s *Server) { c.server = s.Stats }

// HandleNG runs one command.
func (c *Control) HandleNG(_ context.Context, req *Request, from netip.AddrPort) Reply {
	switch req.Command {
	case "ping":
		return Pong()
	case "offer", "answer":
		return c.offerAnswer(req, from)
	case "delete":
		return c.delete(req)
	case "query":
		return c.query(req)
	case "list":
		limit := req.Limit
		if limit <= 0 {
			limit = 32
		}
		return OK(F("calls", Strings(c.mgr.List(limit))))
	case "statistics":
		return OK(F("statistics", c.statistics()))
	case "start recording", "stop recording", "pause recording":
		return c.recording(req)
	default:
		return ErrorReply(ReasonUnknownCommand)
	}
}

func (c *Control) offerAnswer(req *Request, from netip.AddrPort) Reply {
	// The reference validates in this order; clients match on the texts.
	switch {
	case !req.HasSDP:
		return ErrorReply(ReasonNoSDP)
	case req.CallID == "":
		return ErrorReply(ReasonNoCallID)
	case req.FromTag == "":
		return ErrorReply(ReasonNoFromTag)
	case req.Command == "answer" && req.ToTag == "":
		return ErrorReply(ReasonNoToTag)
	}
	sig := session.Signal{CallID: req.CallID, FromTag: req.FromTag, ToTag: req.ToTag,
		ViaBranch: req.ViaBranch, SDP: req.SDP, Options: req.Options}
	var out session.Outcome
	var err error
	if req.Command == "offer" {
		out, err = c.mgr.OfferOutcome(sig)
	} else {
		out, err = c.mgr.AnswerOutcome(sig)
	}
	if err != nil {
		c.lim.Log(slog.LevelWarn, req.Command+" failed", failKind(err), from.Addr(),
			"call-id", req.CallID, "from-tag", req.FromTag, "error", err)
		if errors.Is(err, session.ErrLoadLimit) && req.SupportsLoadLimit() {
			// As the incumbent: the proxy fails over without counting an error.
			return LoadLimit(reason(err))
		}
		return ErrorReply(reason(err))
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug(req.Command+" done", "call-id", req.CallID, "from-tag", req.FromTag, "to-tag", req.ToTag)
	}
	// For the CLI's proxy column and the b2b-url's %%.
	c.mgr.NoteOrigin(req.CallID, from)
	rep := OK(F("sdp", Bytes(out.SDP)))
	if len(out.Recordings) > 0 {
		rep = rep.With("recordings", Strings(out.Recordings))
	}
	if w := warnings(req, out.Warnings); w != "" {
		rep = rep.WithWarning(w)
	}
	return rep
}

func (c *Control) delete(req *Request) Reply {
	if req.CallID == "" {
		return ErrorReply(ReasonNoCallID)
	}
	info, err := c.mgr.Delete(session.DeleteRequest{CallID: req.CallID, FromTag: req.FromTag,
		ToTag: req.ToTag, ViaBranch: req.ViaBranch, Options: req.Options})
	if errors.Is(err, session.ErrUnknownCall) || errors.Is(err, session.ErrDialogue) {
		if req.Flags.Fatal {
			return ErrorReply(notFoundWarning)
		}
		return OK(F("warning", Str(notFoundWarning)))
	}
	if err != nil {
		return ErrorReply(reason(err))
	}
	if c.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log.Debug("delete done", "call-id", req.CallID, "from-tag", req.FromTag)
	}
	if info == nil {
		return OK()
	}
	return callReply(info)
}

// recording runs start, stop and pause recording on the whole call.
func (c *Control) recording(req *Request) Reply {
	if req.CallID == "" {
		return ErrorReply(ReasonNoCallID)
	}
	r := session.RecordingRequest{CallID: req.CallID, FromTag: req.FromTag, ToTag: req.ToTag, Options: req.Options}
	var w []string
	var err error
	switch req.Command {
	case "start recording":
		w, err = c.mgr.StartRecording(r)
	case "stop recording":
		w, err = c.mgr.StopRecording(r)
	default:
		w, err = c.mgr.PauseRecording(r)
	}
	if err != nil {
		return ErrorReply(reason(err))
	}
	rep := OK()
	if s := warnings(req, w); s != "" {
		rep = rep.WithWarning(s)
	}
	return rep
}

func (c *Control) query(req *Request) Reply {
	if req.CallID == "" {
		return ErrorReply(ReasonNoCallID)
	}
	info, err := c.mgr.Query(req.CallID, req.FromTag, req.ToTag)
	if err != nil {
		return ErrorReply(reason(err))
	}
	return callReply(info)
}

// reason maps session errors to the reference's error texts.
func reason(err error) string {
	switch {
	case errors.Is(err, session.ErrNoPorts):
		return ReasonOutOfPorts
	case errors.Is(err, session.ErrSessionLimit):
		return ReasonSessionLimit
	case errors.Is(err, session.ErrUnknownCall):
		return ReasonUnknownCallID
	case errors.Is(err, session.ErrDialogue):
		return ReasonDialogue
	case errors.Is(err, session.ErrParseSDP):
		return ReasonParseSDP + limitDetail(err)
	case errors.Is(err, session.ErrIncompleteSDP):
		return ReasonIncompleteSDP
	case errors.Is(err, session.ErrRewriteSDP):
		return ReasonRewriteSDP + limitDetail(err)
	}
	return "Internal error: " + err.Error()
}

// The reply builders below list each dictionary's keys in the order they
// are encoded (byte-wise sorted), which saves Dict the sort; the order is
// not what makes them correct, Dict sorts whatever it gets.

// callReply renders a call the way the reference's query and delete
// replies do.
func callReply(ci *session.CallInfo) Reply {
	var names addrNames
	// One block holds the whole tree for a call of common size: a stream
	// takes about 30 fields, a media 6 and a party 8.
	size, nssrc := 16, 0
	for _, t := range ci.Tags {
		size += 8
		for _, md := range t.Medias {
			size += 6 + 30*len(md.Streams)
			for _, st := range md.Streams {
				size += 7 * len(st.SSRCs)
				nssrc += len(st.SSRCs)
			}
		}
	}
	// What the parties reported over RTCP, by the source reported on: the
	// MOS of that source as its receiver heard it (the most sampled report
	// when several streams saw the same source).
	reports := map[uint32]reportOf{}
	for _, t := range ci.Tags {
		for _, md := range t.Medias {
			for _, st := range md.Streams {
				for _, r := range st.Reports {
					if old, ok := reports[r.SSRC]; !ok || r.Samples > old.r.Samples {
						reports[r.SSRC] = reportOf{r: r, sender: t.InDialogueWith}
					}
				}
			}
		}
	}
	a := arena{block: make([]Field, 0, size+7*nssrc+40*len(reports))}
	tags := a.reserve(len(ci.Tags))
	ssrcs := a.reserve(nssrc + len(reports))[:0]
	seen := map[uint32]bool{}
	untagged := 0
	for ti, t := range ci.Tags {
		key := t.Tag
		if key == "" {
			key = "<untagged " + strconv.Itoa(untagged) + ">"
			untagged++
		}
		medias := a.reserve(len(t.Medias))
		for mi, md := range t.Medias {
			streams := a.reserve(len(md.Streams))
			for si, st := range md.Streams {
				streams[si].Value = streamTree(&a, &names, st)
				for _, q := range st.SSRCs {
					seen[q.SSRC] = true
					rep, ok := reports[q.SSRC]
					ssrcs = append(ssrcs, F(strconv.FormatUint(uint64(q.SSRC), 10), a.dict(append([]Field{
						F("duplicates", Uint(q.Duplicates)),
						F("jitter", Str(strconv.FormatFloat(q.JitterMs, 'f', 3, 64))),
						F("packets", Uint(q.Packets)),
						F("packets lost", Int(q.Lost)),
						F("relay MOS", Int(int64(q.MOS*10+0.5))),
						F("reordered", Uint(q.Reordered)),
						F("tag", Str(t.Tag)),
					}, mosFields(&a, rep, ok)...)...)))
				}
			}
			medias[mi].Value = a.dict(
				F("codec", optStr(md.Codec)),
				F("flags", a.strings(md.Flags)),
				F("index", Int(int64(md.Index))),
				F("protocol", Str(md.Protocol)),
				F("security", securityTree(&a, md.Security)),
				F("streams", Value{kind: KindList, items: streams}),
				F("transcoding", transcodeTree(&a, md.Transcoding)),
				F("type", Str(md.Type)),
			)
		}
		var aliases Value
		if len(t.Aliases) > 0 {
			aliases = a.strings(t.Aliases)
		}
		tags[ti] = F(key, a.dict(
			F("created", Int(t.Created.Unix())),
			F("in dialogue with", Str(t.InDialogueWith)),
			F("label", optStr(t.Label)),
			F("medias", Value{kind: KindList, items: medias}),
			F("tag", Str(t.Tag)),
			F("tag-aliases", aliases),
			F("via-branch", optStr(t.ViaBranch)),
		))
	}
	// Sources only reported on (kernel-forwarded: the relay kept no RTP
	// statistics of its own for them).
	for ssrc, rep := range reports {
		if !seen[ssrc] {
			ssrcs = append(ssrcs, F(strconv.FormatUint(uint64(ssrc), 10),
				a.dict(append([]Field{F("tag", Str(rep.sender))}, mosFields(&a, rep, true)...)...)))
		}
	}
	return NewReply(
		F("SSRC", Value{kind: KindDict, items: sortFields(ssrcs)}),
		F("created", Int(ci.Created.Unix())),
		F("created_us", Int(int64(ci.Created.Nanosecond()/1000))),
		F("last signal", Int(ci.LastSignal.Unix())),
		F("recording", recordingTree(ci.Recording)),
		F("tags", Value{kind: KindDict, items: sortFields(tags)}),
		F("totals", a.dict(
			F("RTCP", counters(&a, ci.RTCP)),
			F("RTP", counters(&a, ci.RTP)),
		)),
		F("result", okResult),
	)
}

// recordingTree is a call's recording in query and delete: its state, the
// pcap file and what was written, dropped (queue full) and lost to the file;
// Null (left out) when the call is not recorded.
func recordingTree(r *session.RecordingInfo) Value {
	if r == nil {
		return Value{}
	}
	return Dict(
		F("bytes", Uint(r.Bytes)),
		F("dropped", Uint(r.Dropped)),
		F("failed", Uint(r.Failed)),
		F("file", Str(r.File)),
		F("packets", Uint(r.Packets)),
		F("state", Str(r.State)),
	)
}

// addrNames prints each address of one reply once: a call's streams share
// a handful of addresses.
type addrNames struct {
	n     int
	addrs [8]netip.Addr
	names [8]string
}

func (c *addrNames) name(a netip.Addr) string {
	for i := range c.n {
		if c.addrs[i] == a {
			return c.names[i]
		}
	}
	s := a.String()
	if c.n < len(c.addrs) {
		c.addrs[c.n], c.names[c.n] = a, s
		c.n++
	}
	return s
}

func streamTree(a *arena, names *addrNames, st session.StreamInfo) Value {
	var advertised, ssrcs Value
	if st.Advertised.IsValid() {
		advertised = Str(names.name(st.Advertised))
	}
	if len(st.SSRCs) > 0 {
		list := a.reserve(len(st.SSRCs))
		for i, s := range st.SSRCs {
			list[i].Value = a.dict(
				F("SSRC", Int(int64(s.SSRC))),
				F("duplicates", Uint(s.Duplicates)),
				F("jitter", Str(strconv.FormatFloat(s.JitterMs, 'f', 3, 64))),
				F("lost", Int(s.Lost)),
				F("packets", Uint(s.Packets)),
				F("reordered", Uint(s.Reordered)),
			)
		}
		ssrcs = Value{kind: KindList, items: list}
	}
	return a.dict(
		F("SSRC", ssrcs),
		F("crypto suite", optStr(st.CryptoSuite)),
		F("advertised address", advertised),
		F("advertised endpoint", endpoint(a, names, st.AdvertisedEndpoint)),
		F("endpoint", endpoint(a, names, st.Endpoint)),
		F("family", Str(family(st.Local.Addr()))),
		F("flags", a.strings(st.Flags)),
		F("kernel packets", Uint(st.KernelPackets)),
		F("last kernel packet", Int(unixOrZero(st.LastKernelPacket))),
		F("last packet", Int(unixOrZero(st.LastPacket))),
		F("last user packet", Int(unixOrZero(st.LastUserPacket))),
		F("local address", Str(names.name(st.Local.Addr()))),
		F("local port", Int(int64(st.Local.Port()))),
		F("stats", counters(a, st.In)),
		F("stats_out", counters(a, st.Out)),
	)
}

// reportOf is a party's RTCP report on a source and the tag of that
// source's sender.
type reportOf struct {
	r      session.ReportInfo
	sender string
}

// mosFields are the incumbent's MOS dictionaries of a source, as Kamailio
// reads them: MOS ×10, loss in percent, jitter in ms, round trips in µs.
func mosFields(a *arena, rep reportOf, ok bool) []Field {
	if !ok || rep.r.Samples == 0 {
		return nil
	}
	r := rep.r
	one := func(mos float64) Value {
		return a.dict(
			F("MOS", Int(int64(mos*10+0.5))),
			F("jitter", Int(int64(r.JitterMs+0.5))),
			F("packet loss", Int(int64(r.FractionLost*100+0.5))),
			F("reported at", Int(r.At.Unix())),
			F("round-trip time", Int(int64(r.RTTLegMs*1000))),
			F("round-trip time leg", Int(int64(r.RTTLegMs*1000))),
			F("samples", Uint(r.Samples)),
		)
	}
	return []Field{F("average MOS", one(r.MOSAvg)), F("highest MOS", one(r.MOSMax)), F("lowest MOS", one(r.MOSMin))}
}

// securityTree is a secure party's keying and what its stages refused; Null
// (left out) for a plain party.
func securityTree(a *arena, s *session.SecurityInfo) Value {
	if s == nil {
		return Value{}
	}
	c := s.Counters
	return a.dict(
		F("DTLS handshakes", Uint(c.DTLSHandshakes)),
		F("DTLS handshakes failed", Uint(c.DTLSFailures)),
		F("DTLS records dropped", Uint(c.DTLSDropped)),
		F("DTLS role", optStr(s.DTLSRole)),
		F("DTLS state", optStr(s.DTLSState)),
		F("ICE nominations", Uint(c.ICENominations)),
		F("SRTP auth failed", Uint(c.SRTPAuthFailed)),
		F("SRTP malformed", Uint(c.SRTPMalformed)),
		F("SRTP no keys", Uint(c.SRTPNoKeys)),
		F("SRTP protect errors", Uint(c.SRTPProtectError)),
		F("SRTP replayed", Uint(c.SRTPReplayed)),
		F("STUN answered", Uint(c.STUNAnswered)),
		F("STUN bad integrity", Uint(c.STUNBadIntegrity)),
		F("STUN bad username", Uint(c.STUNBadUsername)),
		F("STUN malformed", Uint(c.STUNMalformed)),
		F("crypto suite", optStr(s.Suite)),
		F("keying", optStr(s.Keying)),
	)
}

// transcodeTree is what the transcoder does on a party's side; Null (left
// out) when the media is not transcoded.
func transcodeTree(a *arena, t *session.TranscodeInfo) Value {
	if t == nil {
		return Value{}
	}
	errs := make([]Field, 0, len(t.Errors))
	for _, k := range slices.Sorted(maps.Keys(t.Errors)) {
		errs = append(errs, F(k, Uint(t.Errors[k])))
	}
	return a.dict(
		F("DTMF events", Uint(t.Events)),
		F("concealed", Uint(t.Concealed)),
		F("errors", a.dict(errs...)),
		F("packets in", Uint(t.In)),
		F("packets out", Uint(t.Out)),
		F("receives", Str(t.Receives)),
		F("sends", Str(t.Sends)),
	)
}

func endpoint(a *arena, names *addrNames, ap netip.AddrPort) Value {
	if !ap.IsValid() {
		return Value{kind: KindDict}
	}
	return a.dict(
		F("address", Str(names.name(ap.Addr()))),
		F("family", Str(family(ap.Addr()))),
		F("port", Int(int64(ap.Port()))),
	)
}

func family(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "IPv6"
	}
	return "IPv4"
}

func counters(a *arena, c session.Counters) Value {
	return a.dict(F("bytes", Uint(c.Bytes)), F("errors", Uint(c.Errors)), F("packets", Uint(c.Packets)))
}

// optStr is s, or Null (left out) when s is empty.
func optStr(s string) Value {
	if s == "" {
		return Value{}
	}
	return Str(s)
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Statistics is the ng statistics dictionary as generic values (the CLI's
// list jsonstats).
func (c *Control) Statistics() any { return c.statistics().Interface() }

func (c *Control) statistics() Value {
	s := c.mgr.Statistics()
	seconds := func(d time.Duration) Value { return Str(strconv.FormatFloat(d.Seconds(), 'f', 6, 64)) }
	ifaces := make([]Value, 0, len(s.Interfaces))
	for _, in := range s.Interfaces {
		ifaces = append(ifaces, Dict(
			F("address", Str(in.Address.String())),
			F("advertised address", Str(in.Advertised.String())),
			F("name", Str(in.Name)),
			F("ports", Dict(
				F("free", Int(int64(2*(in.PortsTotal-in.PortsUsed)))),
				F("max", Int(int64(in.PortMax))),
				F("min", Int(int64(in.PortMin))),
				F("totals", Int(int64(2*in.PortsTotal))),
				F("used", Int(int64(2*in.PortsUsed))),
			)),
		))
	}
	var control, rec Value
	if c.server != nil {
		control = controlStatistics(c.server())
	}
	if r := s.Recording; r != nil {
		rec = Dict(
			F("active", Int(int64(r.Active))),
			F("bytes", Uint(r.Bytes)),
			F("dropped", Uint(r.Dropped)),
			F("failed", Uint(r.Failed)),
			F("finished", Uint(r.Finished)),
			F("packets", Uint(r.Packets)),
			F("started", Uint(r.Started)),
		)
	}
	return Dict(
		F("controlstatistics", control),
		F("currentstatistics", Dict(
			F("byterate", Uint(s.ByteRate)),
			F("errorrate", Uint(s.ErrorRate)),
			F("media_kernel", Int(int64(s.MediaKernel))),
			F("media_mixed", Int(0)),
			F("media_userspace", Int(int64(s.MediaUserspace))),
			F("packetrate", Uint(s.PacketRate)),
			F("sessionsforeign", Int(0)),
			F("sessionsown", Int(int64(s.SessionsOwn))),
			F("sessionstotal", Int(int64(s.SessionsOwn))),
			F("transcodedmedia", Int(int64(s.TranscodedMedia))),
		)),
		F("interfaces", List(ifaces...)),
		F("recordingstatistics", rec),
		F("totalstatistics", Dict(
			F("avgcallduration", seconds(s.AvgCallDuration)),
			F("finaltimeoutsessions", Uint(s.FinalTimeout)),
			F("forcedterminatedsessions", Uint(s.ForcedTerminated)),
			F("managedsessions", Uint(s.Managed)),
			F("offertimeoutsessions", Uint(s.OfferTimeout)),
			F("onewaystreams", Uint(s.OneWayStreams)),
			F("regularterminatedsessions", Uint(s.RegularTerminated)),
			F("rejectedsessions", Uint(s.Rejected)),
			F("relayedbytes", Uint(s.RelayedBytes)),
			F("relayedbytes_kernel", Uint(s.RelayedBytesKernel)),
			F("relayedbytes_user", Uint(s.RelayedBytes-s.RelayedBytesKernel)),
			F("relayedpacketerrors", Uint(s.RelayedErrors)),
			F("relayedpacketerrors_kernel", Int(0)),
			F("relayedpacketerrors_user", Uint(s.RelayedErrors)),
			F("relayedpackets", Uint(s.RelayedPackets)),
			F("relayedpackets_kernel", Uint(s.RelayedPacketsKernel)),
			F("relayedpackets_user", Uint(s.RelayedPackets-s.RelayedPacketsKernel)),
			F("silenttimeoutsessions", Uint(s.SilentTimeout)),
			F("timeoutsessions", Uint(s.Timeout)),
			F("totalcallsduration", seconds(s.TotalCallDuration)),
			F("uptime", Str(strconv.FormatInt(int64(s.Uptime.Seconds()), 10))),
			F("zerowaystreams", Uint(s.ZeroWayStreams)),
		)),
	)
}

// controlStatistics renders the server counters the way the reference's
// controlstatistics section names them: "<command>count" per proxy and in
// total. Proxies are listed by address.
func controlStatistics(s ServerStats) Value {
	key := func(cmd string) string { return stdstrings.ReplaceAll(cmd, " ", "") + "count" }
	out := make([]Field, 0, len(s.Commands)+3)
	for cmd, cs := range s.Commands {
		if cmd == StatsInvalid || cmd == StatsUnknown {
			continue
		}
		out = append(out, F("total"+key(cmd), Uint(cs.Requests)))
	}
	out = append(out, F("totalerrorcount", Uint(s.Errors)), F("droppedcount", Uint(s.Dropped)),
		F("refusedcount", Uint(s.Refused)))
	addrs := slices.SortedFunc(maps.Keys(s.Proxies), func(a, b netip.Addr) int { return a.Compare(b) })
	proxies := make([]Value, 0, len(addrs))
	for _, addr := range addrs {
		cmds := s.Proxies[addr]
		p := []Field{F("proxy", Str(addr.String()))}
		var errs uint64
		for cmd, cs := range cmds {
			errs += cs.Errors
			if cmd == StatsInvalid || cmd == StatsUnknown {
				continue
			}
			p = append(p, F(key(cmd), Uint(cs.Requests)))
		}
		p = append(p, F("errorcount", Uint(errs)))
		proxies = append(proxies, Dict(p...))
	}
	out = append(out, F("proxies", List(proxies...)))
	return Dict(out...)
}

// warnings joins what the relay did not do as asked: the session layer's
// warnings and the keys, flags and values it accepted but does not act on.
func warnings(req *Request, session []string) string {
	w := append([]string(nil), session...)
	if len(req.Ignored) > 0 {
		w = append(w, "not supported and ignored: "+stdstrings.Join(req.Ignored, ", "))
	}
	return stdstrings.Join(w, "; ")
}
