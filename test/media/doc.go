// SPDX-License-Identifier: Apache-2.0

// Package media holds the full-stack media tests: the real relayd binary,
// driven over the ng protocol, relays real UDP between parties that live in
// their own network namespaces (an external party, an internal party and an
// attacker on the external segment) and have no route to each other, so every
// packet that arrives went through the relay process.
//
// The package owns only test tooling and has no API: everything is in the
// _test.go files (package media_test). See README.md for what each scenario
// proves and how to run one.
package media
