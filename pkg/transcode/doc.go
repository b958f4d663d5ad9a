// SPDX-License-Identifier: Apache-2.0

// Package transcode owns audio codecs and the conversions between them:
// decoding a payload to linear PCM, resampling, and encoding for the other
// side of a call.
package transcode
