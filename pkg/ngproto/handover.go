// SPDX-License-Identifier: Apache-2.0

package ngproto

// A relayd that restarts hands its reply cache to the next one, so that a
// proxy retransmitting a request the old one already executed (its reply
// was lost, or came after the proxy's timer) gets the same reply instead of
// a second execution: the cache's at-most-once promise holds across the
// restart.

// CachedReply is one completed cache entry.
type CachedReply struct {
	Cookie string `json:"cookie"`
	Reply  []byte `json:"reply"`
}

// Export lists the completed entries, oldest generation first.
func (c *Cache) Export() []CachedReply {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked()
	out := make([]CachedReply, 0, len(c.old.entries)+len(c.cur.entries))
	for _, g := range []*generation{c.old, c.cur} {
		for _, e := range g.entries {
			if e.done {
				out = append(out, CachedReply{Cookie: e.cookie, Reply: e.reply})
			}
		}
	}
	return out
}

// Import adds entries to the current generation, within its budget; an
// entry already held wins. It returns how many were taken.
func (c *Cache) Import(entries []CachedReply) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotateLocked()
	n := 0
	for _, r := range entries {
		if 2*len(c.cur.entries) >= c.cfg.MaxEntries || 2*(c.cur.bytes+len(r.Cookie)+len(r.Reply)) > c.cfg.MaxBytes {
			break
		}
		if c.cur.entries[r.Cookie] != nil || c.old.entries[r.Cookie] != nil {
			continue
		}
		c.cur.entries[r.Cookie] = &cacheEntry{gen: c.cur, cookie: r.Cookie, done: true, reply: r.Reply}
		c.cur.bytes += len(r.Cookie) + len(r.Reply)
		n++
	}
	return n
}

// ExportReplies is the server's cache's Export.
func (s *Server) ExportReplies() []CachedReply { return s.cache.Export() }

// ImportReplies is the server's cache's Import; call it before Serve.
func (s *Server) ImportReplies(entries []CachedReply) int { return s.cache.Import(entries) }
