// SPDX-License-Identifier: Apache-2.0

// Package relay owns the relays under test: the --relay list of
// implementations and forwarding modes (relayd:userspace, relayd:xdp,
// rtpengine, ...) with the extra flags each mode passes, building relayd,
// and starting a relay pinned to its CPUs inside its namespace with the
// same settings for every implementation, then stopping it.
package relay
