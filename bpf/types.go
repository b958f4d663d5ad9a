// SPDX-License-Identifier: Apache-2.0

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

const (
	// DefaultPinPath is the bpffs directory relayd pins under by default.
	DefaultPinPath = "/sys/fs/bpf/relayd"
	// PinVersion names the subdirectory of Options.PinPath that holds the
	// pins of this map layout. A layout change bumps it; Open removes the
	// pins of other versions (after taking their lock), so a new relayd
	// never adopts maps it cannot read.
	PinVersion = "v2"

	// DefaultMaxShared is the number of streams of local addresses without
	// a plane when Options.MaxShared is 0.
	DefaultMaxShared = 131072
	// MaxPlanes is how many local addresses get a plane of their own.
	MaxPlanes = 8
	// MaxTxPorts is how many interfaces can be attached at once.
	MaxTxPorts = 256
	// RelayTTL is the IPv4 TTL and IPv6 hop limit of forwarded packets.
	RelayTTL = 64
)

// Options configure Open. The zero value loads without pinning, with the
// default capacities and no planes, logging nowhere.
type Options struct {
	// PinPath is the bpffs base directory; maps are pinned in
	// PinPath/PinVersion and adopted from there by the next Open. Open
	// mounts bpffs when the directory is not on one. Empty: nothing is
	// pinned and everything goes away with Close (tests, or no need to
	// survive restarts).
	PinPath string
	// PinLinks pins the XDP links Attach creates next to the maps, so
	// forwarding continues while relayd restarts and the next Attach of the
	// same interface adopts the link (an atomic program swap). Needs PinPath.
	PinLinks bool
	// LocalAddrs are the relay's media addresses. Each (up to MaxPlanes)
	// gets a plane: 65,536 stream entries (rule and counters, 192 bytes
	// each: 12 MiB), one per UDP port, where a packet finds its stream
	// without a lookup. Rules for other local addresses go to the shared
	// region, found through a hash.
	LocalAddrs []netip.Addr
	// MaxShared is how many streams the shared region holds (0:
	// DefaultMaxShared). Pinned maps of another size or address set are
	// replaced (logged), never half used.
	MaxShared uint32
	// Logger gets the few lines the package logs (load failures with the
	// whole verifier log, bpffs mounts, adopted or replaced state). Nil
	// discards them.
	Logger *slog.Logger
}

// Mode is how Attach hooks the program into an interface.
type Mode int

