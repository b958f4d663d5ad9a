// SPDX-License-Identifier: Apache-2.0

// Command bench is relayd's load generator: it drives any ng relay the way
// a SIP proxy does and measures it, by default against the incumbent
// (sipwise rtpengine). See BENCHMARKS.md at the repository root for how to
// run it and read its results, and `go run ./bench -h` for every flag.
//
// The work is split by concern under internal/: topo (namespaces and
// veths), relay (the relays under test), calls (the ng driver and SDP),
// gen and payload (RTP generator and receiver), metrics (histograms and
// /proc accounting), report (tables, JSON, plots) and runner (the modes).
package main
