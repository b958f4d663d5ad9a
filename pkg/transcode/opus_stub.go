// SPDX-License-Identifier: Apache-2.0

//go:build !cgo || !nolibopusfile

package transcode

import "fmt"

// opusBuilt reports whether this build carries libopus.
const opusBuilt = false

// opusCodec is the Opus entry of a build without libopus: known to the
// registry, so an SDP offering Opus is understood, but every encoder and
// decoder request fails with an error naming the codec and the cause.
func opusCodec() *Codec {
	return &Codec{
		Name: "opus", StaticPT: -1, ClockRate: 48000, Channels: 2,
		Rates: opusRates, PTimes: opusPTimes,
		MaxPayload:  func(int) int { return opusMaxPayload },
		unavailable: fmt.Errorf("%w: opus needs cgo and libopus (relayd was built with CGO_ENABLED=0 or without -tags nolibopusfile)", ErrCodecUnavailable),
	}
}
