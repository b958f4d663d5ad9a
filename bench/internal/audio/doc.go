// SPDX-License-Identifier: Apache-2.0

// Package audio is the bench's side of transcoding: the codec pairs a
// transcoded call is measured with (the caller speaks only Opus or G.722,
// the callee only PCMU, so the relay must transcode both ways), frames of a
// known tone per direction encoded once with relayd's own codecs
// (pkg/transcode) and then sent round and round, and the check that what a
// relay delivered decodes to the tone the other party sent.
//
// The encoders run only when the bench starts: a generator that encoded
// every packet would spend its CPU on codecs instead of on sending. Opus
// needs a bench built with cgo and the nolibopusfile tag (as relayd); in
// any other build Frames and NewChecker answer an error wrapping
// transcode.ErrCodecUnavailable for it, and the pair is left out.
package audio
