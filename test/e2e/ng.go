// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/zeebo/bencode"
)

// maxBencodeDepth bounds nesting in replies; the deepest real reply (query)
// is about eight levels deep.
const maxBencodeDepth = 32

// NGClient talks the ng control protocol over UDP, as Kamailio's rtpengine
// module does: one datagram per request, the same cookie on retransmission.
// It is not safe for concurrent use.
type NGClient struct {
	conn    *net.UDPConn
	server  *net.UDPAddr
	timeout time.Duration
	tries   int
}

// NewNGClient returns a client that sends from conn (which the client then
// owns) to the relay's ng socket at server. Each try waits timeout for the
// reply; tries counts the first transmission.
func NewNGClient(conn *net.UDPConn, server *net.UDPAddr, timeout time.Duration, tries int) *NGClient {
	if tries < 1 {
		tries = 1
	}
	return &NGClient{conn: conn, server: server, timeout: timeout, tries: tries}
}

// Close releases the client's socket.
func (c *NGClient) Close() error {
	return c.conn.Close()
}

// Call sends one request dictionary and returns the reply dictionary. A reply
// whose result is "error" is returned together with an error wrapping
// ErrNGFailed.
func (c *NGClient) Call(ctx context.Context, req map[string]any) (map[string]any, error) {
	command, _ := req["command"].(string)
	cookie, err := newCookie()
	if err != nil {
		return nil, err
	}
	msg, err := EncodeNG(cookie, req)
	if err != nil {
		return nil, fmt.Errorf("encode ng %s: %w", command, err)
	}
	buf := make([]byte, 65536)
	for try := 0; try < c.tries; try++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("ng %s: %w", command, err)
		}
		if _, err := c.conn.WriteToUDP(msg, c.server); err != nil {
			return nil, fmt.Errorf("send ng %s to %s: %w", command, c.server, err)
		}
		deadline := time.Now().Add(c.timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return nil, fmt.Errorf("ng %s: %w", command, err)
		}
		for {
			n, _, err := c.conn.ReadFromUDP(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("receive ng %s reply: %w", command, err)
			}
			gotCookie, reply, err := DecodeNG(buf[:n])
			if err != nil {
				return nil, fmt.Errorf("ng %s reply: %w", command, err)
			}
			if gotCookie != cookie {
				// A late answer to an earlier request that had already timed out.
				continue
			}
			if result, _ := reply["result"].(string); result == "error" {
				reason, _ := reply["error-reason"].(string)
				return reply, fmt.Errorf("ng %s: %w: %q", command, ErrNGFailed, reason)
			}
			return reply, nil
		}
	}
	return nil, fmt.Errorf("ng %s to %s after %d tries of %v: %w", command, c.server, c.tries, c.timeout, ErrNGTimeout)
}

// Ping sends "ping" and checks for the "pong" result.
func (c *NGClient) Ping(ctx context.Context) error {
	reply, err := c.Call(ctx, map[string]any{"command": "ping"})
	if err != nil {
		return err
	}
	if result, _ := reply["result"].(string); result != "pong" {
		return fmt.Errorf("ping: result %q, want \"pong\": %w", result, ErrReplyShape)
	}
	return nil
}

// List returns the Call-IDs the relay currently holds.
func (c *NGClient) List(ctx context.Context) ([]string, error) {
	reply, err := c.Call(ctx, map[string]any{"command": "list", "limit": 1000})
	if err != nil {
		return nil, err
	}
	return ListCalls(reply)
}

// Query returns the relay's stats tree for one call.
func (c *NGClient) Query(ctx context.Context, callID string) (map[string]any, error) {
	return c.Call(ctx, map[string]any{"command": "query", "call-id": callID})
}

// Statistics returns the relay's global statistics reply.
func (c *NGClient) Statistics(ctx context.Context) (map[string]any, error) {
	return c.Call(ctx, map[string]any{"command": "statistics"})
}

