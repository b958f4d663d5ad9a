// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayd/relayd/pkg/ngproto"
)

// The incumbent's (rtpengine 10.5) families, with its names, label names and
// help texts, restricted to what relayd has data for. MOS is not among them
// yet: relayd does not measure it.
var (
	descSessions       = desc("rtpengine_sessions", "Owned sessions", "type")
	descTranscoded     = desc("rtpengine_transcoded_media", "Transcoded media")
	descMediaStreams   = desc("rtpengine_mediastreams", "Media streams by where they are forwarded", "type")
	descUptime         = desc("rtpengine_uptime_seconds", "Uptime of rtpengine")
	descSessionsTotal  = desc("rtpengine_sessions_total", "Total managed sessions")
	descClosed         = desc("rtpengine_closed_sessions_total", "Total closed sessions by reason", "reason")
	descPackets        = desc("rtpengine_packets_total", "Total relayed packets", "type")
	descPacketErrors   = desc("rtpengine_packet_errors_total", "Total relayed packet errors", "type")
	descBytes          = desc("rtpengine_bytes_total", "Total relayed bytes", "type")
	descZeroStreams    = desc("rtpengine_zero_packet_streams_total", "Total number of streams with no relayed packets")
	descOneWay         = desc("rtpengine_one_way_sessions_total", "Total number of 1-way streams")
	descDurationAvg    = desc("rtpengine_call_duration_avg", "Average call duration")
	descDurationTotal  = desc("rtpengine_call_duration_total", "Total calls duration")
	descDuration2Total = desc("rtpengine_call_duration2_total", "Total calls duration squared")
	descMOSTotal       = desc("rtpengine_mos_total", "Total of all MOS values sampled")
	descMOS2Total      = desc("rtpengine_mos2_total", "Total of all MOS values sampled squared")
	descMOSSamples     = desc("rtpengine_mos_samples_total", "Total number of MOS samples")
	descSecurity       = desc("relayd_media_security_events_total",
		"SRTP, DTLS and ICE events of every call by kind (refusals are the attacks and misconfigurations)", "event")
	descRequests       = desc("rtpengine_requests_total", "Total ng requests by proxy and command", "proxy", "request")
	descRequestSeconds = desc("rtpengine_request_seconds_total", "Total time spent on ng requests by proxy and command", "proxy", "request")
	descErrors         = desc("rtpengine_errors_total", "Total ng requests answered with an error, by proxy", "proxy")
	descPorts          = desc("rtpengine_ports", "Media ports of the interface address", "name", "address")
	descPortsUsed      = desc("rtpengine_ports_used", "Media ports in use", "name", "address")
	descPortsFree      = desc("rtpengine_ports_free", "Media ports free", "name", "address")

	descBuildInfo   = desc("relayd_build_info", "relayd's version (value 1)", "version")
	descMaxSessions = desc("relayd_max_sessions", "Session limit in force: -1 unlimited, 0 draining")
	descXDP         = desc("relayd_xdp_packets_total", "Packets the XDP program saw, by what it did with them: tx and redirect were forwarded in the kernel, the rest passed to userspace", "reason")
	descRetransmits = desc("relayd_control_retransmits_total", "ng requests answered from the reply cache (proxy retransmissions)")
	descDropped     = desc("relayd_control_dropped_total", "ng datagrams dropped without a reply (no cookie)")
	descSendErrors  = desc("relayd_control_send_errors_total", "ng replies the socket refused")
	descShed        = desc("relayd_control_shed_replies_total", "ng replies too large for one datagram, sent without their bulkiest optional parts (see the reply's warning)")
	descCacheBytes  = desc("relayd_control_cache_bytes", "Bytes the ng reply cache holds (replies, cookies and their bookkeeping)")
	descCacheItems  = desc("relayd_control_cache_entries", "Cookies the ng reply cache holds")
	descRefused     = desc("relayd_control_refused_total", "ng datagrams from sources outside ng-allow-from, dropped without a reply")
	descInvalid     = desc("relayd_control_invalid_total", "ng requests that could not be decoded or named no known command", "kind")
	descNotices     = desc("relayd_teardown_notices_total", "Teardown notices (b2b-url) for timed-out calls, by result: sent, failed, dropped (queue full)", "result")
	descTcPackets   = desc("relayd_transcode_packets_total", "Packets through the transcoding workers, by kind: rtp_in, rtp_out, rtcp_in, rtcp_out", "kind")
	descTcErrors    = desc("relayd_transcode_errors_total", "Packets the transcoding workers refused or lost, by reason (queue_full: a worker's queue was full)", "reason")
	descTcBridges   = desc("relayd_transcode_bridges", "Transcoding bridges open now (one per transcoded media)")
	descStoreOps    = desc("relayd_state_store_operations_total", "Call state store operations, by op: write, delete, failure", "op")
	descStorePend   = desc("relayd_state_store_pending", "Calls whose state waits to be written to the store")
	descStoreUp     = desc("relayd_state_store_up", "1 while the call state store takes writes, 0 while they fail (calls go on; a restart or takeover would lose their recent changes)")
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var allDescs = []*prometheus.Desc{
	descSessions, descTranscoded, descMediaStreams, descUptime, descSessionsTotal, descClosed,
	descPackets, descPacketErrors, descBytes, descZeroStreams, descOneWay, descDurationAvg,
	descDurationTotal, descDuration2Total, descMOSTotal, descMOS2Total, descMOSSamples, descSecurity, descRequests, descRequestSeconds, descErrors,
	descPorts, descPortsUsed, descPortsFree,
	descBuildInfo, descMaxSessions, descXDP, descRetransmits, descDropped, descSendErrors, descInvalid,
	descNotices, descStoreOps, descStorePend, descStoreUp, descTcPackets, descTcErrors, descTcBridges,
	descRefused, descShed, descCacheBytes, descCacheItems,
}

// collector reads the sources at scrape time.
type collector struct{ src Sources }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuildInfo, 1, c.src.Version)
	if c.src.Sessions != nil {
		s := c.src.Sessions()
		gauge(descSessions, float64(s.SessionsOwn), "own")
		gauge(descSessions, 0, "foreign") // relayd has no HA peers (yet)
		gauge(descTranscoded, float64(s.TranscodedMedia))
		gauge(descMediaStreams, float64(s.MediaUserspace), "userspace")
		gauge(descMediaStreams, float64(s.MediaKernel), "kernel")
		// Each stream is in the kernel or in userspace at any time; the
		// incumbent's "mixed" class does not exist in relayd.
		gauge(descMediaStreams, 0, "mixed")
		gauge(descUptime, s.Uptime.Seconds())
		counter(descSessionsTotal, float64(s.Managed))
		for _, r := range []struct {
			reason string
			n      uint64
		}{
			{"rejected", s.Rejected}, {"timeout", s.Timeout}, {"silent_timeout", s.SilentTimeout},
			{"final_timeout", s.FinalTimeout}, {"offer_timeout", s.OfferTimeout},
			{"terminated", s.RegularTerminated}, {"force_terminated", s.ForcedTerminated},
		} {
			counter(descClosed, float64(r.n), r.reason)
		}
		counter(descPackets, float64(s.RelayedPackets-s.RelayedPacketsKernel), "userspace")
		counter(descPackets, float64(s.RelayedPacketsKernel), "kernel")
		// Packets the kernel cannot judge (wrong source…) go to userspace,
		// where they are counted; the kernel path itself has no errors.
		counter(descPacketErrors, float64(s.RelayedErrors), "userspace")
		counter(descPacketErrors, 0, "kernel")
		counter(descBytes, float64(s.RelayedBytes-s.RelayedBytesKernel), "userspace")
		counter(descBytes, float64(s.RelayedBytesKernel), "kernel")
		counter(descZeroStreams, float64(s.ZeroWayStreams))
		counter(descOneWay, float64(s.OneWayStreams))
		gauge(descDurationAvg, s.AvgCallDuration.Seconds())
		sec := s.Security
		for _, e := range []struct {
			name string
			n    uint64
		}{
			{"srtp_auth_failed", sec.SRTPAuthFailed}, {"srtp_replayed", sec.SRTPReplayed},
			{"srtp_no_keys", sec.SRTPNoKeys}, {"srtp_malformed", sec.SRTPMalformed},
			{"srtp_protect_error", sec.SRTPProtectError}, {"stun_bad_integrity", sec.STUNBadIntegrity},
			{"stun_bad_username", sec.STUNBadUsername}, {"stun_malformed", sec.STUNMalformed},
			{"stun_answered", sec.STUNAnswered}, {"ice_nominations", sec.ICENominations},
			{"dtls_dropped", sec.DTLSDropped}, {"dtls_handshakes", sec.DTLSHandshakes},
			{"dtls_failures", sec.DTLSFailures},
		} {
			counter(descSecurity, float64(e.n), e.name)
		}
		for _, in := range s.Interfaces {
			addr := in.Address.String()
			// Statistics count RTP/RTCP slots; the incumbent counts ports.
			gauge(descPorts, float64(2*in.PortsTotal), in.Name, addr)
			gauge(descPortsUsed, float64(2*in.PortsUsed), in.Name, addr)
			gauge(descPortsFree, float64(2*(in.PortsTotal-in.PortsUsed)), in.Name, addr)
		}
	}
	if c.src.Durations != nil {
		total, sq, _ := c.src.Durations()
		counter(descDurationTotal, total.Seconds())
		counter(descDuration2Total, sq)
	}
	if c.src.MOS != nil {
		sum, sq, n := c.src.MOS()
		counter(descMOSTotal, sum)
		counter(descMOS2Total, sq)
		counter(descMOSSamples, float64(n))
	}
	if c.src.Limits != nil {
		gauge(descMaxSessions, float64(c.src.Limits().MaxSessions))
	}
	if c.src.Control != nil {
		st := c.src.Control()
		c.collectControl(st, counter)
		gauge(descCacheBytes, float64(st.CacheBytes))
		gauge(descCacheItems, float64(st.CacheEntries))
	}
	if c.src.Notices != nil {
		for result, n := range c.src.Notices() {
			counter(descNotices, float64(n), result)
		}
	}
	if c.src.Transcode != nil {
		st := c.src.Transcode()
		counter(descTcPackets, float64(st.PacketsIn), "rtp_in")
		counter(descTcPackets, float64(st.PacketsOut), "rtp_out")
		counter(descTcPackets, float64(st.RTCPIn), "rtcp_in")
		counter(descTcPackets, float64(st.RTCPOut), "rtcp_out")
		for reason, n := range st.Errors.ByReason() {
			counter(descTcErrors, float64(n), strings.ReplaceAll(reason, " ", "_"))
		}
		gauge(descTcBridges, float64(st.Bridges))
	}
	if c.src.Store != nil {
		st := c.src.Store()
		counter(descStoreOps, float64(st.Writes), "write")
		counter(descStoreOps, float64(st.Deletes), "delete")
		counter(descStoreOps, float64(st.Failures), "failure")
		gauge(descStorePend, float64(st.Pending))
		up := 0.0
		if st.Healthy {
			up = 1
		}
		gauge(descStoreUp, up)
	}
	if c.src.Kernel != nil {
		for reason, n := range c.src.Kernel() {
			counter(descXDP, float64(n), reason)
		}
	}
}

func (c *collector) collectControl(s ngproto.ServerStats, counter func(*prometheus.Desc, float64, ...string)) {
	counter(descRetransmits, float64(s.Retransmits))
	counter(descDropped, float64(s.Dropped))
	counter(descSendErrors, float64(s.SendErrors))
	counter(descRefused, float64(s.Refused))
	counter(descShed, float64(s.Shed))
	counter(descInvalid, float64(s.Commands[ngproto.StatsInvalid].Requests), "undecodable")
	counter(descInvalid, float64(s.Commands[ngproto.StatsUnknown].Requests), "unknown_command")
	for addr, cmds := range s.Proxies {
		proxy := "other" // beyond the per-source table's cap
		if addr.IsValid() {
			proxy = addr.String()
		}
		var errs uint64
		for cmd, cs := range cmds {
			errs += cs.Errors
			if cmd == ngproto.StatsInvalid || cmd == ngproto.StatsUnknown {
				continue
			}
			counter(descRequests, float64(cs.Requests), proxy, requestLabel(cmd))
			counter(descRequestSeconds, cs.HandleTime.Seconds(), proxy, requestLabel(cmd))
		}
		counter(descErrors, float64(errs), proxy)
	}
}
