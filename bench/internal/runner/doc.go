// SPDX-License-Identifier: Apache-2.0

// Package runner owns the bench's modes and their order: it builds the
// topology and the generator once, then, for every repetition and every
// relay in alternating order, starts the relay and drives it through fixed
// loads, the ramp to the highest loss-free load, a soak with call churn and
// the control-plane runs, measuring each window and checking the relay's
// own counters against what was sent. It always tears down what it built.
package runner
