// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/relayd/relayd/bench/internal/audio"
)

// BuildOffer returns the caller's offer: a SIP trunk's G.711 offer (PCMU,
// PCMA, telephone-event, 20 ms) with the caller's media address.
func BuildOffer(media netip.AddrPort, sessID uint64) string {
	return BuildSecureOffer(media, sessID, "")
}

// BuildSecureOffer returns the caller's offer; with a crypto value (what
// follows "a=crypto:") it is an SDES-SRTP offer (RTP/SAVP), as an SRTP
// phone or trunk sends it.
func BuildSecureOffer(media netip.AddrPort, sessID uint64, crypto string) string {
	a := media.Addr().String()
	proto, sec := "RTP/AVP", ""
	if crypto != "" {
		proto, sec = "RTP/SAVP", "a=crypto:"+crypto+"\r\n"
	}
	return "v=0\r\n" +
		"o=- " + u64(sessID) + " " + u64(sessID) + " IN IP4 " + a + "\r\n" +
		"s=SIP Call\r\n" +
		"c=IN IP4 " + a + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(media.Port())) + " " + proto + " 0 8 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-15\r\n" +
		"a=ptime:20\r\n" +
		sec +
		"a=sendrecv\r\n"
}

// BuildAnswer returns the callee's answer: a FreeSWITCH-style answer that
// picks PCMA and keeps telephone-event, with an explicit a=rtcp.
func BuildAnswer(media netip.AddrPort, sessID uint64) string {
	a := media.Addr().String()
	p := int(media.Port())
	return "v=0\r\n" +
		"o=FreeSWITCH " + u64(sessID) + " " + u64(sessID+1) + " IN IP4 " + a + "\r\n" +
		"s=FreeSWITCH\r\n" +
		"c=IN IP4 " + a + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(p) + " RTP/AVP 8 101\r\n" +
		"a=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\n" +
		"a=fmtp:101 0-16\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n" +
		"a=rtcp:" + strconv.Itoa(p+1) + " IN IP4 " + a + "\r\n"
}

// BuildTranscodeOffer returns the offer of a caller that speaks one codec
// only (an Opus-only WebRTC gateway, a G.722-only phone), 20 ms packets.
func BuildTranscodeOffer(media netip.AddrPort, sessID uint64, c audio.Codec) string {
	return buildOneCodec(media, sessID, "SIP Call", "-", c, "")
}

// BuildTranscodeAnswer returns the answer of a callee that speaks only c.
func BuildTranscodeAnswer(media netip.AddrPort, sessID uint64, c audio.Codec) string {
	return buildOneCodec(media, sessID+1, "FreeSWITCH", "FreeSWITCH", c,
		"a=rtcp:"+strconv.Itoa(int(media.Port())+1)+" IN IP4 "+media.Addr().String()+"\r\n")
}

func buildOneCodec(media netip.AddrPort, sessID uint64, name, origin string, c audio.Codec, extra string) string {
	a := media.Addr().String()
	pt := strconv.Itoa(c.PT)
	return "v=0\r\n" +
		"o=" + origin + " " + u64(sessID) + " " + u64(sessID) + " IN IP4 " + a + "\r\n" +
		"s=" + name + "\r\n" +
		"c=IN IP4 " + a + "\r\n" +
		"t=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(media.Port())) + " RTP/AVP " + pt + "\r\n" +
		"a=rtpmap:" + pt + " " + c.Rtpmap() + "\r\n" +
		"a=ptime:20\r\n" +
		"a=sendrecv\r\n" + extra
}

