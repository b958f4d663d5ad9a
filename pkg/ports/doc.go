// SPDX-License-Identifier: Apache-2.0

// Package ports owns the media port pools: per local address, RTP/RTCP port pairs
// (even RTP, odd RTCP) or single ports are handed out at random among the free
// ones, bound to that address, and never handed out twice while in use.
package ports
