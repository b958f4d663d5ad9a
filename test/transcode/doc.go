// SPDX-License-Identifier: Apache-2.0

// Package transcode runs transcoded calls through the relayd daemon over
// real UDP on loopback: each party speaks only its own codec (Opus, G.722,
// PCMU, PCMA), the relay is told to transcode as a proxy would tell it, and
// each side decodes and measures what it hears.
//
// The package owns only test tooling: everything is in the _test.go files.
package transcode