// PayloadOf finds the payload type a stream gives codec c: the one whose
// a=rtpmap names it (encoding name case-insensitive, clock rate, channels
// when given), or c's static payload type listed without an a=rtpmap.
func (a Audio) PayloadOf(c audio.Codec) (int, bool) {
	for _, pt := range a.Payloads {
		m, ok := a.Rtpmap[pt]
		if !ok {
			if pt == c.PT && pt < 96 {
				return pt, true
			}
			continue
		}
		name, rest, _ := strings.Cut(m, "/")
		rate, ch, _ := strings.Cut(rest, "/")
		if !strings.EqualFold(name, c.Name) || rate != strconv.Itoa(c.Clock) {
			continue
		}
		if ch != "" && ch != strconv.Itoa(c.Channels) {
			continue
		}
		return pt, true
	}
	return 0, false
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

// Audio is what the bench needs from a rewritten SDP: where to send the
// stream's media and with which payload types.
type Audio struct {
	Addr     netip.AddrPort // connection address (media level, else session level) and m= port
	Payloads []int          // payload types in m= order
	RTCPPort int            // from a=rtcp, 0 when absent
	Proto    string         // the m= line's transport protocol (RTP/AVP, RTP/SAVP, ...)
	// Crypto are the stream's a=crypto values (after "a=crypto:"), in
	// order, unparsed: the caller decides which suite it needs.
	Crypto []string
	// Rtpmap maps payload types to their a=rtpmap value ("opus/48000/2").
	Rtpmap map[int]string
}

// ParseAudio finds the first audio stream of an SDP. It accepts "\r\n" and
// bare "\n" line ends and ignores every line it does not need.
func ParseAudio(sdp string) (Audio, error) {
	var (
		session, mediaConn netip.Addr
		out                Audio
		inAudio, found     bool
		seenM              bool
		port               int
	)
	for line := range strings.SplitSeq(sdp, "\n") {
		line = strings.TrimRight(line, "\r")
		if len(line) < 2 || line[1] != '=' {
			continue
		}
		val := line[2:]
		switch line[0] {
		case 'm':
			seenM = true
			if found {
				// Only the first audio stream matters; stop at the next m=.
				inAudio = false
				continue
			}
			f := strings.Fields(val)
			if len(f) < 4 || f[0] != "audio" {
				continue
			}
			p, err := strconv.Atoi(f[1])
			if err != nil || p < 0 || p > 65535 {
				return Audio{}, fmt.Errorf("%w: bad port in m=%s", ErrSDP, val)
			}
			port = p
			out.Proto = f[2]
			for _, pt := range f[3:] {
				n, err := strconv.Atoi(pt)
				if err != nil || n < 0 || n > 127 {
					return Audio{}, fmt.Errorf("%w: bad payload type %q in m=%s", ErrSDP, pt, val)
				}
				out.Payloads = append(out.Payloads, n)
			}
			inAudio, found = true, true
		case 'c':
			a, err := parseConn(val)
			if err != nil {
				return Audio{}, err
			}
			switch {
			case !seenM:
				session = a
			case inAudio:
				mediaConn = a
			}
		case 'a':
			if !inAudio {
				continue
			}
			if v, ok := strings.CutPrefix(val, "crypto:"); ok {
				out.Crypto = append(out.Crypto, strings.TrimSpace(v))
			}
			if v, ok := strings.CutPrefix(val, "rtpmap:"); ok {
				if pt, enc, ok := strings.Cut(strings.TrimSpace(v), " "); ok {
					if n, err := strconv.Atoi(pt); err == nil && n >= 0 && n < 128 {
						if out.Rtpmap == nil {
							out.Rtpmap = map[int]string{}
						}
						out.Rtpmap[n] = strings.TrimSpace(enc)
					}
				}
			}
			if rest, ok := strings.CutPrefix(val, "rtcp:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					if p, err := strconv.Atoi(f[0]); err == nil && p > 0 && p < 65536 {
						out.RTCPPort = p
					}
				}
			}
		}
	}
	if !found {
		return Audio{}, fmt.Errorf("%w: no m=audio line", ErrSDP)
	}
	if port == 0 {
		return Audio{}, fmt.Errorf("%w: audio stream rejected (port 0)", ErrSDP)
	}
	conn := mediaConn
	if !conn.IsValid() {
		conn = session
	}
	if !conn.IsValid() {
		return Audio{}, fmt.Errorf("%w: no c= line for the audio stream", ErrSDP)
	}
	if conn.IsUnspecified() {
		return Audio{}, fmt.Errorf("%w: audio stream on hold (c=%s)", ErrSDP, conn)
	}
	out.Addr = netip.AddrPortFrom(conn, uint16(port))
	return out, nil
}

// parseConn reads "IN IP4 addr" or "IN IP6 addr" (a TTL or count suffix of
// multicast addresses is cut off).
func parseConn(val string) (netip.Addr, error) {
	f := strings.Fields(val)
	if len(f) < 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return netip.Addr{}, fmt.Errorf("%w: bad c=%s", ErrSDP, val)
	}
	host, _, _ := strings.Cut(f[2], "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: bad address in c=%s", ErrSDP, val)
	}
	if (f[1] == "IP4") != a.Is4() {
		return netip.Addr{}, fmt.Errorf("%w: address family mismatch in c=%s", ErrSDP, val)
	}
	return a, nil
}
