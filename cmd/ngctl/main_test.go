// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/session"
)

// ngctl against a real control server with a real session manager.
func TestAgainstServer(t *testing.T) {
	mgr, err := session.NewManager(session.Config{
		Interfaces: []session.Interface{{Name: "default", Local: netip.MustParseAddr("127.0.0.1")}},
		PortMin:    24500, PortMax: 24999, MaxSessions: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	srv, err := ngproto.NewServer(ngproto.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, ngproto.NewControl(mgr, nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx)
	addr := srv.LocalAddr().String()
	sdp := filepath.Join(t.TempDir(), "o.sdp")
	os.WriteFile(sdp, []byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"), 0o644)
	tests := []struct {
		args []string
		want string
		fail bool
	}{
		{[]string{"ping"}, `{"result":"pong"}`, false},
		{[]string{"--json", "ping"}, `{"result":"pong"}`, false},
		{[]string{"--call-id", "c1", "--flags", "replace-origin", "offer", sdp}, `o=- 1 1 IN IP4 127.0.0.1`, false},
		{[]string{"offer", "--call-id", "c2", "--from-tag", "x", sdp}, `"result":"ok"`, false},
		{[]string{"list"}, `"calls":["c1","c2"]`, false},
		{[]string{"query", "c1"}, `"local port":24`, false},
		{[]string{"query", "nope"}, `Unknown call-id`, true},
		{[]string{"raw", `{"command":"bogus"}`}, `Unrecognized command`, true},
		{[]string{"delete", "c1"}, `"result":"ok"`, false},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := run(append([]string{"--addr", addr}, tc.args...), nil, &out)
		if (err != nil) != tc.fail || !strings.Contains(out.String(), tc.want) {
			t.Errorf("ngctl %v: err=%v out=%s, want %q (fail=%v)", tc.args, err, out.String(), tc.want, tc.fail)
		}
	}
}
