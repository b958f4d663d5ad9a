// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Client sends ng requests over UDP the way a SIP proxy's rtpengine module
// does: a fresh cookie per request, the same datagram retransmitted on timeout.
type Client struct {
	conn    *net.UDPConn
	Format  Format
	Timeout time.Duration // per try; default 1 s (Kamailio's rtpengine_tout_ms)
	Tries   int           // default 5 (Kamailio's rtpengine_retr + 1)
}

// ErrTimeout means no reply arrived after every try.
var ErrTimeout = errors.New("ng request timed out")

// Dial connects a client to the ng server at addr ("host:port").
func Dial(addr string) (*Client, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", addr, err)
	}
	conn, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return &Client{conn: conn, Format: FormatBencode, Timeout: time.Second, Tries: 5}, nil
}

// Close closes the client's socket.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends the request dictionary and returns the decoded reply dictionary.
func (c *Client) Do(ctx context.Context, req map[string]any) (map[string]any, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	return c.DoCookie(ctx, hex.EncodeToString(rnd[:]), req)
}

// DoCookie is Do with the caller's cookie: a proxy's retransmission of an
// earlier request carries that request's cookie.
func (c *Client) DoCookie(ctx context.Context, cookie string, req map[string]any) (map[string]any, error) {
	r, err := ReplyOf(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	msg, err := Encode(cookie, c.Format, r)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	buf := make([]byte, 65536)
	for try := 0; try < max(c.Tries, 1); try++ {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		deadline := time.Now().Add(c.Timeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = c.conn.SetReadDeadline(deadline)
		for {
			n, err := c.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				// Nobody listening (yet): like a SIP proxy, wait out this try.
				if errors.Is(err, syscall.ECONNREFUSED) {
					time.Sleep(time.Until(deadline))
					break
				}
				return nil, fmt.Errorf("receive: %w", err)
			}
			got, body, err := SplitMessage(buf[:n])
			if err != nil || got != cookie {
				continue // a late reply to an earlier request
			}
			dict, _, err := Decode(bytes.Clone(body))
			if err != nil {
				return nil, fmt.Errorf("decode reply: %w", err)
			}
			return dict, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, ErrTimeout
}
