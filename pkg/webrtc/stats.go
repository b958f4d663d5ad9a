// SPDX-License-Identifier: Apache-2.0

package webrtc

import "sync/atomic"

// Counters are one stream's security events, by reason; the stages count,
// the session layer reads them for query and statistics.
type Counters struct {
	SRTPAuthFailed   atomic.Uint64 // SRTP/SRTCP whose authentication tag did not verify
	SRTPReplayed     atomic.Uint64 // SRTP/SRTCP index seen before (replay protection)
	SRTPNoKeys       atomic.Uint64 // SRTP/SRTCP before the keys were known (handshake not done)
	SRTPMalformed    atomic.Uint64 // too short or not RTP/RTCP where SRTP was expected
	SRTPProtectError atomic.Uint64 // packets the relay could not protect towards the party
	STUNBadIntegrity atomic.Uint64 // MESSAGE-INTEGRITY did not verify (answered 401)
	STUNBadUsername  atomic.Uint64 // USERNAME not ours (answered 401)
	STUNMalformed    atomic.Uint64 // undecodable, wrong FINGERPRINT or not a request (dropped)
	STUNAnswered     atomic.Uint64 // authenticated Binding requests answered
	ICENominations   atomic.Uint64 // authenticated USE-CANDIDATE checks (the pair the peer chose)
	DTLSDropped      atomic.Uint64 // DTLS records dropped (queue full, unknown source, no handshake)
	DTLSHandshakes   atomic.Uint64 // completed handshakes
	DTLSFailures     atomic.Uint64 // handshakes that failed or timed out
}

// Snapshot is a copy of Counters.
type Snapshot struct {
	SRTPAuthFailed, SRTPReplayed, SRTPNoKeys, SRTPMalformed, SRTPProtectError      uint64
	STUNBadIntegrity, STUNBadUsername, STUNMalformed, STUNAnswered, ICENominations uint64
	DTLSDropped, DTLSHandshakes, DTLSFailures                                      uint64
}

// Snapshot reads the counters.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		SRTPAuthFailed: c.SRTPAuthFailed.Load(), SRTPReplayed: c.SRTPReplayed.Load(),
		SRTPNoKeys: c.SRTPNoKeys.Load(), SRTPMalformed: c.SRTPMalformed.Load(),
		SRTPProtectError: c.SRTPProtectError.Load(), STUNBadIntegrity: c.STUNBadIntegrity.Load(),
		STUNBadUsername: c.STUNBadUsername.Load(), STUNMalformed: c.STUNMalformed.Load(),
		STUNAnswered: c.STUNAnswered.Load(), ICENominations: c.ICENominations.Load(),
		DTLSDropped: c.DTLSDropped.Load(), DTLSHandshakes: c.DTLSHandshakes.Load(),
		DTLSFailures: c.DTLSFailures.Load(),
	}
}

// Add sums two snapshots.
func (s Snapshot) Add(o Snapshot) Snapshot {
	s.SRTPAuthFailed += o.SRTPAuthFailed
	s.SRTPReplayed += o.SRTPReplayed
	s.SRTPNoKeys += o.SRTPNoKeys
	s.SRTPMalformed += o.SRTPMalformed
	s.SRTPProtectError += o.SRTPProtectError
	s.STUNBadIntegrity += o.STUNBadIntegrity
	s.STUNBadUsername += o.STUNBadUsername
	s.STUNMalformed += o.STUNMalformed
	s.STUNAnswered += o.STUNAnswered
	s.ICENominations += o.ICENominations
	s.DTLSDropped += o.DTLSDropped
	s.DTLSHandshakes += o.DTLSHandshakes
	s.DTLSFailures += o.DTLSFailures
	return s
}
