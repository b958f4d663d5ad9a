// SPDX-License-Identifier: Apache-2.0

//go:build race

package transcode

// raceEnabled: the race detector adds allocations of its own.
const raceEnabled = true
