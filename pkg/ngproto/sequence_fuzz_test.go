// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/sdp"
	"github.com/relayd/relayd/pkg/session"
	"github.com/relayd/relayd/pkg/webrtc"
)

// seqBytes hands out the fuzzer's bytes one field at a time, zeros when
// they run out.
type seqBytes struct{ b []byte }

func (s *seqBytes) more() bool { return len(s.b) > 0 }

func (s *seqBytes) u8() uint8 {
	if len(s.b) == 0 {
		return 0
	}
	v := s.b[0]
	s.b = s.b[1:]
	return v
}

func (s *seqBytes) take(n int) []byte {
	n = min(n, len(s.b))
	v := s.b[:n]
	s.b = s.b[n:]
	return v
}

func (s *seqBytes) pick(list []string) string { return list[int(s.u8())%len(list)] }

// The SDPs the sequences choose from: a trunk's, a phone's with rtcp-mux
// and two media, a browser's (ICE, DTLS, SDES), a hold, a rejected media.
var seqSDPs = []string{
	testSDP,
	"v=0\r\no=- 2 2 IN IP4 192.0.2.20\r\ns=-\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\nc=IN IP4 192.0.2.20\r\n" +
		"a=rtcp-mux\r\na=rtcp:7001\r\nm=video 7002 RTP/AVPF 96\r\nc=IN IP4 192.0.2.20\r\na=rtpmap:96 VP8/90000\r\n",
	"v=0\r\no=- 3 2 IN IP4 198.51.100.5\r\ns=-\r\nc=IN IP4 198.51.100.5\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n" +
		"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
		"a=setup:actpass\r\na=rtcp-mux\r\na=candidate:1 1 UDP 2130706431 198.51.100.5 50000 typ host\r\n",
	"v=0\r\no=- 4 3 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 7100 RTP/SAVP 0\r\na=sendonly\r\n" +
		"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n",
	"v=0\r\no=- 5 1 IN IP6 2001:db8::5\r\ns=-\r\nc=IN IP6 2001:db8::5\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 7200 RTP/AVP 0\r\n",
}

var (
	seqCommands = []string{"offer", "answer", "delete", "query", "list", "ping", "statistics", "offer", "answer", "delete"}
	seqCallIDs  = []string{"c1", "c2", "c3", "c1"}
	seqTags     = []string{"A", "B", "C", ""}
	seqFlags    = []string{"trust-address", "SIP-source-address", "asymmetric", "strict-source", "media-handover",
		"port-latching", "no-rtcp-attribute", "full-rtcp-attribute", "loop-protect", "fatal", "generate-mid",
		"WebRTC", "trickle-ICE", "record-call", "reset", "symmetric"}
	seqICE      = []string{"remove", "force", "default", "force-relay"}
	seqMux      = []string{"offer", "require", "demux", "accept", "reject"}
	seqProto    = []string{"RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVPF", "accept"}
	seqDTLS     = []string{"off", "passive", "active"}
	seqFamilies = []string{"IP4", "IP6"}
)

var seqIdentity = sync.OnceValue(func() *webrtc.Keeper {
	k, err := webrtc.NewKeeper(nil)
	if err != nil {
		panic(err)
	}
	return k
})

// FuzzSequence runs sequences of ng requests — offer, answer, delete,
// query and the rest, in any order, with call-ids, tags, flags and keys the
// fuzzer picks, and now and then a dictionary it writes itself — against a
// real session manager (real sockets, signalling only), with expiry run in
// between on a fake clock. Whatever the order: nothing panics, every reply
// encodes, every SDP relayd answers with parses, and once the calls are
// gone no port is left in use.
func FuzzSequence(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 2, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 2, 0xff, 1, 1, 0, 1, 2, 3, 0, 3, 0, 0, 4, 0, 2, 1, 0})
	f.Add([]byte{7, 2, 1, 0, 3, 0x13, 1, 8, 2, 0, 0, 1, 3, 0, 2, 0x40, 6, 5, 0})
	f.Add([]byte{0x80, 20, 'd', '7', ':', 'c', 'o', 'm', 'm', 'a', 'n', 'd', '5', ':', 'q', 'u', 'e', 'r', 'y', 'e'})
	addrs := []session.Interface{
		{Name: "internal", Local: netip.MustParseAddr("127.0.88.1")},
		{Name: "external", Local: netip.MustParseAddr("127.0.88.2"), Advertised: netip.MustParseAddr("203.0.113.20")},
		{Name: "v6", Local: netip.IPv6Loopback()},
	}
	from := netip.MustParseAddrPort("127.0.0.30:5060")
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &seqBytes{b: data}
		now := time.Unix(1_700_000_000, 0)
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		mgr, err := session.NewManager(session.Config{
			Interfaces: addrs, PortMin: 40000, PortMax: 49999,
			Timeout: 60 * time.Second, SilentTimeout: time.Hour, OfferTimeout: time.Hour, DeleteDelay: 5 * time.Second,
			TOS: 184, MaxSessions: int(in.u8()%4) - 1, Now: clock, Identity: seqIdentity(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctrl := NewControl(mgr, nil)
		for steps := 0; in.more() && steps < 24; steps++ {
			op := in.u8()
			var body []byte
			switch {
			case op&0x80 != 0: // a dictionary of the fuzzer's own
				body = in.take(int(in.u8()))
			case op&0x70 == 0x70: // time passes: timeouts and deletions are due
				mu.Lock()
				now = now.Add(time.Duration(in.u8()) * time.Second)
				mu.Unlock()
				mgr.Expire()
				continue
			default:
				body = AppendValue(nil, FormatBencode, seqRequest(in, op))
			}
			req, format, err := decodeRequest(Limits{}, body)
			if err != nil {
				if Reason(err) == "" {
					t.Fatalf("decode error %v has no reason", err)
				}
				continue
			}
			rep := ctrl.HandleNG(context.Background(), req, from)
			if rep.IsZero() {
				t.Fatalf("%s: no reply", req.Command)
			}
			if _, err := Encode("c", format, rep); err != nil {
				t.Fatalf("%s: reply does not encode: %v", req.Command, err)
			}
			if out := rep.Get("sdp"); out.kind == KindString && !rep.IsError() {
				if _, err := sdp.Parse([]byte(out.str)); err != nil {
					t.Fatalf("%s: relayd answered an SDP that does not parse (%v):\n%s", req.Command, err, out.str)
				}
			}
		}
		// Every call goes, through delete or at shutdown: no port stays.
		for _, id := range mgr.List(0) {
			ctrl.HandleNG(context.Background(), &Request{Command: "delete", CallID: id,
				Options: session.Options{DeleteDelay: new(int)}}, from)
		}
		if ids := mgr.List(0); len(ids) != 0 {
			t.Fatalf("calls left after deleting each: %v", ids)
		}
		mgr.Close()
		for _, in := range mgr.Statistics().Interfaces {
			if in.PortsUsed != 0 {
				t.Fatalf("%s %v: %d port slots still in use with no call left", in.Name, in.Address, in.PortsUsed)
			}
		}
	})
}

