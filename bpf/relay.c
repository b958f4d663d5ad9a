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
 * The Go side (datapath*.go) mirrors every layout and constant here; the
 * tests check that they agree.
 */

#include "relay_kern.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_endian.h"

#define MAX_RULES 262144
#define MAX_SLOTS 262144
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

enum fwd_flag {
	FLAG_CHECK_SRC = 1 << 0, /* source must be peer_addr:peer_port */
	FLAG_SET_TOS = 1 << 1,   /* write tos (IPv4 TOS / IPv6 traffic class) */
	FLAG_RTP_CHECK = 1 << 2, /* payload must look like RTP/RTCP version 2 */
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
	REASON_BAD_RULE,      /* rule's stats slot out of range */
	REASON_ZERO_CSUM6,    /* IPv6 UDP with zero checksum: dropped */
	REASON_MAX,
};

struct fwd_key {
	__be32 addr[4]; /* local address; IPv4 in addr[0], the rest zero */
	__be16 port;    /* local port */
	__u8 family;    /* FAMILY_V4 or FAMILY_V6 */
	__u8 pad;       /* zero */
};

struct fwd_rule {
	__be32 peer_addr[4]; /* expected source (the latched peer) */
	__be32 src_addr[4];  /* new source: the relay's egress address */
	__be32 dst_addr[4];  /* new destination */
	__be16 peer_port;
	__be16 src_port;
	__be16 dst_port;
	__u8 tos;
	__u8 flags;        /* enum fwd_flag */
	__u32 ifindex;     /* egress interface; 0 = unknown next hop */
	__u32 slot;        /* index into stream_stats */
	__u32 clock_rate;  /* RTP clock rate for jitter; 0 = no jitter */
	__u8 smac[ETH_ALEN];
	__u8 dmac[ETH_ALEN];
};

/* One cache line per stream: no false sharing between streams served by
 * different CPUs. Packets, bytes and wrong_source are atomic; the RTP fields
 * are written by the CPU of the stream's RX queue only. */
struct stream_stats {
	__u64 packets;      /* forwarded */
	__u64 bytes;        /* UDP payload bytes forwarded */
	__u64 last_seen_ns; /* CLOCK_MONOTONIC_COARSE of the last forwarded packet */
	__u64 wrong_source; /* passed up because the source did not match */
	__u32 rtcp_packets; /* forwarded RTCP (RFC 5761 packet types 192-223) */
	__u32 ssrc;         /* SSRC of the current RTP sender */
	__u32 rtp_packets;  /* RTP packets since ssrc/base_seq were set */
	__u32 base_seq;     /* first sequence number since then */
	__u32 max_seq;      /* extended highest sequence number */
	__u32 jitter;       /* RFC 3550 A.8 jitter << 4, timestamp units */
	__u32 transit;      /* last relative transit time, timestamp units */
	__u32 resets;       /* SSRC changes and sequence resyncs */
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_RULES);
	__type(key, struct fwd_key);
	__type(value, struct fwd_rule);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct stream_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stream_stats SEC(".maps");

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

