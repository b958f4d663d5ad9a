// SPDX-License-Identifier: Apache-2.0

package transcode

// Stats are a transcoder's running totals, in packets unless said otherwise.
type Stats struct {
	In  uint64 // datagrams given to Process
	Out uint64 // packets produced

	// Refused input, each also an error returned by Process.
	NotRTP      uint64 // not a valid RTP header
	UnknownPT   uint64 // a payload type the input leg did not negotiate
	Malformed   uint64 // empty or over-long payloads, short event blocks
	Undecodable uint64 // payloads the decoder refused

	EncodeErrors uint64 // frames the encoder failed on (nothing sent)
	Overflows    uint64 // packets that did not fit the output buffer (never expected)

	Late        uint64 // duplicates and reordered packets, dropped
	Lost        uint64 // input packets the sequence numbers say never came
	Concealed   uint64 // gaps filled by packet loss concealment
	Recovered   uint64 // gaps handed to Opus FEC decoding: libopus rebuilds the last lost frame from the next packet's redundancy when it carries any, and conceals the rest
	Gaps        uint64 // timestamp gaps carried over (silence, DTX)
	SSRCChanges uint64 // new input SSRCs (the output keeps its own)
	Resyncs     uint64 // sequence or timestamp jumps that re-based the timing

	DTXIn  uint64 // Opus DTX frames received
	DTXOut uint64 // frames the Opus encoder's DTX left unsent
	CNIn   uint64 // comfort-noise packets received
	CNOut  uint64 // comfort-noise packets sent

	Events        uint64 // telephone-events translated (one per event)
	EventPackets  uint64 // telephone-event packets sent
	EventsDropped uint64 // events the output cannot carry (not in its list, or no way to)
	Tones         uint64 // events played into the audio as DTMF tones
	ToneMuted     uint64 // input audio packets replaced by a tone
	Detected      uint64 // in-band digits detected
}

// Errors is the number of datagrams refused.
func (s Stats) Errors() uint64 { return s.NotRTP + s.UnknownPT + s.Malformed + s.Undecodable }

const (
	cIn = iota
	cOut
	cNotRTP
	cUnknownPT
	cMalformed
	cUndecodable
	cEncodeErrors
	cOverflow
	cLate
	cLost
	cConcealed
	cRecovered
	cGaps
	cSSRCChanges
	cResyncs
	cDTXIn
	cDTXOut
	cCNIn
	cCNOut
	cEvents
	cEventPackets
	cEventsDropped
	cTones
	cToneMuted
	cDetected
	nCounters
)

func (t *Transcoder) count(c int) { t.st[c].Add(1) }

func (t *Transcoder) fail(c int, err error) error {
	t.st[c].Add(1)
	return err
}

// Stats returns the running totals; safe to call from any goroutine.
func (t *Transcoder) Stats() Stats {
	g := func(c int) uint64 { return t.st[c].Load() }
	return Stats{
		In: g(cIn), Out: g(cOut),
		NotRTP: g(cNotRTP), UnknownPT: g(cUnknownPT), Malformed: g(cMalformed), Undecodable: g(cUndecodable),
		EncodeErrors: g(cEncodeErrors), Overflows: g(cOverflow),
		Late: g(cLate), Lost: g(cLost), Concealed: g(cConcealed), Recovered: g(cRecovered), Gaps: g(cGaps),
		SSRCChanges: g(cSSRCChanges), Resyncs: g(cResyncs),
		DTXIn: g(cDTXIn), DTXOut: g(cDTXOut), CNIn: g(cCNIn), CNOut: g(cCNOut),
		Events: g(cEvents), EventPackets: g(cEventPackets), EventsDropped: g(cEventsDropped),
		Tones: g(cTones), ToneMuted: g(cToneMuted), Detected: g(cDetected),
	}
}
