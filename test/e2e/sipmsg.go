// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// traceSeparator starts every entry of sipp's -trace_msg file, followed by a
// timestamp on the same line.
const traceSeparator = "-----------------------------------------------"

// SIPMessage is one message from a sipp message trace.
type SIPMessage struct {
	// Received is true for messages sipp received, false for those it sent.
	Received  bool
	StartLine string
	Headers   []HeaderField
	Body      string
}

// HeaderField is one SIP header line, split at its first colon.
type HeaderField struct {
	Name  string
	Value string
}

// Header returns the value of the first header named name (case-insensitive,
// compact forms included) and whether it exists.
func (m SIPMessage) Header(name string) (string, bool) {
	want := canonicalHeader(name)
	for _, h := range m.Headers {
		if canonicalHeader(h.Name) == want {
			return h.Value, true
		}
	}
	return "", false
}

// canonicalHeader lower-cases a header name and expands the RFC 3261 compact
// forms sipp and Kamailio may use.
func canonicalHeader(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	switch n {
	case "i":
		return "call-id"
	case "c":
		return "content-type"
	case "l":
		return "content-length"
	case "f":
		return "from"
	case "t":
		return "to"
	case "v":
		return "via"
	case "m":
		return "contact"
	}
	return n
}

// IsResponse reports whether the message is a SIP response.
func (m SIPMessage) IsResponse() bool {
	return strings.HasPrefix(m.StartLine, "SIP/2.0 ")
}

// StatusCode returns a response's status code, or 0 for a request.
func (m SIPMessage) StatusCode() int {
	if !m.IsResponse() {
		return 0
	}
	f := strings.Fields(m.StartLine)
	if len(f) < 2 {
		return 0
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return 0
	}
	return code
}

// CSeq returns the sequence number and method of the CSeq header, or zero
// values when it is missing or unreadable.
func (m SIPMessage) CSeq() (int, string) {
	v, ok := m.Header("CSeq")
	if !ok {
		return 0, ""
	}
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, ""
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, ""
	}
	return n, f[1]
}

func (m SIPMessage) String() string {
	dir := "sent"
	if m.Received {
		dir = "received"
	}
	n, method := m.CSeq()
	return fmt.Sprintf("%s %q (CSeq %d %s)", dir, m.StartLine, n, method)
}

// ParseSippTrace splits the file sipp writes for -trace_msg/-message_file into
// messages. Each entry is a separator line with a timestamp, a line saying
// "UDP message sent (N bytes):" or "UDP message received [N] bytes :", an empty
// line, and the message as it went over the wire.
func ParseSippTrace(data []byte) ([]SIPMessage, error) {
	var msgs []SIPMessage
	entries := bytes.Split(data, []byte(traceSeparator))
	if len(bytes.TrimSpace(entries[0])) != 0 {
		return nil, fmt.Errorf("text before the first separator: %w", ErrMalformedTrace)
	}
	for i, e := range entries[1:] {
		// Drop the rest of the separator line (the timestamp).
		_, rest, ok := bytes.Cut(e, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("entry %d: no line after the separator: %w", i, ErrMalformedTrace)
		}
		what, raw, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("entry %d: no message after %q: %w", i, what, ErrMalformedTrace)
		}
		var received bool
		switch w := string(what); {
		case strings.Contains(w, " message received "):
			received = true
		case strings.Contains(w, " message sent "):
		default:
			return nil, fmt.Errorf("entry %d: unknown entry kind %q: %w", i, w, ErrMalformedTrace)
		}
		// sipp writes an empty line before and a newline after the message.
		raw = bytes.TrimPrefix(raw, []byte("\n"))
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		m, err := ParseSIPMessage(raw)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		m.Received = received
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// ParseSIPMessage reads one SIP message: start line, header lines (folded
// continuation lines are joined), an empty line and the body, cut to
// Content-Length when that header is present.
func ParseSIPMessage(raw []byte) (SIPMessage, error) {
	var m SIPMessage
	head, body, found := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !found {
		// sipp's trace keeps CRLF, but tolerate bare LF too.
		head, body, found = bytes.Cut(raw, []byte("\n\n"))
	}
	if !found {
		head = bytes.TrimRight(raw, "\r\n")
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	m.StartLine = strings.TrimSpace(lines[0])
	if m.StartLine == "" {
		return m, fmt.Errorf("empty start line: %w", ErrMalformedTrace)
	}
	if !strings.HasPrefix(m.StartLine, "SIP/2.0 ") && !strings.HasSuffix(m.StartLine, " SIP/2.0") {
		return m, fmt.Errorf("start line %q is neither request nor response: %w", m.StartLine, ErrMalformedTrace)
	}
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(m.Headers) == 0 {
				return m, fmt.Errorf("continuation line before any header: %w", ErrMalformedTrace)
			}
			m.Headers[len(m.Headers)-1].Value += " " + strings.TrimSpace(l)
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return m, fmt.Errorf("header line %q has no name: %w", l, ErrMalformedTrace)
		}
		m.Headers = append(m.Headers, HeaderField{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	if cl, ok := m.Header("Content-Length"); ok {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 {
			return m, fmt.Errorf("content-length %q: %w", cl, ErrMalformedTrace)
		}
		if n > len(body) {
			return m, fmt.Errorf("content-length %d but %d body bytes: %w", n, len(body), ErrMalformedTrace)
		}
		body = body[:n]
	}
	m.Body = string(body)
	return m, nil
}
