// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"maps"
	"net/netip"
	"sync"
	"time"
)

// Names under which ServerStats counts requests that have no usable command.
const (
	// StatsInvalid counts requests that could not be decoded or parsed.
	StatsInvalid = "(invalid)"
	// StatsUnknown counts requests naming a command the protocol does not
	// define; keeping them apart stops arbitrary names from growing the tables.
	StatsUnknown = "(unknown)"
)

// maxStatsProxies caps the per-source table; further sources are counted
// under the zero netip.Addr so that spoofed sources cannot grow it.
const maxStatsProxies = 1024

// CommandStats counts one command.
type CommandStats struct {
	Requests   uint64
	Errors     uint64 // replies with result "error"
	HandleTime time.Duration
}

// ServerStats is a snapshot of the control server's counters.
type ServerStats struct {
	// Requests counts executed requests (retransmissions excluded).
	Requests uint64
	// Retransmits counts datagrams answered from, or parked on, the reply cache.
	Retransmits uint64
	// Dropped counts datagrams without a cookie (never answered).
	Dropped uint64
	// Refused counts datagrams from sources outside the allow-list (never
	// answered).
	Refused uint64
	// Replies counts reply datagrams sent, retransmitted ones included.
	Replies uint64
	// Errors counts executed requests answered with result "error".
	Errors uint64
	// SendErrors counts replies the socket refused.
	SendErrors uint64
	// Shed counts replies too large for one datagram, sent without their
	// bulkiest optional parts.
	Shed uint64
	// CacheEntries and CacheBytes are what the reply cache holds now.
	CacheEntries, CacheBytes int
	// HandleTime is the cumulative time spent decoding, handling and encoding.
	HandleTime time.Duration
	// Commands is keyed by canonical command name, StatsInvalid or StatsUnknown.
	Commands map[string]CommandStats
	// Proxies holds per-command counts per source IP.
	Proxies map[netip.Addr]map[string]CommandStats
}

type statsCollector struct {
	mu sync.Mutex
	s  ServerStats
}

func (c *statsCollector) request(command string, from netip.Addr, isError bool, d time.Duration) {
	switch {
	case command == "":
		command = StatsInvalid
	case !KnownCommand(command):
		command = StatsUnknown
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.Commands == nil {
		c.s.Commands = make(map[string]CommandStats)
		c.s.Proxies = make(map[netip.Addr]map[string]CommandStats)
	}
	c.s.Requests++
	c.s.HandleTime += d
	if isError {
		c.s.Errors++
	}
	add := func(m map[string]CommandStats) {
		cs := m[command]
		cs.Requests++
		cs.HandleTime += d
		if isError {
			cs.Errors++
		}
		m[command] = cs
	}
	add(c.s.Commands)
	pm := c.s.Proxies[from]
	if pm == nil {
		if len(c.s.Proxies) >= maxStatsProxies {
			from = netip.Addr{}
			pm = c.s.Proxies[from]
		}
		if pm == nil {
			pm = make(map[string]CommandStats)
			c.s.Proxies[from] = pm
		}
	}
	add(pm)
}

func (c *statsCollector) dropped() {
	c.mu.Lock()
	c.s.Dropped++
	c.mu.Unlock()
}

func (c *statsCollector) refused() {
	c.mu.Lock()
	c.s.Refused++
	c.mu.Unlock()
}

func (c *statsCollector) retransmit() {
	c.mu.Lock()
	c.s.Retransmits++
	c.mu.Unlock()
}

func (c *statsCollector) reply() {
	c.mu.Lock()
	c.s.Replies++
	c.mu.Unlock()
}

func (c *statsCollector) shed() {
	c.mu.Lock()
	c.s.Shed++
	c.mu.Unlock()
}

func (c *statsCollector) sendError() {
	c.mu.Lock()
	c.s.SendErrors++
	c.mu.Unlock()
}

func (c *statsCollector) snapshot() ServerStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.s
	out.Commands = maps.Clone(c.s.Commands)
	out.Proxies = make(map[netip.Addr]map[string]CommandStats, len(c.s.Proxies))
	for a, m := range c.s.Proxies {
		out.Proxies[a] = maps.Clone(m)
	}
	if out.Commands == nil {
		out.Commands = map[string]CommandStats{}
	}
	return out
}
