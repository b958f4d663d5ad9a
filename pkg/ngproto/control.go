// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	stdstrings "strings"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// notFoundWarning is the reference's text for a delete that matched nothing.
const notFoundWarning = "Call-ID not found or tags didn't match"

// Control answers ng commands with the session manager: it is the Handler the
// server runs in production.
type Control struct {
	mgr    *session.Manager
	log    *slog.Logger
	server func() ServerStats // control statistics; nil until a server is attached
}

// NewControl returns the command dispatcher for mgr.
func NewControl(mgr *session.Manager, log *slog.Logger) *Control {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Control{mgr: mgr, log: log.With("component", "control")}
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
		calls := c.mgr.List(limit)
		list := make([]any, len(calls))
		for i, id := range calls {
			list[i] = id
		}
		return withResult(Reply{"calls": list})
	case "statistics":
		return withResult(Reply{"statistics": c.statistics()})
	default:
		return ErrorReply(ReasonUnknownCommand)
	}
}

func withResult(r Reply) Reply {
	r["result"] = "ok"
	return r
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
	var out []byte
	var err error
	if req.Command == "offer" {
		out, err = c.mgr.Offer(sig)
	} else {
		out, err = c.mgr.Answer(sig)
	}
	if err != nil {
		c.log.Warn(req.Command+" failed", "call-id", req.CallID, "from-tag", req.FromTag, "error", err)
		return ErrorReply(reason(err))
	}
	c.log.Debug(req.Command+" done", "call-id", req.CallID, "from-tag", req.FromTag, "to-tag", req.ToTag)
	// For the CLI's proxy column and the b2b-url's %%.
	c.mgr.NoteOrigin(req.CallID, from)
	return withResult(Reply{"sdp": string(out)})
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
		return OK().WithWarning(notFoundWarning)
	}
	if err != nil {
		return ErrorReply(reason(err))
	}
	c.log.Debug("delete done", "call-id", req.CallID, "from-tag", req.FromTag)
	if info == nil {
		return OK()
	}
	return withResult(callTree(info))
}

func (c *Control) query(req *Request) Reply {
	if req.CallID == "" {
		return ErrorReply(ReasonNoCallID)
	}
	info, err := c.mgr.Query(req.CallID, req.FromTag, req.ToTag)
	if err != nil {
		return ErrorReply(reason(err))
	}
	return withResult(callTree(info))
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
		return ReasonParseSDP
	case errors.Is(err, session.ErrIncompleteSDP):
		return ReasonIncompleteSDP
	case errors.Is(err, session.ErrRewriteSDP):
		return ReasonRewriteSDP
	}
	return "Internal error: " + err.Error()
}

// callTree renders a call the way the reference's query and delete replies do.
func callTree(ci *session.CallInfo) Reply {
	tags := map[string]any{}
	ssrcs := map[string]any{}
	untagged := 0
	for _, t := range ci.Tags {
		key := t.Tag
		if key == "" {
			key = fmt.Sprintf("<untagged %d>", untagged)
			untagged++
		}
		medias := make([]any, 0, len(t.Medias))
		for _, md := range t.Medias {
			streams := make([]any, 0, len(md.Streams))
			for _, st := range md.Streams {
				streams = append(streams, streamTree(st))
				for _, q := range st.SSRCs {
					ssrcs[fmt.Sprint(q.SSRC)] = map[string]any{
						"tag": t.Tag, "packets": q.Packets, "packets lost": q.Lost,
						"duplicates": q.Duplicates, "reordered": q.Reordered,
						"jitter": fmt.Sprintf("%.3f", q.JitterMs),
					}
				}
			}
			medias = append(medias, map[string]any{
				"index": md.Index, "type": md.Type, "protocol": md.Protocol,
				"flags": anyList(md.Flags), "streams": streams,
			})
		}
		tag := map[string]any{
			"tag": t.Tag, "created": t.Created.Unix(), "medias": medias,
			"in dialogue with": t.InDialogueWith,
		}
		if t.Label != "" {
			tag["label"] = t.Label
		}
		if t.ViaBranch != "" {
			tag["via-branch"] = t.ViaBranch
		}
		if len(t.Aliases) > 0 {
			tag["tag-aliases"] = anyList(t.Aliases)
		}
		tags[key] = tag
	}
	return Reply{
		"created":     ci.Created.Unix(),
		"created_us":  int64(ci.Created.Nanosecond() / 1000),
		"last signal": ci.LastSignal.Unix(),
		"SSRC":        ssrcs,
		"tags":        tags,
		"totals": map[string]any{
			"RTP":  counters(ci.RTP),
			"RTCP": counters(ci.RTCP),
		},
	}
}