func newCookie() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ng cookie: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// EncodeNG frames a request dictionary as "<cookie> <bencode>".
func EncodeNG(cookie string, dict map[string]any) ([]byte, error) {
	if cookie == "" || bytes.ContainsAny([]byte(cookie), " \t\r\n") {
		return nil, fmt.Errorf("cookie %q: %w", cookie, ErrNGMalformed)
	}
	body, err := bencode.EncodeBytes(dict)
	if err != nil {
		return nil, fmt.Errorf("bencode: %w", err)
	}
	out := make([]byte, 0, len(cookie)+1+len(body))
	out = append(out, cookie...)
	out = append(out, ' ')
	return append(out, body...), nil
}

// DecodeNG splits an ng message at its first space and decodes the bencode
// dictionary that follows the cookie.
func DecodeNG(msg []byte) (string, map[string]any, error) {
	sp := bytes.IndexByte(msg, ' ')
	if sp <= 0 {
		return "", nil, fmt.Errorf("no cookie: %w", ErrNGMalformed)
	}
	cookie, body := string(msg[:sp]), msg[sp+1:]
	if len(body) == 0 || body[0] != 'd' {
		return cookie, nil, fmt.Errorf("body is not a bencode dictionary: %w", ErrNGMalformed)
	}
	// Validate first: the decoder trusts string lengths and allocates them
	// before reading, and it accepts trailing garbage.
	end, err := scanBencode(body, 0, 0)
	if err != nil {
		return cookie, nil, err
	}
	if end != len(body) {
		return cookie, nil, fmt.Errorf("%d bytes after the dictionary: %w", len(body)-end, ErrNGMalformed)
	}
	var dict map[string]any
	if err := bencode.DecodeBytes(body, &dict); err != nil {
		return cookie, nil, fmt.Errorf("bencode: %w: %w", ErrNGMalformed, err)
	}
	return cookie, dict, nil
}

// scanBencode checks that one well-formed bencode value starts at b[i] and
// returns the offset just past it.
func scanBencode(b []byte, i, depth int) (int, error) {
	if depth > maxBencodeDepth {
		return 0, fmt.Errorf("nesting deeper than %d: %w", maxBencodeDepth, ErrNGMalformed)
	}
	if i >= len(b) {
		return 0, fmt.Errorf("truncated at %d: %w", i, ErrNGMalformed)
	}
	switch c := b[i]; {
	case c == 'i':
		end := bytes.IndexByte(b[i+1:], 'e')
		if end < 0 {
			return 0, fmt.Errorf("unterminated integer at %d: %w", i, ErrNGMalformed)
		}
		if _, err := strconv.ParseInt(string(b[i+1:i+1+end]), 10, 64); err != nil {
			return 0, fmt.Errorf("integer at %d: %w", i, ErrNGMalformed)
		}
		return i + end + 2, nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b[i:], ':')
		if colon < 0 || colon > 10 {
			return 0, fmt.Errorf("string length at %d: %w", i, ErrNGMalformed)
		}
		n, err := strconv.Atoi(string(b[i : i+colon]))
		if err != nil || n > len(b)-(i+colon+1) {
			return 0, fmt.Errorf("string length at %d exceeds the message: %w", i, ErrNGMalformed)
		}
		return i + colon + 1 + n, nil
	case c == 'l' || c == 'd':
		dict := c == 'd'
		i++
		for {
			if i >= len(b) {
				return 0, fmt.Errorf("unterminated container: %w", ErrNGMalformed)
			}
			if b[i] == 'e' {
				return i + 1, nil
			}
			if dict && (b[i] < '0' || b[i] > '9') {
				return 0, fmt.Errorf("dictionary key at %d is not a string: %w", i, ErrNGMalformed)
			}
			next, err := scanBencode(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = next
			if dict {
				if next, err = scanBencode(b, i, depth+1); err != nil {
					return 0, err
				}
				i = next
			}
		}
	default:
		return 0, fmt.Errorf("unexpected byte %q at %d: %w", c, i, ErrNGMalformed)
	}
}

