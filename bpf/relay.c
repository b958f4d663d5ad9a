//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * relayd's XDP fast path: forwards plain RTP/RTCP over UDP (IPv4 and IPv6)
 * for streams whose peer user space has latched, rewriting addresses, ports
 * and checksums and sending the frame out with XDP_TX or a devmap redirect.
 *
 * Every decision is taken before the first write to the packet: anything the
 * program does not fully understand leaves with XDP_PASS, unmodified, and is
 * counted by reason in `counters`. The only drop is an IPv6 UDP datagram with
 * a zero checksum addressed to a rule (invalid, RFC 8200 §8.1; the stack would
 * drop it too).
 *
 * The Go side (table_linux.go, types.go) mirrors every layout and constant
 * here; the tests check that they agree.
 */

#include "relay_kern.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_endian.h"

#define MAX_SHARED 131072
#define MAX_PLANES 8
#define PLANE_PORTS 65536
#define MAX_TX_PORTS 256

#define FAMILY_V4 4
#define FAMILY_V6 6

/* Relayed packets leave as if the relay had sent them (it is an endpoint,
 * not a router): a fresh TTL / hop limit. */
#define RELAY_TTL 64

/* RFC 3550 A.1 limits. */
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
/* Caps one interarrival difference so that a timestamp jump (hold, a new
 * sender behind the same SSRC) cannot overflow the scaled jitter. */
#define MAX_JITTER_STEP (1 << 26)

#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define barrier() asm volatile("" ::: "memory")

enum fwd_flag {
	FLAG_CHECK_SRC = 1 << 0, /* source must be peer_addr:peer_port */
	FLAG_SET_TOS = 1 << 1,   /* write tos (IPv4 TOS / IPv6 traffic class) */
	FLAG_RTP_CHECK = 1 << 2, /* payload must look like RTP/RTCP version 2 */
	FLAG_RTCP_PASS = 1 << 3, /* RTCP goes to user space (call quality) */
};

enum reason {
	REASON_TX,            /* forwarded with XDP_TX */
	REASON_REDIRECT,      /* forwarded with a devmap redirect */
	REASON_NOT_IP,        /* not IPv4/IPv6 (ARP, VLAN tags, ...) */
	REASON_NOT_UDP,       /* IP, another protocol */
	REASON_NO_RULE,       /* UDP to an address:port without a rule */
	REASON_WRONG_SOURCE,  /* rule's peer does not match the source */
	REASON_NOT_RTP,       /* payload not RTP/RTCP v2 (STUN, DTLS, ...) */
	REASON_IP_OPTIONS,    /* IPv4 header with options */
	REASON_FRAGMENT,      /* IPv4 fragment or IPv6 fragment header */
	REASON_IPV6_EXT,      /* other IPv6 extension header */
	REASON_NO_NEXTHOP,    /* rule without egress, or egress not in tx_ports */
	REASON_TRUNCATED,     /* frame shorter than its headers or lengths claim */
	REASON_BAD_RULE,      /* shared-table entry outside the streams array */
	REASON_ZERO_CSUM6,    /* IPv6 UDP with zero checksum: dropped */
	REASON_RULE_CHANGING, /* user space was rewriting the rule meanwhile */
	REASON_RTCP,          /* RTCP of a FLAG_RTCP_PASS rule, for user space */
	REASON_MAX,
};

/*
 * Rule storage (pin layout v2).
 *
 * Live, what a packet costs is mostly cache and TLB misses: a stream's
 * packets come 20 ms apart, after everybody else's. The v1 layout paid
 * three scattered pages and about five cache lines per packet (a hash
 * bucket, the hash element, a separate stats slot). Here a packet's rule
 * and its stream's counters are one 192-byte `struct stream`, an entry of
 * the `streams` array, and a packet to one of the relay's media addresses
 * finds its entry without reading anything else first:
 *  - each media address is a "plane" (listed in `planes`, a hot line that
 *    every packet reads) owning 65,536 entries, one per UDP port: the
 *    entry of port P on plane N is streams[N << 16 | P]. The same port on
 *    two media addresses is two planes, two entries: no collision. A
 *    forwarded IPv4 packet touches the entry's first two lines (IPv6:
 *    three), one page;
 *  - entries after the planes form the shared region, for any other
 *    local address (more addresses than MAX_PLANES, tests, the bench's
 *    filler rules): the `fwd` hash maps {address, port, family} to one,
 *    which user space hands out lowest free first.
 * Measured live (BENCHMARKS.md), a port table holding entry numbers in
 * front of densely packed entries cost one more dependent cache miss per
 * packet than it saved in pages: reading the entry first is cheaper.
 *
 * Whatever the path, the entry names its own local address and port, and
 * the program forwards only when they are the packet's: an index read
 * while user space reassigns it (a released stream's shared entry taken
 * by another) never forwards with the wrong rule.
 *
 * Counters live next to the rule, outside the words user space rewrites,
 * so a rule change never resets them; user space zeroes an entry when it
 * hands it to a new stream, before the stream's first rule.
 */
