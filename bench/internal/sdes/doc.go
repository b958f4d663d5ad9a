// SPDX-License-Identifier: Apache-2.0

// Package sdes owns the bench's SRTP keying by SDES (RFC 4568): the crypto
// suites it can offer, fresh master keys, and the a=crypto lines it writes
// into the caller's offer and reads from the relay's answer. It is the
// bench's own and shares no code with relayd's, so that a relay is checked
// against an independent reading of the same RFCs.
package sdes
