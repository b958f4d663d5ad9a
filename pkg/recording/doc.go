// SPDX-License-Identifier: Apache-2.0

// Package recording records calls into pcap files (recording-method=pcap):
// one file per recording with every datagram of every stream of the call,
// both directions, as plain RTP/RTCP, and a JSON metadata file next to it.
//
// # Taps, queue, writer
//
// A recording gives the session layer two media stages per stream: Ingress
// copies what the party sends (after SRTP decryption: the SRTP handler runs
// first; the tap goes before any other stage) and Egress what the relay
// sends to the party (before SRTP protection: it goes right in front of the
// protecting stage). Both copy the
// datagram into the recording's queue, a byte ring of fixed size allocated
// when the recording starts, and return Continue: forwarding never waits
// for a disk. A full queue drops the copy and counts it; nothing per packet
// locks, allocates, logs or makes a system call. Both stages say Kernel()
// false, so a recorded stream is forwarded in userspace while the recording
// runs and may go back to the kernel when it pauses or stops.
//
// One writer goroutine per Recorder drains every recording's queue on a
// short tick (sooner when a queue passes half full), frames each datagram
// with synthetic IPv4/IPv6 and UDP headers (the real addresses and ports:
// party to relay socket, relay socket to party; checksums filled in) and
// appends it to the recording's pcap file through a buffer. The writer owns
// the files: opening, flushing, closing and the metadata file all happen
// there, never on a signalling path.
//
// # Files
//
// Under the recording directory, as the incumbent lays them out:
// pcaps/<call-id>-<random>.pcap (written while the call runs; the call-id
// percent-encoded to be safe as a file name) and
// metadata/<call-id>-<random>.json (written to tmp/ and renamed when the
// recording ends, so a file in metadata/ is always complete).
package recording
