// SPDX-License-Identifier: Apache-2.0

package webrtc

import "errors"

// ErrUnknownSuite means an SDES crypto suite this relay does not implement.
var ErrUnknownSuite = errors.New("unknown or unsupported SRTP crypto suite")

// ErrBadCrypto means an a=crypto attribute that does not parse.
var ErrBadCrypto = errors.New("malformed a=crypto attribute")

// ErrBadFingerprint means an a=fingerprint the relay cannot check against.
var ErrBadFingerprint = errors.New("malformed or unsupported a=fingerprint")

// ErrFingerprintMismatch means the DTLS peer's certificate is not the one
// its SDP announced.
var ErrFingerprintMismatch = errors.New("DTLS peer certificate does not match the SDP fingerprint")

// ErrNoSRTPProfile means the DTLS handshake agreed on no SRTP protection
// profile (the peer did not offer use_srtp with one we support).
var ErrNoSRTPProfile = errors.New("DTLS handshake selected no SRTP protection profile")
