// SPDX-License-Identifier: Apache-2.0

// Package lograttest holds what tests of rate-limited logging share: a
// clock they move by hand, so a summary interval passes without waiting.
package lograttest

import (
	"sync"
	"time"
)

// Clock is a lograte.Config clock (Now, AfterFunc) that stands still until
// Advance moves it and runs what was scheduled meanwhile.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	pending []func()
}

// NewClock starts a Clock at a fixed instant.
func NewClock() *Clock { return &Clock{now: time.Unix(1_700_000_000, 0)} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f for the next Advance, whatever the duration.
func (c *Clock) AfterFunc(_ time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, f)
}

// Advance moves the clock by d and runs what was scheduled.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	fs := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}
