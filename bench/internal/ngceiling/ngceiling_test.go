// SPDX-License-Identifier: Apache-2.0

package ngceiling

import (
	"net/netip"
	"testing"

	"github.com/relayd/relayd/pkg/ngproto"
)

func TestReply(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1 d7:command4:pinge", "1 d6:result4:ponge"},
		{"2 d3:sdp5:v=0\r\n7:command5:offere", "2 d3:sdp5:v=0\r\n6:result2:oke"},
		{"3 d7:command6:answer3:sdp3:abce", "3 d3:sdp3:abc6:result2:oke"},
		{"4 d7:command6:deletee", "4 d6:result2:oke"},
		{"5 d7:command4:liste", "5 d6:result5:error12:error-reason15:unknown commande"},
		{"6 dxx", "6 d6:result5:error12:error-reason9:malformede"},
	}
	for _, tt := range tests {
		got := string(Reply(nil, []byte(tt.in)))
		if got != tt.want {
			t.Errorf("Reply(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Every reply must be one the bench's own client decodes.
		_, body, err := ngproto.SplitMessage([]byte(got))
		if err != nil {
			t.Fatalf("reply %q: %v", got, err)
		}
		if _, _, err := ngproto.Decode(body); err != nil {
			t.Errorf("reply %q does not decode: %v", got, err)
		}
	}
	if Reply(nil, []byte("nocookie")) != nil {
		t.Error("a datagram without a cookie got a reply")
	}
}

func TestResponderAnswersOverUDP(t *testing.T) {
	r, err := Start("", netip.MustParseAddrPort("127.0.0.1:0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Stop(); err != nil {
			t.Error(err)
		}
	}()
	addr, err := r.Addr()
	if err != nil {
		t.Fatal(err)
	}
	c, err := ngproto.Dial(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rep, err := c.Do(t.Context(), map[string]any{"command": "offer", "sdp": "v=0\r\n"})
	if err != nil {
		t.Fatal(err)
	}
	if rep["sdp"] != "v=0\r\n" || rep["result"] != "ok" {
		t.Errorf("offer reply = %v", rep)
	}
	if cpu, err := r.CPU(); err != nil || cpu < 0 {
		t.Errorf("CPU() = %v, %v", cpu, err)
	}
}
