// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"context"
	"net/netip"
	"strconv"
	"testing"

	"github.com/relayd/relayd/pkg/session"
)

// benchRig is the server-side path without the socket: a Server whose
// process method decodes, parses, runs Control on a real session.Manager
// (signalling only: ports are bound, no media plane) and encodes the reply.
type benchRig struct {
	srv  *Server
	ctrl *Control
	mgr  *session.Manager
}

func newBenchRig(b *testing.B) *benchRig {
	b.Helper()
	mgr, err := session.NewManager(session.Config{
		Interfaces: []session.Interface{
			{Name: "internal", Local: netip.MustParseAddr("127.0.0.1")},
			{Name: "external", Local: netip.MustParseAddr("127.0.0.2"), Advertised: netip.MustParseAddr("203.0.113.20")},
		},
		PortMin: 20000, PortMax: 59999, MaxSessions: -1, TOS: 184,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(mgr.Close)
	ctrl := NewControl(mgr, nil)
	srv, err := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, ctrl)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	ctrl.AttachServer(srv)
	return &benchRig{srv: srv, ctrl: ctrl, mgr: mgr}
}

// request is an encoded request whose call-id is a fixed-width number that
// each use overwrites, so building a request costs what the server's own
// datagram copy costs.
type request struct {
	body []byte
	at   int // offset of the call-id digits
}

const benchCallID = "bench-0000000000@test"

func newRequest(b *testing.B, f Format, d dict) request {
	b.Helper()
	d = with(d, "call-id", benchCallID)
	var s string
	if f == FormatJSON {
		s = jsonOf(d)
	} else {
		s = benc(d)
	}
	at := bytes.Index([]byte(s), []byte(benchCallID))
	if at < 0 {
		b.Fatal("no call-id in request")
	}
	return request{body: []byte(s), at: at + len("bench-")}
}

// datagram returns a fresh copy of the request for call n, as Serve hands
// every datagram to its handler in a buffer of its own.
func (r request) datagram(n int) []byte {
	out := bytes.Clone(r.body)
	var digits [10]byte
	s := strconv.AppendInt(digits[:0], int64(n), 10)
	copy(out[r.at+10-len(s):r.at+10], s)
	return out
}

// BenchmarkSetup runs one call setup as Kamailio sends it — offer, answer,
// delete — through decode, Control, the session manager and encode.
func BenchmarkSetup(b *testing.B) {
	for _, gf := range goldenFormats {
		b.Run(gf.ext, func(b *testing.B) {
			r := newBenchRig(b)
			offer := newRequest(b, gf.f, kamailioOffer1())
			answer := newRequest(b, gf.f, kamailioAnswer())
			del := newRequest(b, gf.f, kamailioDelete())
			ok := []byte(`"result":"ok"`)
			if gf.f == FormatBencode {
				ok = []byte("6:result2:ok")
			}
			ctx := context.Background()
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				n++
				for _, req := range []request{offer, answer, del} {
					out := r.srv.process(ctx, "0_4711_1", req.datagram(n), false, goldenPeer)
					if !bytes.Contains(out, ok) {
						b.Fatalf("reply %q", out)
					}
				}
			}
			if calls := r.mgr.List(0); len(calls) != 0 {
				b.Fatalf("%d calls left", len(calls))
			}
		})
	}
}

// benchReplies are replies as Control builds them: an offer's SDP, the
// stats tree of a two-party call's delete, and statistics.
func benchReplies(b *testing.B) map[string]func() Reply {
	r := newBenchRig(b)
	ctx := context.Background()
	for _, d := range []dict{kamailioOffer1(), kamailioAnswer()} {
		out := r.srv.process(ctx, "c", []byte(benc(d)), false, goldenPeer)
		if !bytes.Contains(out, []byte("6:result2:ok")) {
			b.Fatalf("reply %q", out)
		}
	}
	info, err := r.mgr.Query("c81028bc8a@test", "", "")
	if err != nil {
		b.Fatal(err)
	}
	offer := r.ctrl.HandleNG(ctx, &Request{Command: "offer", CallID: "c2", FromTag: "f", SDP: []byte(testSDP), HasSDP: true}, goldenPeer)
	if offer.IsError() {
		b.Fatalf("offer: %v", offer)
	}
	return map[string]func() Reply{
		"offer":      func() Reply { return offer },
		"delete":     func() Reply { return callReply(info) },
		"statistics": func() Reply { return OK(F("statistics", r.ctrl.statistics())) },
	}
}

// BenchmarkEncode builds (where Control builds per request) and encodes a
// reply.
func BenchmarkEncode(b *testing.B) {
	replies := benchReplies(b)
	for _, name := range []string{"offer", "delete", "statistics"} {
		for _, gf := range goldenFormats {
			b.Run(name+"/"+gf.ext, func(b *testing.B) {
				build := replies[name]
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Encode("0_4711_1", gf.f, build()); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkDecode decodes and types Kamailio's requests.
func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name string
		d    dict
	}{{"offer", kamailioOffer2()}, {"answer", kamailioAnswer()}, {"delete", kamailioDelete()}} {
		for _, gf := range goldenFormats {
			body := []byte(benc(c.d))
			if gf.f == FormatJSON {
				body = []byte(jsonOf(c.d))
			}
			b.Run(c.name+"/"+gf.ext, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, _, err := decodeRequest(Limits{}, body); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
