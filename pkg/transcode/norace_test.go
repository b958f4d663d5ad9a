// SPDX-License-Identifier: Apache-2.0

//go:build !race

package transcode

const raceEnabled = false
