// SPDX-License-Identifier: Apache-2.0

// Package browser puts a real browser on one side of relayd: Debian's
// Chromium, headless, calls a plain RTP/AVP PCMU phone through the relayd
// daemon and is called by it, inside a network namespace the test creates.
// The test plays the SIP proxy with the flag strings Kamailio's routes send,
// and checks what each end really gets: the DTLS-SRTP connection the browser
// reports, each side's tone decoded and measured, and the browser's DTMF as
// RFC 4733 events at the phone.
//
// The package owns only test tooling: everything is in the _test.go files.
package browser
