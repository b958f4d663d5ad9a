// SPDX-License-Identifier: Apache-2.0

package session

import (
	"net"
	"net/netip"
	"time"
)

// MediaPlane is the forwarding side the session layer drives.
type MediaPlane interface{}

// streamState is one local socket of a port set.
type streamState struct {
	conn *net.UDPConn
	rtcp bool
}

func (c *Call) attach(ps *portSet) error {
	for i, conn := range ps.alloc.Conns {
		ps.streams = append(ps.streams, &streamState{conn: conn, rtcp: i == 1})
	}
	return nil
}

func (c *Call) releaseSet(ps *portSet) {
	ps.alloc.Release()
}

func (c *Call) configureMedia(fm, tm *media, opts *Options) {}

func (c *Call) collectTotals() {}

func (c *Call) liveCounters() liveTotals { return liveTotals{} }

func (st *streamState) info(md *media) StreamInfo {
	local := st.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	si := StreamInfo{Local: netip.AddrPortFrom(local.Addr().Unmap(), local.Port()), RTCP: st.rtcp}
	si.AdvertisedEndpoint = md.sdpRTP
	if st.rtcp {
		si.AdvertisedEndpoint = md.sdpRTCP
	}
	si.Endpoint = si.AdvertisedEndpoint
	if md.cur != nil {
		si.Advertised = md.cur.addr.advertised
	}
	si.Flags = []string{"RTP"}
	if st.rtcp {
		si.Flags = []string{"RTCP"}
	}
	return si
}

// expired tells whether the call's time is up, and why.
func (c *Call) expired(now time.Time) (endReason, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.deleteAt.IsZero() && !now.Before(c.deleteAt):
		return endDeleted, true
	case c.m.cfg.FinalTimeout > 0 && now.Sub(c.created) >= c.m.cfg.FinalTimeout:
		return endFinalTimeout, true
	case !c.answered && c.m.cfg.OfferTimeout > 0 && now.Sub(c.lastSignal) >= c.m.cfg.OfferTimeout:
		return endOfferTimeout, true
	}
	return 0, false
}