struct stream {
	/* Line 0: the rule as every packet reads it (all of it for IPv4)
	 * and the counters every forwarded packet writes. */
	__u32 seq;          /* even: stable; odd: user space is writing */
	__u8 family;        /* FAMILY_V4/V6: a rule is installed; 0: none */
	__u8 flags;         /* enum fwd_flag */
	__u8 tos;
	__u8 pad0;
	__be16 local_port;  /* the key, checked against the packet */
	__be16 peer_port;   /* expected source (the latched peer) */
	__be16 src_port;    /* new source: the relay's egress port */
	__be16 dst_port;    /* new destination */
	__be32 local_addr;  /* first word of each address (IPv4: all) */
	__be32 peer_addr;
	__be32 src_addr;
	__be32 dst_addr;
	__u32 ifindex;      /* egress interface; 0 = unknown next hop */
	__u32 clock_rate;   /* RTP clock rate for jitter; 0 = no jitter */
	__u64 packets;      /* forwarded */
	__u64 bytes;        /* UDP payload bytes forwarded */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC_COARSE of the last forwarded packet */
	/* Line 1: next hop, RTP receiver state. */
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
	__u32 owner;        /* user space only: family of the owning local, 0 = free */
	__u64 wrong_source; /* passed up because the source did not match */
	__u32 rtcp_packets; /* forwarded RTCP (RFC 5761 packet types 192-223) */
	__u32 ssrc;         /* SSRC of the current RTP sender */
	__u32 rtp_packets;  /* RTP packets since ssrc/base_seq were set */
	__u32 base_seq;     /* first sequence number since then */
	__u32 max_seq;      /* extended highest sequence number */
	__u32 jitter;       /* RFC 3550 A.8 jitter << 4, timestamp units */
	__u32 transit;      /* last relative transit time, timestamp units */
	__u32 resets;       /* SSRC changes and sequence resyncs */
	__u64 pad1;
	/* Line 2: words 1-3 of IPv6 addresses. */
	__be32 local_addr6[3];
	__be32 peer_addr6[3];
	__be32 src_addr6[3];
	__be32 dst_addr6[3];
	__u32 pad2[4];
};

/* The rule as read from an entry, on the stack: every later decision and
 * the rewrite use this copy, never the entry, so they see one version. */
struct rule {
	__be32 local[4];
	__be32 peer[4];
	__be32 src[4];
	__be32 dst[4];
	__be16 local_port;
	__be16 peer_port;
	__be16 src_port;
	__be16 dst_port;
	__u32 ifindex;
	__u32 clock_rate;
	__u8 family;
	__u8 flags;
	__u8 tos;
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
};

struct fwd_key {
	__be32 addr[4]; /* local address; IPv4 in addr[0], the rest zero */
	__be16 port;    /* local port */
	__u8 family;    /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad;       /* zero */
};

struct plane {
	__be32 addr[4]; /* a media address; IPv4 in addr[0] */
	__u32 family;   /* FAMILY_V4 or FAMILY_V6 */
};

struct planes {
	__u32 count; /* plane[0..count) are in use */
	struct plane plane[MAX_PLANES];
};

struct rtphdr {
	__u8 vpxcc;
	__u8 mpt;
	__be16 seq;
	__be32 ts;
	__be32 ssrc;
};

union ports {
	struct {
		__be16 src;
		__be16 dst;
	};
	__u32 word;
};

/* Set at load time: 1 on CPUs that never reorder a load with an earlier
 * load (x86-TSO), where the seqcount below is read with plain loads in
 * program order (the JIT keeps that order); elsewhere (arm64) it is read
 * with fully ordered atomics. */
volatile const __u8 loads_ordered = 0;

