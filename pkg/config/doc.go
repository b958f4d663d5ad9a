// SPDX-License-Identifier: Apache-2.0

// Package config owns relayd's start-up configuration: the ini file (compatible
// with the incumbent rtpengine's "[rtpengine]" section), the command-line flags
// that override it, and validation of every value before the daemon starts.
//
// Load is the only entry point the daemon needs; it never touches global state
// and reports unknown file keys as warnings so that an rtpengine.conf can be
// used as is.
package config