// seqRequest builds one request the way a SIP proxy's module would, with
// the parts the fuzzer chose.
func seqRequest(in *seqBytes, op uint8) Value {
	cmd := seqCommands[int(op&0x0f)%len(seqCommands)]
	fields := []Field{F("command", Str(cmd)), F("call-id", Str(in.pick(seqCallIDs))),
		F("supports", Strings([]string{"load limit"}))}
	if tag := in.pick(seqTags); tag != "" {
		fields = append(fields, F("from-tag", Str(tag)))
	}
	if tag := in.pick(seqTags); tag != "" {
		fields = append(fields, F("to-tag", Str(tag)))
	}
	if cmd != "offer" && cmd != "answer" {
		if op&0x40 != 0 {
			fields = append(fields, F("delete delay", Int(int64(in.u8()%3))))
		}
		if op&0x20 != 0 {
			fields = append(fields, F("flags", Strings([]string{in.pick(seqFlags)})))
		}
		return Dict(fields...)
	}
	s := seqSDPs[int(in.u8())%len(seqSDPs)]
	if op&0x10 != 0 {
		// Part of the SDP rewritten by the fuzzer.
		at := int(in.u8()) * len(s) / 256
		s = s[:at] + string(in.take(int(in.u8()%32))) + s[at:]
	}
	fields = append(fields, F("sdp", Str(s)))
	opts := in.u8()
	if opts&1 != 0 {
		var fl []string
		for bits := uint16(in.u8())<<8 | uint16(in.u8()); bits != 0; bits &= bits - 1 {
			i := 0
			for bits&(1<<i) == 0 {
				i++
			}
			fl = append(fl, seqFlags[i%len(seqFlags)])
		}
		fields = append(fields, F("flags", Strings(fl)))
	}
	if opts&2 != 0 {
		fields = append(fields, F("ICE", Str(in.pick(seqICE))))
	}
	if opts&4 != 0 {
		fields = append(fields, F("rtcp-mux", Strings([]string{in.pick(seqMux)})))
	}
	if opts&8 != 0 {
		fields = append(fields, F("transport-protocol", Str(in.pick(seqProto))), F("DTLS", Str(in.pick(seqDTLS))))
	}
	if opts&16 != 0 {
		fields = append(fields, F("direction", Strings([]string{in.pick([]string{"internal", "external", "v6", "nowhere"}),
			in.pick([]string{"external", "internal", "v6"})})))
	}
	if opts&32 != 0 {
		fields = append(fields, F("received-from", Strings([]string{in.pick(seqFamilies), "192.0.2." + strconv.Itoa(int(in.u8()))})),
			F("address-family", Str(in.pick(seqFamilies))))
	}
	if opts&64 != 0 {
		fields = append(fields, F("via-branch", Str("z9hG4bK"+strconv.Itoa(int(in.u8()%3)))),
			F("SDES", Strings([]string{in.pick([]string{"off", "no-AES_CM_128_HMAC_SHA1_32", "only-AEAD_AES_256_GCM", "pad"})})))
	}
	if opts&128 != 0 {
		fields = append(fields, F("replace", Strings([]string{in.pick([]string{"origin", "session-connection", "SDP-version", "force-increment-sdp-ver", "zero-address"})})),
			F("endpoint-learning", Str(in.pick([]string{"off", "immediate", "delayed", "heuristic", "sometimes"}))),
			F("media-address", Str(in.pick([]string{"192.0.2.99", "2001:db8::99", "not-an-ip"}))))
	}
	return Dict(fields...)
}