static __always_inline void rtp_account(struct stream_stats *st,
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

static __always_inline void account(struct stream_stats *st,
				    const struct fwd_rule *rule,
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

/* XDP_TX when the packet leaves where it came in, XDP_REDIRECT when the
 * egress is in tx_ports, XDP_PASS when there is no usable next hop. */
static __always_inline int egress(const struct fwd_rule *rule, __u32 ingress)
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
					const struct fwd_rule *rule)
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
	struct fwd_rule *rule = bpf_map_lookup_elem(&fwd, &key);

	if (!rule)
		return pass(REASON_NO_RULE);

	__u32 slot = rule->slot;
	struct stream_stats *st = bpf_map_lookup_elem(&stream_stats, &slot);

	if (!st)
		return pass(REASON_BAD_RULE);
	if ((rule->flags & FLAG_CHECK_SRC) &&
	    (ip->saddr != rule->peer_addr[0] ||
	     udp->source != rule->peer_port)) {
		__sync_fetch_and_add(&st->wrong_source, 1);
		return pass(REASON_WRONG_SOURCE);
	}

	__u8 *payload = (void *)(udp + 1);
	__u32 plen = ulen - sizeof(*udp);

	if ((rule->flags & FLAG_RTP_CHECK) && !is_rtp_v2(payload, plen, data_end))
		return pass(REASON_NOT_RTP);

	int action = egress(rule, ingress);

	if (action == XDP_PASS)
		return pass(REASON_NO_NEXTHOP);

	/* Decided: rewrite. */
	union ports oldp = { .src = udp->source, .dst = udp->dest };
	union ports newp = { .src = rule->src_port, .dst = rule->dst_port };
	__u32 from[3] = { ip->saddr, ip->daddr, oldp.word };
	__u32 to[3] = { rule->src_addr[0], rule->dst_addr[0], newp.word };

	rewrite_eth(eth, rule);
	ip->saddr = to[0];
	ip->daddr = to[1];
	ip->ttl = RELAY_TTL;
	if (rule->flags & FLAG_SET_TOS)
		ip->tos = rule->tos;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	udp->source = newp.src;
	udp->dest = newp.dst;
	/* Zero means "no checksum" for IPv4 UDP (RFC 768): keep it. */
	if (udp->check)
		udp->check = udp_csum_update(udp->check, from, to, sizeof(from));

	account(st, rule, payload, plen, data_end);
	return send(action, rule->ifindex);
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
	struct fwd_rule *rule = bpf_map_lookup_elem(&fwd, &key);

	if (!rule)
		return pass(REASON_NO_RULE);

	__u32 slot = rule->slot;
	struct stream_stats *st = bpf_map_lookup_elem(&stream_stats, &slot);

	if (!st)
		return pass(REASON_BAD_RULE);
	if ((rule->flags & FLAG_CHECK_SRC) &&
	    (ip6->saddr[0] != rule->peer_addr[0] ||
	     ip6->saddr[1] != rule->peer_addr[1] ||
	     ip6->saddr[2] != rule->peer_addr[2] ||
	     ip6->saddr[3] != rule->peer_addr[3] ||
	     udp->source != rule->peer_port)) {
		__sync_fetch_and_add(&st->wrong_source, 1);
		return pass(REASON_WRONG_SOURCE);
	}

	__u8 *payload = (void *)(udp + 1);
	__u32 plen = plen6 - sizeof(*udp);

	if ((rule->flags & FLAG_RTP_CHECK) && !is_rtp_v2(payload, plen, data_end))
		return pass(REASON_NOT_RTP);
	if (udp->check == 0) {
		count(REASON_ZERO_CSUM6);
		return XDP_DROP;
	}

	int action = egress(rule, ingress);

	if (action == XDP_PASS)
		return pass(REASON_NO_NEXTHOP);

	/* Decided: rewrite. */
	union ports oldp = { .src = udp->source, .dst = udp->dest };
	union ports newp = { .src = rule->src_port, .dst = rule->dst_port };
	__u32 from[9], to[9];

#pragma unroll
	for (int i = 0; i < 4; i++) {
		from[i] = ip6->saddr[i];
		from[4 + i] = ip6->daddr[i];
		to[i] = rule->src_addr[i];
		to[4 + i] = rule->dst_addr[i];
	}
	from[8] = oldp.word;
	to[8] = newp.word;

	rewrite_eth(eth, rule);
#pragma unroll
	for (int i = 0; i < 4; i++) {
		ip6->saddr[i] = to[i];
		ip6->daddr[i] = to[4 + i];
	}
	ip6->hop_limit = RELAY_TTL;
	if (rule->flags & FLAG_SET_TOS) {
		/* The traffic class straddles the first two bytes; IPv6 has no
		 * header checksum to fix. */
		ip6->ver_tc = 0x60 | (rule->tos >> 4);
		ip6->tc_flow = (__u8)(rule->tos << 4) | (ip6->tc_flow & 0x0f);
	}
	udp->source = newp.src;
	udp->dest = newp.dst;
	udp->check = udp_csum_update(udp->check, from, to, sizeof(from));

	account(st, rule, payload, plen, data_end);
	return send(action, rule->ifindex);
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