const (
	// ModeNative runs the program in the driver (XDP_FLAGS_DRV_MODE): the
	// fast one. Drivers without XDP support fail with an error matching
	// ErrNativeUnsupported.
	ModeNative Mode = iota + 1
	// ModeGeneric runs it after the stack has built an skb
	// (XDP_FLAGS_SKB_MODE): works on every interface, slower on real NICs.
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// AttachError is returned by Attach when the kernel refused the link.
type AttachError struct {
	Ifindex int
	Mode    Mode
	Err     error
	// fallback: native mode failed for a reason generic mode may not have.
	fallback bool
}

func (e *AttachError) Error() string {
	return fmt.Sprintf("attach xdp to ifindex %d in %s mode: %v", e.Ifindex, e.Mode, e.Err)
}

func (e *AttachError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNativeUnsupported) true when native mode failed
// in a way worth retrying in generic mode.
func (e *AttachError) Is(target error) bool {
	return target == ErrNativeUnsupported && e.fallback
}

// Flags select per-rule checks and rewrites.
type Flags uint8

const (
	// FlagCheckSource passes packets whose source is not Rule.Peer to the
	// stack (RTP Bleed protection); set it whenever the peer is latched.
	FlagCheckSource Flags = 1 << 0
	// FlagSetTOS writes Rule.TOS into the IPv4 TOS / IPv6 traffic class.
	// Without it the received value is kept.
	FlagSetTOS Flags = 1 << 1
	// FlagRTPCheck passes payloads that are not RTP/RTCP version 2 (STUN,
	// DTLS, anything shorter than 8 bytes) to the stack.
	FlagRTPCheck Flags = 1 << 2
	// FlagRTCPPass passes RTCP (RFC 5761 packet types 192-223) to the stack:
	// the userspace loop reads the parties' reports (call quality, MOS)
	// and forwards them; RTCP is a few packets a second per stream.
	FlagRTCPPass Flags = 1 << 3

	allFlags = FlagCheckSource | FlagSetTOS | FlagRTPCheck | FlagRTCPPass
)

// NextHop is where a forwarded frame goes at layer 2.
type NextHop struct {
	// Ifindex is the egress interface. Equal to the ingress interface, the
	// frame leaves with XDP_TX; otherwise it must be attached (Attach puts
	// it in the redirect map). 0 means unknown: packets go to the stack and
	// are counted as ReasonNoNextHop.
	Ifindex int
	// SrcMAC is the egress interface's address, DstMAC the next hop's (the
	// destination, or its gateway).
	SrcMAC, DstMAC net.HardwareAddr
}

// Rule forwards the UDP datagrams arriving at Local. All addresses are of
// Local's family (IPv4-mapped IPv6 addresses count as IPv4): family changes
// stay in user space.
type Rule struct {
	// Local is the key: the relay's address and port the packets arrive at.
	// Its stream entry (rule and counters) is taken by the first rule for
	// it and kept, counters and all, across rule changes and removals until
	// ReleaseStream.
	Local netip.AddrPort
	// Peer is the expected source, checked with FlagCheckSource.
	Peer netip.AddrPort
	// Source is the relay's address and port the packets leave from.
	Source netip.AddrPort
	// Dest is where they go.
	Dest    netip.AddrPort
	NextHop NextHop
	// TOS is the whole IPv4 TOS / IPv6 traffic class byte (DSCP << 2, e.g.
	// 184 for EF), written with FlagSetTOS.
	TOS   uint8
	Flags Flags
	// ClockRate is the RTP clock rate (Hz) for interarrival jitter; 0
	// leaves jitter at 0 and saves a clock read per packet.
	ClockRate uint32
}

// Reason is a global counter of the program: what happened to a packet.
type Reason uint32

// The reasons, in the order of the program's counters array.
const (
	ReasonTX          Reason = iota // forwarded with XDP_TX
	ReasonRedirect                  // forwarded with a devmap redirect
	ReasonNotIP                     // not IPv4/IPv6 (ARP, VLAN-tagged): passed
	ReasonNotUDP                    // another IP protocol: passed
	ReasonNoRule                    // no rule for the destination: passed
	ReasonWrongSource               // source is not the rule's peer: passed
	ReasonNotRTP                    // not RTP/RTCP v2 (STUN, DTLS): passed
	ReasonIPOptions                 // IPv4 options: passed
	ReasonFragment                  // IPv4 fragment, IPv6 fragment header: passed
	ReasonIPv6Ext                   // other IPv6 extension header: passed
	ReasonNoNextHop                 // no egress, or egress not attached: passed
	ReasonTruncated                 // shorter than its headers or lengths: passed
	ReasonBadRule                   // shared-table entry outside the streams array: passed
	ReasonZeroCsum6                 // IPv6 UDP with zero checksum: dropped
	// ReasonRuleChanging: the rule was being rewritten while the packet
	// read it; passed (the userspace loop relays it).
	ReasonRuleChanging
	ReasonRTCP // RTCP of a FlagRTCPPass rule: passed to the userspace loop
	reasonCount
)

var reasonNames = [reasonCount]string{
	"tx", "redirect", "not_ip", "not_udp", "no_rule", "wrong_source", "not_rtp",
	"ip_options", "fragment", "ipv6_ext", "no_nexthop", "truncated", "bad_rule",
	"zero_csum6", "rule_changing", "rtcp",
}

// Reasons lists every Reason, in counter order.
func Reasons() []Reason {
	rs := make([]Reason, reasonCount)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// String is the counter's name, snake_case (for statistics output).
func (r Reason) String() string {
	if r < reasonCount {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason_%d", uint32(r))
}

// Forwarded reports whether packets counted under r left through the fast
// path.
func (r Reason) Forwarded() bool { return r == ReasonTX || r == ReasonRedirect }

// StreamStats is what the fast path forwarded for a stream (one local
// address and port) since its entry was taken.
type StreamStats struct {
	Packets uint64 // forwarded packets
	Bytes   uint64 // forwarded UDP payload bytes (pkg/media counts the same)
	// LastSeen is the CLOCK_MONOTONIC_COARSE time (ns) of the last forwarded
	// packet, 0 if none; see MonotonicToTime and MonotonicCoarseNow.
	LastSeen uint64
	// WrongSource counts packets passed to the stack because their source
	// was not the rule's peer.
	WrongSource uint64
	// RTCPPackets counts forwarded RTCP (packet types 192-223, RFC 5761).
	RTCPPackets uint32
	RTP         RTPStats
}

// RTPStats is the RTP receiver state of the stream's current SSRC.
type RTPStats struct {
	SSRC uint32
	// Packets counts RTP packets since BaseSeq (duplicates included).
	Packets uint32
	// BaseSeq is the first sequence number, HighestSeq the extended
	// (wrap-counting) highest one, both since the last reset.
	BaseSeq, HighestSeq uint32
	// Jitter is the RFC 3550 interarrival jitter in timestamp units; 0
	// unless the rule had a ClockRate.
	Jitter uint32
	// Resets counts SSRC changes and sequence restarts (a jump of more than
	// 3000), each of which restarts Packets, BaseSeq and Jitter.
	Resets uint32
}

// Expected is the number of packets the sequence numbers account for.
func (r RTPStats) Expected() int64 {
	if r.Packets == 0 {
		return 0
	}
	return int64(r.HighestSeq-r.BaseSeq) + 1
}

// Lost is Expected minus received (RFC 3550 A.3); duplicates make it
// smaller, possibly negative.
func (r RTPStats) Lost() int64 { return r.Expected() - int64(r.Packets) }

// LastSeenTime is LastSeen as wall-clock time (zero if no packet yet).
func (s StreamStats) LastSeenTime() time.Time { return MonotonicToTime(s.LastSeen) }

// normalize checks r and returns it with unmapped addresses, and its family
// (4 or 6).
func (r Rule) normalize() (Rule, uint8, error) {
	bad := func(format string, args ...any) (Rule, uint8, error) {
		return Rule{}, 0, fmt.Errorf("%w: %s", ErrInvalidRule, fmt.Sprintf(format, args...))
	}
	unmap := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if !r.Local.IsValid() || r.Local.Port() == 0 {
		return bad("local address %v", r.Local)
	}
	r.Local = unmap(r.Local)
	fam := uint8(6)
	if r.Local.Addr().Is4() {
		fam = 4
	}
	sameFamily := func(ap netip.AddrPort) bool { return ap.Addr().Is4() == (fam == 4) }
	for _, f := range []struct {
		name string
		ap   *netip.AddrPort
	}{{"source", &r.Source}, {"destination", &r.Dest}} {
		if !f.ap.IsValid() || f.ap.Port() == 0 {
			return bad("%s %v", f.name, *f.ap)
		}
		*f.ap = unmap(*f.ap)
		if !sameFamily(*f.ap) {
			return bad("%s %v is not of the family of local %v (family changes stay in user space)", f.name, *f.ap, r.Local)
		}
	}
	if r.Peer.IsValid() {
		r.Peer = unmap(r.Peer)
		if !sameFamily(r.Peer) {
			return bad("peer %v is not of the family of local %v", r.Peer, r.Local)
		}
	} else if r.Flags&FlagCheckSource != 0 {
		return bad("source check without a peer")
	}
	if r.Flags&^allFlags != 0 {
		return bad("unknown flags %#x", uint8(r.Flags&^allFlags))
	}
	if r.NextHop.Ifindex < 0 || r.NextHop.Ifindex > 1<<31-1 {
		return bad("ifindex %d", r.NextHop.Ifindex)
	}
	if r.NextHop.Ifindex != 0 && (len(r.NextHop.SrcMAC) != 6 || len(r.NextHop.DstMAC) != 6) {
		return bad("next hop on ifindex %d needs 6-byte MACs (got %q and %q)", r.NextHop.Ifindex, r.NextHop.SrcMAC, r.NextHop.DstMAC)
	}
	return r, fam, nil
}

// errIs is errors.Is over several targets.
func errIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