/* planes * PLANE_PORTS entries, then MAX_SHARED; sized by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SHARED);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct stream);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} streams SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct planes);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} planes SEC(".maps");

/* The shared table: local addresses without a plane -> entry. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SHARED);
	__type(key, struct fwd_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_MAX);
	__type(key, enum reason);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

static __always_inline void count(enum reason r)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &r);

	if (c)
		*c += 1;
}

static __always_inline int pass(enum reason r)
{
	count(r);
	return XDP_PASS;
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static __always_inline __sum16 ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return ~csum_fold(sum);
}

/* RFC 1624 incremental update over the changed words (addresses and the
 * port word). The caller never passes a zero (absent) IPv4 checksum. A
 * result of zero is sent as 0xffff: zero would mean "no checksum". */
static __always_inline __sum16 udp_csum_update(__sum16 check, __u32 *from,
					       __u32 *to, __u32 size)
{
	__s64 sum = bpf_csum_diff(from, size, to, size, ~check & 0xffff);
	__u16 r = ~csum_fold((__u32)sum);

	return r ? r : 0xffff;
}

/* RTP or RTCP version 2 by RFC 7983's first-byte ranges (128-191): STUN (0-3)
 * and DTLS (20-63) fail. 8 bytes is the RTCP fixed header, RTP's is 12. */
static __always_inline int is_rtp_v2(const __u8 *p, __u32 plen,
				     const void *data_end)
{
	if (plen < 8 || (const void *)(p + 8) > data_end)
		return 0;
	return (p[0] & 0xc0) == 0x80;
}

/* RTCP version 2 by RFC 5761 §4's packet types 192-223 (an RTP payload type
 * there would clash with RTCP on a multiplexed port). */
static __always_inline int is_rtcp(const __u8 *p, __u32 plen,
				   const void *data_end)
{
	return is_rtp_v2(p, plen, data_end) && p[1] >= 192 && p[1] <= 223;
}

static __always_inline void rtp_account(struct stream *st,
					const struct rtphdr *rtp,
					__u32 clock_rate)
{
	__u16 seq = bpf_ntohs(rtp->seq);
	__u32 ssrc = bpf_ntohl(rtp->ssrc);
	int restart = 0;

	if (st->rtp_packets == 0 || st->ssrc != ssrc) {
		if (st->rtp_packets != 0)
			st->resets++;
		st->ssrc = ssrc;
		restart = 1;
	} else {
		__u16 delta = seq - (__u16)st->max_seq;

		if (delta != 0 && delta < MAX_DROPOUT) {
			/* In order, possibly after a gap; wraps extend. */
			st->max_seq += delta;
		} else if (delta != 0 && delta <= 0xffff - MAX_MISORDER) {
			/* A jump: the sender restarted its sequence. */
			st->resets++;
			restart = 1;
		}
		/* Otherwise late or duplicate: received, max unchanged. */
	}
	if (restart) {
		st->base_seq = seq;
		st->max_seq = seq;
		st->rtp_packets = 0;
		st->jitter = 0;
		st->transit = 0;
	}
	st->rtp_packets++;

	if (clock_rate == 0)
		return;
	/* Arrival in timestamp units; microseconds keep the product far from
	 * overflow (2^40 us of uptime times a 2^17 Hz clock). */
	__u64 now_us = bpf_ktime_get_ns() / 1000;
	__u32 arrival = now_us * clock_rate / 1000000;
	__u32 transit = arrival - bpf_ntohl(rtp->ts);

	if (st->transit != 0) {
		__s32 d = transit - st->transit;

		if (d < 0)
			d = -d;
		if (d > MAX_JITTER_STEP)
			d = MAX_JITTER_STEP;
		st->jitter += (__u32)d - ((st->jitter + 8) >> 4);
	}
	st->transit = transit ? transit : 1;
}

static __always_inline void account(struct stream *st,
				    const struct rule *rule,
				    const __u8 *p, __u32 plen,
				    const void *data_end)
{
	__sync_fetch_and_add(&st->packets, 1);
	__sync_fetch_and_add(&st->bytes, plen);
	st->last_seen_ns = bpf_ktime_get_coarse_ns();

	if (!is_rtp_v2(p, plen, data_end))
		return;
	if (p[1] >= 192 && p[1] <= 223) {
		__sync_fetch_and_add(&st->rtcp_packets, 1);
		return;
	}
	if (plen < sizeof(struct rtphdr) ||
	    (const void *)(p + sizeof(struct rtphdr)) > data_end)
		return;
	rtp_account(st, (const struct rtphdr *)p, rule->clock_rate);
}

