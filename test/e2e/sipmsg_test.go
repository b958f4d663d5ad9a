// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseSippTraceCallee(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "sipp", "callee-messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := ParseSippTrace(data)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		received bool
		status   int
		cseq     int
		method   string
	}
	want := []summary{
		{true, 0, 1, "INVITE"}, {false, 200, 1, "INVITE"}, {true, 0, 1, "ACK"},
		{true, 0, 2, "INVITE"}, {false, 200, 2, "INVITE"}, {true, 0, 2, "ACK"},
		{true, 0, 3, "BYE"}, {false, 200, 3, "BYE"},
	}
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages, want %d: %v", len(msgs), len(want), msgs)
	}
	for i, w := range want {
		n, method := msgs[i].CSeq()
		got := summary{msgs[i].Received, msgs[i].StatusCode(), n, method}
		if got != w {
			t.Errorf("message %d = %+v, want %+v", i, got, w)
		}
	}

	invite, ok := findMessage(msgs, 0, 1, "INVITE")
	if !ok {
		t.Fatal("findMessage: no received INVITE CSeq 1")
	}
	if got, _ := invite.Header("call-id"); got != "1-18017@198.51.100.10" {
		t.Errorf("Call-ID = %q", got)
	}
	if got, _ := invite.Header("i"); got != "1-18017@198.51.100.10" {
		t.Errorf("compact i = %q", got)
	}
	if got, _ := invite.Header("Record-Route"); got != "<sip:192.0.2.1;r2=on;lr;ftag=18017SIPpTag001>" {
		t.Errorf("first Record-Route = %q", got)
	}
	if len(invite.Body) != 221 {
		t.Errorf("body is %d bytes, Content-Length says 221", len(invite.Body))
	}
	if _, ok := findMessage(msgs, 200, 1, "INVITE"); ok {
		t.Error("findMessage returned a 200 the callee sent, want received ones only")
	}
}

func TestParseSippTraceErrors(t *testing.T) {
	sep := traceSeparator + " 2026-01-01 00:00:00.000000\n"
	tests := []struct {
		name  string
		trace string
	}{
		{"text before separator", "hello\n" + sep + "UDP message sent (1 bytes):\n\nBYE sip:x SIP/2.0\r\n\r\n\n"},
		{"separator only", sep[:len(sep)-1]},
		{"no message", sep + "UDP message sent (1 bytes):"},
		{"unknown kind", sep + "something else\n\nBYE sip:x SIP/2.0\r\n\r\n\n"},
		{"not SIP", sep + "UDP message sent (1 bytes):\n\nhello world\r\n\r\n\n"},
		{"header without colon", sep + "UDP message sent (1 bytes):\n\nBYE sip:x SIP/2.0\r\nbroken\r\n\r\n\n"},
		{"content-length too big", sep + "UDP message sent (1 bytes):\n\nBYE sip:x SIP/2.0\r\nContent-Length: 9\r\n\r\nab\n"},
		{"content-length negative", sep + "UDP message sent (1 bytes):\n\nBYE sip:x SIP/2.0\r\nl: -1\r\n\r\n\n"},
		{"continuation first", sep + "UDP message sent (1 bytes):\n\nBYE sip:x SIP/2.0\r\n folded\r\n\r\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSippTrace([]byte(tt.trace)); !errors.Is(err, ErrMalformedTrace) {
				t.Errorf("error = %v, want ErrMalformedTrace", err)
			}
		})
	}
}

func TestParseSIPMessage(t *testing.T) {
	raw := "SIP/2.0 183 Session Progress\r\nCSeq: 7 INVITE\r\nSubject: a\r\n b\r\nc: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\r\nextra"
	m, err := ParseSIPMessage([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.StatusCode() != 183 || !m.IsResponse() {
		t.Errorf("status = %d, response = %v", m.StatusCode(), m.IsResponse())
	}
	if n, method := m.CSeq(); n != 7 || method != "INVITE" {
		t.Errorf("CSeq = %d %s", n, method)
	}
	if got, _ := m.Header("subject"); got != "a b" {
		t.Errorf("folded Subject = %q, want %q", got, "a b")
	}
	if got, _ := m.Header("Content-Type"); got != "application/sdp" {
		t.Errorf("compact Content-Type = %q", got)
	}
	if m.Body != "v=0\r" {
		t.Errorf("body = %q, want it cut to Content-Length", m.Body)
	}
	if _, ok := m.Header("Via"); ok {
		t.Error("Header(Via) found a header that is not there")
	}
}

func FuzzParseSippTrace(f *testing.F) {
	for _, name := range []string{"callee-messages.log", "caller-messages.log"} {
		data, err := os.ReadFile(filepath.Join("testdata", "sipp", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := ParseSippTrace(data)
		if err != nil {
			return
		}
		for _, m := range msgs {
			_ = m.StatusCode()
			_, _ = m.CSeq()
			_, _ = m.Header("Content-Length")
			_, _ = ParseSDP(m.Body)
		}
	})
}