// ListCalls extracts the Call-IDs from a "list" reply.
func ListCalls(reply map[string]any) ([]string, error) {
	raw, ok := reply["calls"]
	if !ok {
		return nil, fmt.Errorf("list reply has no \"calls\": %w", ErrReplyShape)
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("list reply \"calls\" is %T: %w", raw, ErrReplyShape)
	}
	calls := make([]string, 0, len(list))
	for _, v := range list {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("list reply call-id is %T: %w", v, ErrReplyShape)
		}
		calls = append(calls, s)
	}
	sort.Strings(calls)
	return calls, nil
}

// StreamEndpoint is one relay-side socket of a call as a query reply shows
// it: the address and port the relay receives that party's media on.
type StreamEndpoint struct {
	Tag     string
	Address string
	Port    int
	Flags   []string
}

func (e StreamEndpoint) String() string {
	return fmt.Sprintf("%s:%d (tag %q, %v)", e.Address, e.Port, e.Tag, e.Flags)
}

// QueryEndpoints walks tags → medias → streams of a "query" reply and returns
// every relay-side socket with a non-zero local port.
func QueryEndpoints(reply map[string]any) ([]StreamEndpoint, error) {
	tags, ok := reply["tags"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("query reply has no \"tags\" dictionary: %w", ErrReplyShape)
	}
	var out []StreamEndpoint
	for tag, tv := range tags {
		td, ok := tv.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("query tag %q is %T: %w", tag, tv, ErrReplyShape)
		}
		medias, _ := td["medias"].([]any)
		for _, mv := range medias {
			md, ok := mv.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("query tag %q media is %T: %w", tag, mv, ErrReplyShape)
			}
			streams, _ := md["streams"].([]any)
			for _, sv := range streams {
				sd, ok := sv.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("query tag %q stream is %T: %w", tag, sv, ErrReplyShape)
				}
				port, err := intValue(sd["local port"])
				if err != nil {
					return nil, fmt.Errorf("query tag %q \"local port\": %w", tag, err)
				}
				if port == 0 {
					continue
				}
				addr, _ := sd["local address"].(string)
				var flags []string
				if fl, ok := sd["flags"].([]any); ok {
					for _, f := range fl {
						if s, ok := f.(string); ok {
							flags = append(flags, s)
						}
					}
				}
				out = append(out, StreamEndpoint{Tag: tag, Address: addr, Port: int(port), Flags: flags})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].Port < out[j].Port
	})
	return out, nil
}

// SessionCounts reads statistics.currentstatistics.{sessionsown,sessionstotal}
// from a "statistics" reply.
func SessionCounts(reply map[string]any) (own, total int64, err error) {
	stats, ok := reply["statistics"].(map[string]any)
	if !ok {
		return 0, 0, fmt.Errorf("statistics reply has no \"statistics\" dictionary: %w", ErrReplyShape)
	}
	cur, ok := stats["currentstatistics"].(map[string]any)
	if !ok {
		return 0, 0, fmt.Errorf("statistics reply has no \"currentstatistics\" dictionary: %w", ErrReplyShape)
	}
	if own, err = intValue(cur["sessionsown"]); err != nil {
		return 0, 0, fmt.Errorf("currentstatistics \"sessionsown\": %w", err)
	}
	if total, err = intValue(cur["sessionstotal"]); err != nil {
		return 0, 0, fmt.Errorf("currentstatistics \"sessionstotal\": %w", err)
	}
	return own, total, nil
}

// intValue accepts a bencode integer or a numeric string, as the ng protocol
// allows either.
func intValue(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number: %w", x, ErrReplyShape)
		}
		return n, nil
	case nil:
		return 0, fmt.Errorf("missing: %w", ErrReplyShape)
	default:
		return 0, fmt.Errorf("%T is not a number: %w", v, ErrReplyShape)
	}
}
