//go:build ignore

/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) */
/*
 * Test and benchmark helpers, never loaded by relayd:
 *
 * bare_bounce: the machine's ceiling reference for the relay program. It
 * does the same per-packet rewrite (MACs, addresses, ports, TTL, IPv4 header
 * checksum, incremental UDP checksum) with no map lookup, no checks beyond
 * the header bounds and no stats, and bounces with XDP_TX. It swaps source
 * and destination, so repeated runs over the same buffer (BPF_PROG_TEST_RUN
 * with Repeat) keep doing the full work.
 *
 * bare_pass: XDP_PASS, to give a veth peer an XDP program (redirected frames
 * are dropped by a veth whose peer has neither XDP nor GRO).
 */

#include "relay_kern.h"
#include "bpf/bpf_helpers.h"
#include "bpf/bpf_endian.h"

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static __always_inline void swap_eth(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
}

SEC("xdp")
int bare_bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip + 1);

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
		__u32 from[3] = { ip->saddr, ip->daddr,
				  udp->source | (__u32)udp->dest << 16 };
		__u32 to[3] = { ip->daddr, ip->saddr,
				udp->dest | (__u32)udp->source << 16 };

		swap_eth(eth);
		ip->saddr = to[0];
		ip->daddr = to[1];
		ip->ttl = 64;
		ip->check = 0;
		const __u16 *w = (const __u16 *)ip;
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		ip->check = ~csum_fold(sum);
		udp->source = to[2];
		udp->dest = to[2] >> 16;
		if (udp->check) {
			__u16 c = ~csum_fold((__u32)bpf_csum_diff(
				from, sizeof(from), to, sizeof(to),
				~udp->check & 0xffff));
			udp->check = c ? c : 0xffff;
		}
		return XDP_TX;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct udphdr *udp = (void *)(ip6 + 1);
		__u32 from[9], to[9];

		if ((void *)(udp + 1) > data_end)
			return XDP_PASS;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			from[i] = ip6->saddr[i];
			from[4 + i] = ip6->daddr[i];
			to[i] = ip6->daddr[i];
			to[4 + i] = ip6->saddr[i];
		}
		from[8] = udp->source | (__u32)udp->dest << 16;
		to[8] = udp->dest | (__u32)udp->source << 16;

		swap_eth(eth);
#pragma unroll
		for (int i = 0; i < 4; i++) {
			ip6->saddr[i] = to[i];
			ip6->daddr[i] = to[4 + i];
		}
		ip6->hop_limit = 64;
		udp->source = to[8];
		udp->dest = to[8] >> 16;
		__u16 c = ~csum_fold((__u32)bpf_csum_diff(
			from, sizeof(from), to, sizeof(to), ~udp->check & 0xffff));
		udp->check = c ? c : 0xffff;
		return XDP_TX;
	}
	return XDP_PASS;
}

SEC("xdp")
int bare_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual MIT/GPL";