func streamTree(st session.StreamInfo) map[string]any {
	m := map[string]any{
		"local port":          int64(st.Local.Port()),
		"local address":       st.Local.Addr().String(),
		"family":              family(st.Local.Addr()),
		"endpoint":            endpoint(st.Endpoint),
		"advertised endpoint": endpoint(st.AdvertisedEndpoint),
		"flags":               anyList(st.Flags),
		"stats":               counters(st.In),
		"stats_out":           counters(st.Out),
		"last packet":         unixOrZero(st.LastPacket),
		"last kernel packet":  unixOrZero(st.LastKernelPacket),
		"last user packet":    unixOrZero(st.LastUserPacket),
		"kernel packets":      st.KernelPackets,
	}
	if st.Advertised.IsValid() {
		m["advertised address"] = st.Advertised.String()
	}
	if len(st.SSRCs) > 0 {
		ssrcs := make([]any, 0, len(st.SSRCs))
		for _, s := range st.SSRCs {
			ssrcs = append(ssrcs, map[string]any{
				"SSRC": int64(s.SSRC), "packets": s.Packets, "lost": s.Lost,
				"duplicates": s.Duplicates, "reordered": s.Reordered,
				"jitter": fmt.Sprintf("%.3f", s.JitterMs),
			})
		}
		m["SSRC"] = ssrcs
	}
	return m
}

func endpoint(ap netip.AddrPort) map[string]any {
	if !ap.IsValid() {
		return map[string]any{}
	}
	return map[string]any{"family": family(ap.Addr()), "address": ap.Addr().String(), "port": int64(ap.Port())}
}

func family(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "IPv6"
	}
	return "IPv4"
}

func counters(c session.Counters) map[string]any {
	return map[string]any{"packets": c.Packets, "bytes": c.Bytes, "errors": c.Errors}
}

func anyList(list []string) []any {
	out := make([]any, len(list))
	for i, s := range list {
		out[i] = s
	}
	return out
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Statistics is the ng statistics dictionary (also the CLI's list jsonstats).
func (c *Control) Statistics() map[string]any { return c.statistics() }

func (c *Control) statistics() map[string]any {
	s := c.mgr.Statistics()
	seconds := func(d time.Duration) string { return fmt.Sprintf("%.6f", d.Seconds()) }
	stats := map[string]any{
		"currentstatistics": map[string]any{
			"sessionsown":     s.SessionsOwn,
			"sessionsforeign": 0,
			"sessionstotal":   s.SessionsOwn,
			"transcodedmedia": 0,
			"packetrate":      s.PacketRate,
			"byterate":        s.ByteRate,
			"errorrate":       s.ErrorRate,
			"media_userspace": s.MediaUserspace,
			"media_kernel":    s.MediaKernel,
			"media_mixed":     0,
		},
		"totalstatistics": map[string]any{
			"uptime":                     fmt.Sprintf("%d", int64(s.Uptime.Seconds())),
			"managedsessions":            s.Managed,
			"rejectedsessions":           s.Rejected,
			"timeoutsessions":            s.Timeout,
			"silenttimeoutsessions":      s.SilentTimeout,
			"finaltimeoutsessions":       s.FinalTimeout,
			"offertimeoutsessions":       s.OfferTimeout,
			"regularterminatedsessions":  s.RegularTerminated,
			"forcedterminatedsessions":   s.ForcedTerminated,
			"relayedpackets":             s.RelayedPackets,
			"relayedpacketerrors":        s.RelayedErrors,
			"relayedbytes":               s.RelayedBytes,
			"relayedpackets_user":        s.RelayedPackets - s.RelayedPacketsKernel,
			"relayedpacketerrors_user":   s.RelayedErrors,
			"relayedbytes_user":          s.RelayedBytes - s.RelayedBytesKernel,
			"relayedpackets_kernel":      s.RelayedPacketsKernel,
			"relayedpacketerrors_kernel": 0,
			"relayedbytes_kernel":        s.RelayedBytesKernel,
			"zerowaystreams":             s.ZeroWayStreams,
			"onewaystreams":              s.OneWayStreams,
			"avgcallduration":            seconds(s.AvgCallDuration),
			"totalcallsduration":         seconds(s.TotalCallDuration),
		},
	}
	ifaces := make([]any, 0, len(s.Interfaces))
	for _, in := range s.Interfaces {
		ifaces = append(ifaces, map[string]any{
			"name": in.Name, "address": in.Address.String(), "advertised address": in.Advertised.String(),
			"ports": map[string]any{
				"min": in.PortMin, "max": in.PortMax,
				"used": 2 * in.PortsUsed, "free": 2 * (in.PortsTotal - in.PortsUsed), "totals": 2 * in.PortsTotal,
			},
		})
	}
	stats["interfaces"] = ifaces
	if c.server != nil {
		stats["controlstatistics"] = controlStatistics(c.server())
	}
	return stats
}

// controlStatistics renders the server counters the way the reference's
// controlstatistics section names them: "<command>count" per proxy and in total.
func controlStatistics(s ServerStats) map[string]any {
	key := func(cmd string) string { return stdstrings.ReplaceAll(cmd, " ", "") + "count" }
	out := map[string]any{}
	for cmd, cs := range s.Commands {
		if cmd == StatsInvalid || cmd == StatsUnknown {
			continue
		}
		out["total"+key(cmd)] = cs.Requests
	}
	out["totalerrorcount"] = s.Errors
	out["droppedcount"] = s.Dropped
	proxies := make([]any, 0, len(s.Proxies))
	for addr, cmds := range s.Proxies {
		p := map[string]any{"proxy": addr.String()}
		var errs uint64
		for cmd, cs := range cmds {
			errs += cs.Errors
			if cmd == StatsInvalid || cmd == StatsUnknown {
				continue
			}
			p[key(cmd)] = cs.Requests
		}
		p["errorcount"] = errs
		proxies = append(proxies, p)
	}
	out["proxies"] = proxies
	return out
}