/* The entry for the packet's local address and port (key), NULL when there
 * is none (*why says whether that is no rule or a corrupt shared-table
 * value). A media address's entry is computed, not looked up; only
 * addresses without a plane pay a hash lookup first. */
static __always_inline struct stream *find_stream(const struct fwd_key *key,
						  enum reason *why)
{
	__u32 zero = 0, idx;
	struct planes *pl = bpf_map_lookup_elem(&planes, &zero);

	*why = REASON_NO_RULE;
	if (pl) {
		__u32 n = pl->count;

		for (__u32 i = 0; i < MAX_PLANES; i++) {
			if (i >= n)
				break;
			const struct plane *p = &pl->plane[i];

			if (p->family != key->family ||
			    p->addr[0] != key->addr[0] ||
			    p->addr[1] != key->addr[1] ||
			    p->addr[2] != key->addr[2] ||
			    p->addr[3] != key->addr[3])
				continue;
			idx = i << 16 | bpf_ntohs(key->port);
			goto found;
		}
	}
	__u32 *slot = bpf_map_lookup_elem(&fwd, key);

	if (!slot)
		return NULL;
	idx = *slot;
found:;
	struct stream *e = bpf_map_lookup_elem(&streams, &idx);

	if (!e)
		*why = REASON_BAD_RULE;
	return e;
}

/*
 * Seqcount, read side. User space is the only writer of an entry's rule
 * words (one writer per entry: a process claims an entry before writing
 * it). It makes seq odd, rewrites the words, makes seq even again. The
 * program copies the rule between two reads of seq and uses the copy only
 * when both read the same even value: no write overlapped the copy, so it
 * is one version, never half old and half new. Otherwise the packet goes
 * to the stack untouched (REASON_RULE_CHANGING), where the userspace loop
 * relays it, and no byte of it has been written.
 *
 * The copy's loads must not be performed before the first read of seq nor
 * after the second. x86 never reorders loads with loads and the JIT emits
 * them in program order, so a compiler barrier is enough there; other
 * CPUs read seq with a fully ordered atomic (a fetch-add of 0).
 */
static __always_inline __u32 seq_begin(__u32 *seq)
{
	__u32 s;

	if (loads_ordered) {
		s = READ_ONCE(*seq);
		barrier();
	} else {
		s = __sync_fetch_and_add(seq, 0);
	}
	return s;
}

static __always_inline int seq_retry(__u32 *seq, __u32 start)
{
	__u32 s;

	if (loads_ordered) {
		barrier();
		s = READ_ONCE(*seq);
	} else {
		s = __sync_fetch_and_add(seq, 0);
	}
	return (start & 1) || s != start;
}

static __always_inline void copy_rule_v4(const struct stream *e, struct rule *r)
{
	r->family = e->family;
	r->flags = e->flags;
	r->tos = e->tos;
	r->local_port = e->local_port;
	r->peer_port = e->peer_port;
	r->src_port = e->src_port;
	r->dst_port = e->dst_port;
	r->local[0] = e->local_addr;
	r->peer[0] = e->peer_addr;
	r->src[0] = e->src_addr;
	r->dst[0] = e->dst_addr;
	r->ifindex = e->ifindex;
	r->clock_rate = e->clock_rate;
	__builtin_memcpy(r->smac, e->smac, ETH_ALEN);
	__builtin_memcpy(r->dmac, e->dmac, ETH_ALEN);
}

static __always_inline void copy_rule_v6(const struct stream *e, struct rule *r)
{
	copy_rule_v4(e, r);
#pragma unroll
	for (int i = 0; i < 3; i++) {
		r->local[1 + i] = e->local_addr6[i];
		r->peer[1 + i] = e->peer_addr6[i];
		r->src[1 + i] = e->src_addr6[i];
		r->dst[1 + i] = e->dst_addr6[i];
	}
}

/* XDP_TX when the packet leaves where it came in, XDP_REDIRECT when the
 * egress is in tx_ports, XDP_PASS when there is no usable next hop. */
static __always_inline int egress(const struct rule *rule, __u32 ingress)
{
	__u32 ifindex = rule->ifindex;

	if (ifindex == 0)
		return XDP_PASS;
	if (ifindex == ingress)
		return XDP_TX;
	if (!bpf_map_lookup_elem(&tx_ports, &ifindex))
		return XDP_PASS;
	return XDP_REDIRECT;
}

