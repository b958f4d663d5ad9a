// SPDX-License-Identifier: Apache-2.0

package recording

import (
	"net/netip"

	"github.com/relayd/relayd/pkg/media"
)

// Ingress is the stage that records what a stream's party sends: put it
// first in the stream's StreamConfig.Stages, which run after the SRTP
// handler has decrypted the packet, so that it sees the packet as the party
// sent it. Packets appear in the file from the party's address to the relay
// socket's.
func (rec *Recording) Ingress() media.Stage { return ingressTap{rec} }

// Egress is the stage that records what the relay sends a stream's party:
// put it in the stream's StreamConfig.Egress right before SRTP protection.
// Packets appear in the file from the relay socket's address to the party's.
func (rec *Recording) Egress() media.Stage { return egressTap{rec} }

type ingressTap struct{ rec *Recording }

// Kernel is false: the kernel rule cannot copy packets into a recording.
func (ingressTap) Kernel() bool { return false }

func (t ingressTap) Handle(p *media.Packet) media.Verdict {
	if (p.Kind == media.KindRTP || p.Kind == media.KindRTCP) && p.Stream != nil {
		t.rec.put(p.NowNs, p.Source, p.Stream.LocalAddr(), p.Data)
	}
	return media.Continue
}

type egressTap struct{ rec *Recording }

// Kernel is false: a stream sending into a recorded one stays in userspace.
func (egressTap) Kernel() bool { return false }

func (t egressTap) Handle(p *media.Packet) media.Verdict {
	if (p.Kind == media.KindRTP || p.Kind == media.KindRTCP) && p.Sink != nil {
		if dst, ok := p.Sink.Destination(); ok {
			t.rec.put(p.NowNs, p.Sink.LocalAddr(), dst, p.Data)
		}
	}
	return media.Continue
}

// put queues one copy; never blocks. A paused or stopped recording takes
// nothing; a full queue counts a drop.
func (rec *Recording) put(ns int64, src, dst netip.AddrPort, data []byte) {
	if rec.paused.Load() {
		return
	}
	switch rec.q.put(ns, src, dst, data) {
	case putDrop:
		rec.dropped.Add(1)
		rec.r.dropped.Add(1)
	case putHalf:
		rec.r.kick()
	}
}
