// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net/netip"
	"time"

	"github.com/relayd/relayd/pkg/recording"
	"github.com/relayd/relayd/pkg/webrtc"
)

// Statistics are the manager-wide counters, named after the reference's
// statistics sections.
type Statistics struct {
	Uptime      time.Duration
	SessionsOwn int
	// SessionsForeign are the calls another relay owns that this one
	// holds ready to take over.
	SessionsForeign int
	MediaUserspace  int
	MediaKernel     int
	// TranscodedMedia counts the media streams being transcoded now.
	TranscodedMedia int
	// Rates over the last second of relayed media (received side).
	PacketRate, ByteRate, ErrorRate uint64
	Managed, Rejected               uint64

	Timeout, SilentTimeout, OfferTimeout, FinalTimeout uint64
	RegularTerminated, ForcedTerminated                uint64

	RelayedPackets, RelayedBytes, RelayedErrors uint64
	// The parts of RelayedPackets/Bytes the kernel fast path forwarded.
	RelayedPacketsKernel, RelayedBytesKernel uint64
	ZeroWayStreams, OneWayStreams            uint64
	TotalCallDuration, AvgCallDuration       time.Duration
	// Security sums what the SRTP, DTLS and ICE stages of every call, live
	// and ended, refused and did.
	Security webrtc.Snapshot
	// Recording sums the recordings (recording.go); nil when recording is
	// off.
	Recording *recording.Stats

	Interfaces []InterfaceStats
}

// InterfaceStats describes one configured interface address and its ports.
type InterfaceStats struct {
	Name                  string
	Address, Advertised   netip.Addr
	PortMin, PortMax      int
	PortsUsed, PortsTotal int // in RTP/RTCP slots (port pairs)
}

// Statistics reports the current and total counters.
func (m *Manager) Statistics() Statistics {
	m.mu.Lock()
	t := m.totals
	s := Statistics{
		Uptime:            m.now().Sub(m.start),
		SessionsOwn:       len(m.calls) - m.foreignN,
		SessionsForeign:   m.foreignN,
		Managed:           t.managed,
		Rejected:          t.rejected,
		Timeout:           t.timeout,
		SilentTimeout:     t.silentTimeout,
		OfferTimeout:      t.offerTimeout,
		FinalTimeout:      t.finalTimeout,
		RegularTerminated: t.regularTerminated,
		ForcedTerminated:  t.forcedTerminated,
		RelayedPackets:    t.relayedPackets,
		RelayedBytes:      t.relayedBytes,
		RelayedErrors:     t.relayedErrors,

		RelayedPacketsKernel: t.relayedPacketsKernel,
		RelayedBytesKernel:   t.relayedBytesKernel,
		ZeroWayStreams:       t.zeroWayStreams,
		OneWayStreams:        t.oneWayStreams,
		TotalCallDuration:    t.callDurationTotal,
	}
	if t.endedCalls > 0 {
		s.AvgCallDuration = t.callDurationTotal / time.Duration(t.endedCalls)
	}
	calls := make([]*Call, 0, len(m.calls))
	for _, c := range m.calls {
		calls = append(calls, c)
	}
	m.mu.Unlock()
	s.Security = t.security
	for _, c := range calls {
		c.mu.Lock()
		if c.foreign.Load() {
			c.mu.Unlock()
			continue
		}
		s.add(c.liveCounters())
		s.Security = s.Security.Add(c.securityTotals())
		c.mu.Unlock()
	}
	m.mu.Lock()
	s.PacketRate, s.ByteRate, s.ErrorRate = m.rates.packets, m.rates.bytes, m.rates.errors
	m.mu.Unlock()
	if m.cfg.Recorder != nil {
		rs := m.cfg.Recorder.Stats()
		s.Recording = &rs
	}
	for _, ia := range m.order {
		used, total := ia.pool.Stats()
		s.Interfaces = append(s.Interfaces, InterfaceStats{Name: ia.name, Address: ia.local,
			Advertised: ia.advertised, PortMin: m.cfg.PortMin, PortMax: m.cfg.PortMax,
			PortsUsed: used, PortsTotal: total})
	}
	return s
}

// liveTotals are the running counters of a live call.
type liveTotals struct {
	packets, bytes, errors     uint64
	kernelPackets, kernelBytes uint64
	streams, kernelStreams     int
	transcoded                 int
}

func (s *Statistics) add(l liveTotals) {
	s.RelayedPackets += l.packets
	s.RelayedBytes += l.bytes
	s.RelayedErrors += l.errors
	s.MediaUserspace += l.streams
	s.MediaKernel += l.kernelStreams
	s.TranscodedMedia += l.transcoded
	s.RelayedPacketsKernel += l.kernelPackets
	s.RelayedBytesKernel += l.kernelBytes
}