static __always_inline int send(int action, __u32 ifindex)
{
	if (action == XDP_TX) {
		count(REASON_TX);
		return XDP_TX;
	}
	count(REASON_REDIRECT);
	/* Membership was checked before the rewrite; should the entry vanish
	 * in between, the frame is aborted (visible in the xdp_exception
	 * tracepoint), never passed up rewritten. */
	return bpf_redirect_map(&tx_ports, ifindex, 0);
}

static __always_inline void rewrite_eth(struct ethhdr *eth,
					const struct rule *rule)
{
	__builtin_memcpy(eth->h_dest, rule->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, rule->smac, ETH_ALEN);
}

static __always_inline int relay_v4(struct ethhdr *eth, void *data_end,
				    __u32 ingress)
{
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(ip + 1) > data_end)
		return pass(REASON_TRUNCATED);
	if ((ip->ver_ihl >> 4) != 4)
		return pass(REASON_NOT_IP);
	if ((ip->ver_ihl & 0xf) != 5)
		return pass(REASON_IP_OPTIONS);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return pass(REASON_FRAGMENT);
	if (ip->protocol != IPPROTO_UDP)
		return pass(REASON_NOT_UDP);
	if ((void *)(udp + 1) > data_end)
		return pass(REASON_TRUNCATED);

	__u32 tot_len = bpf_ntohs(ip->tot_len);
	__u32 ulen = bpf_ntohs(udp->len);

	/* Trailing bytes (Ethernet padding) may follow tot_len. */
	if (tot_len < sizeof(*ip) + sizeof(*udp) ||
	    (void *)ip + tot_len > data_end || ulen != tot_len - sizeof(*ip))
		return pass(REASON_TRUNCATED);

	struct fwd_key key = {
		.addr = { ip->daddr },
		.port = udp->dest,
		.family = FAMILY_V4,
	};
	enum reason why;
	struct stream *st = find_stream(&key, &why);

	if (!st)
		return pass(why);

	struct rule r;
	__u32 seq = seq_begin(&st->seq);

	copy_rule_v4(st, &r);
	if (seq_retry(&st->seq, seq))
		return pass(REASON_RULE_CHANGING);
	/* Removed (family 0), or the entry is another local's now. */
	if (r.family != FAMILY_V4 || r.local[0] != ip->daddr ||
	    r.local_port != udp->dest)
		return pass(REASON_NO_RULE);
	if ((r.flags & FLAG_CHECK_SRC) &&
	    (ip->saddr != r.peer[0] || udp->source != r.peer_port)) {
		__sync_fetch_and_add(&st->wrong_source, 1);
		return pass(REASON_WRONG_SOURCE);
	}

	__u8 *payload = (void *)(udp + 1);
	__u32 plen = ulen - sizeof(*udp);

	if ((r.flags & FLAG_RTP_CHECK) && !is_rtp_v2(payload, plen, data_end))
		return pass(REASON_NOT_RTP);
	if ((r.flags & FLAG_RTCP_PASS) && is_rtcp(payload, plen, data_end))
		return pass(REASON_RTCP);

	int action = egress(&r, ingress);

	if (action == XDP_PASS)
		return pass(REASON_NO_NEXTHOP);

	/* Decided: rewrite. */
	union ports oldp = { .src = udp->source, .dst = udp->dest };
	union ports newp = { .src = r.src_port, .dst = r.dst_port };
	__u32 from[3] = { ip->saddr, ip->daddr, oldp.word };
	__u32 to[3] = { r.src[0], r.dst[0], newp.word };

	rewrite_eth(eth, &r);
	ip->saddr = to[0];
	ip->daddr = to[1];
	ip->ttl = RELAY_TTL;
	if (r.flags & FLAG_SET_TOS)
		ip->tos = r.tos;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	udp->source = newp.src;
	udp->dest = newp.dst;
	/* Zero means "no checksum" for IPv4 UDP (RFC 768): keep it. */
	if (udp->check)
		udp->check = udp_csum_update(udp->check, from, to, sizeof(from));

	account(st, &r, payload, plen, data_end);
	return send(action, r.ifindex);
}

static __always_inline int ipv6_ext_reason(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_FRAGMENT:
		return REASON_FRAGMENT;
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* HIP */
	case 140: /* Shim6 */
	case 253: /* experimental (RFC 3692) */
	case 254:
		return REASON_IPV6_EXT;
	}
	return REASON_NOT_UDP;
}

static __always_inline int relay_v6(struct ethhdr *eth, void *data_end,
				    __u32 ingress)
{
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);

	if ((void *)(ip6 + 1) > data_end)
		return pass(REASON_TRUNCATED);
	if ((ip6->ver_tc >> 4) != 6)
		return pass(REASON_NOT_IP);
	if (ip6->nexthdr != IPPROTO_UDP)
		return pass(ipv6_ext_reason(ip6->nexthdr));
	if ((void *)(udp + 1) > data_end)
		return pass(REASON_TRUNCATED);

	__u32 plen6 = bpf_ntohs(ip6->payload_len);

	/* A zero payload length (jumbogram) fails here too. */
	if (plen6 < sizeof(*udp) || (void *)udp + plen6 > data_end ||
	    bpf_ntohs(udp->len) != plen6)
		return pass(REASON_TRUNCATED);

	struct fwd_key key = {
		.addr = { ip6->daddr[0], ip6->daddr[1], ip6->daddr[2],
			  ip6->daddr[3] },
		.port = udp->dest,
		.family = FAMILY_V6,
	};
	enum reason why;
	struct stream *st = find_stream(&key, &why);

	if (!st)
		return pass(why);

	struct rule r;
	__u32 seq = seq_begin(&st->seq);

	copy_rule_v6(st, &r);
	if (seq_retry(&st->seq, seq))
		return pass(REASON_RULE_CHANGING);
	if (r.family != FAMILY_V6 || r.local_port != udp->dest ||
	    r.local[0] != ip6->daddr[0] || r.local[1] != ip6->daddr[1] ||
	    r.local[2] != ip6->daddr[2] || r.local[3] != ip6->daddr[3])
		return pass(REASON_NO_RULE);
	if ((r.flags & FLAG_CHECK_SRC) &&
	    (ip6->saddr[0] != r.peer[0] || ip6->saddr[1] != r.peer[1] ||
	     ip6->saddr[2] != r.peer[2] || ip6->saddr[3] != r.peer[3] ||
	     udp->source != r.peer_port)) {
		__sync_fetch_and_add(&st->wrong_source, 1);
		return pass(REASON_WRONG_SOURCE);
	}

	__u8 *payload = (void *)(udp + 1);
	__u32 plen = plen6 - sizeof(*udp);

	if ((r.flags & FLAG_RTP_CHECK) && !is_rtp_v2(payload, plen, data_end))
		return pass(REASON_NOT_RTP);
	if ((r.flags & FLAG_RTCP_PASS) && is_rtcp(payload, plen, data_end))
		return pass(REASON_RTCP);
	if (udp->check == 0) {
		count(REASON_ZERO_CSUM6);
		return XDP_DROP;
	}

	int action = egress(&r, ingress);

	if (action == XDP_PASS)
		return pass(REASON_NO_NEXTHOP);

	/* Decided: rewrite. */
	union ports oldp = { .src = udp->source, .dst = udp->dest };
	union ports newp = { .src = r.src_port, .dst = r.dst_port };
	__u32 from[9], to[9];

#pragma unroll
	for (int i = 0; i < 4; i++) {
		from[i] = ip6->saddr[i];
		from[4 + i] = ip6->daddr[i];
		to[i] = r.src[i];
		to[4 + i] = r.dst[i];
	}
	from[8] = oldp.word;
	to[8] = newp.word;

	rewrite_eth(eth, &r);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		ip6->saddr[i] = to[i];
		ip6->daddr[i] = to[4 + i];
	}
	ip6->hop_limit = RELAY_TTL;
	if (r.flags & FLAG_SET_TOS) {
		/* The traffic class straddles the first two bytes; IPv6 has no
		 * header checksum to fix. */
		ip6->ver_tc = 0x60 | (r.tos >> 4);
		ip6->tc_flow = (__u8)(r.tos << 4) | (ip6->tc_flow & 0x0f);
	}
	udp->source = newp.src;
	udp->dest = newp.dst;
	udp->check = udp_csum_update(udp->check, from, to, sizeof(from));

	account(st, &r, payload, plen, data_end);
	return send(action, r.ifindex);
}

SEC("xdp")
int relay_xdp(struct xdp_md *ctx)
{
	/* Each ctx field is read once, here: the verifier refuses a ctx
	 * pointer that clang has offset and dereferences later. */
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 ingress = ctx->ingress_ifindex;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return pass(REASON_TRUNCATED);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return relay_v4(eth, data_end, ingress);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return relay_v6(eth, data_end, ingress);
	return pass(REASON_NOT_IP);
}

char __license[] SEC("license") = "Dual MIT/GPL";
