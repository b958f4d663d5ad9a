// SPDX-License-Identifier: Apache-2.0

package calls

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relayd/relayd/bench/internal/audio"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/sdes"
	"github.com/relayd/relayd/pkg/ngproto"
)

// Call is one two-party call: the bench's two endpoints and, once set up,
// where each of them must send its media.
type Call struct {
	ID      string
	FromTag string
	ToTag   string
	Caller  netip.AddrPort // the caller's endpoint (offer SDP)
	Callee  netip.AddrPort // the callee's endpoint (answer SDP)
	// CallerSendTo is the relay's address and port the caller sends to
	// (from the rewritten answer), CalleeSendTo the callee's (from the
	// rewritten offer).
	CallerSendTo netip.AddrPort
	CalleeSendTo netip.AddrPort
	// PT is the payload type the answer settled on.
	PT int
	// SRTP, when set, makes the caller's leg SDES-SRTP and leaves the
	// callee's plain RTP: the relay must decrypt one way and encrypt the
	// other.
	SRTP *SRTP
	// Transcode, when set, makes the call a transcoded one: the caller
	// offers only the pair's caller codec, the proxy asks the relay to
	// mask it and transcode to the callee's, and the callee answers only
	// that. CalleePT is then the payload type the relay offered the
	// callee for it (PT is the one it answered the caller with).
	Transcode *audio.Pair
	CalleePT  int
}

// SRTP is the keying of a call whose caller speaks SRTP (RTP/SAVP, SDES).
type SRTP struct {
	// Local is the caller's key, offered in its a=crypto line: the caller
	// encrypts with it and the relay decrypts with it.
	Local sdes.Key
	// Relay is the key of the relay's answer to the caller: the relay
	// encrypts with it and the caller decrypts with it.
	Relay sdes.Key
}

// cryptoTag is the tag of the caller's only a=crypto line.
const cryptoTag = 1

// Options configure a Driver.
type Options struct {
	NG     netip.AddrPort // the relay's ng address
	NSPath string         // the namespace the ng address lives in ("" for the current one)
	// Conns is how many ng sockets (concurrent requests) the driver keeps.
	Conns int
	// Directions is the offer's "direction" list (the relay's interface
	// names facing caller and callee), nil with a single interface.
	Directions []string
	// Timeout is the per-try ng timeout (default 1 s, Kamailio's); each
	// request is tried Tries times (default 3).
	Timeout time.Duration
	Tries   int
	Log     *slog.Logger
}

// Driver sends ng requests to one relay from a pool of sockets.
type Driver struct {
	opts    Options
	clients chan *ngproto.Client
	all     []*ngproto.Client
	sessID  uint64
	mu      sync.Mutex
}

// NewDriver dials Conns ng sockets inside the relay's namespace.
func NewDriver(opts Options) (*Driver, error) {
	opts.Conns = max(opts.Conns, 1)
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Tries <= 0 {
		opts.Tries = 3
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{opts: opts, clients: make(chan *ngproto.Client, opts.Conns), sessID: uint64(time.Now().Unix())}
	for range opts.Conns {
		var c *ngproto.Client
		err := netns.Do(opts.NSPath, func() error {
			var err error
			c, err = ngproto.Dial(opts.NG.String())
			return err
		})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("ng socket to %s: %w", opts.NG, err)
		}
		c.Timeout, c.Tries = opts.Timeout, opts.Tries
		d.all = append(d.all, c)
		d.clients <- c
	}
	return d, nil
}

// Close closes every socket.
func (d *Driver) Close() {
	for _, c := range d.all {
		_ = c.Close()
	}
	d.all = nil
}

// Do sends one request on a free socket and returns the reply and the
// round-trip time. A reply with result "error" is an ErrRelay error.
func (d *Driver) Do(ctx context.Context, req map[string]any) (map[string]any, time.Duration, error) {
	var c *ngproto.Client
	select {
	case c = <-d.clients:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	defer func() { d.clients <- c }()
	start := time.Now()
	reply, err := c.Do(ctx, req)
	rtt := time.Since(start)
	if err != nil {
		return nil, rtt, fmt.Errorf("ng %v: %w", req["command"], err)
	}
	switch r := str(reply["result"]); r {
	case "ok", "pong":
		return reply, rtt, nil
	case "error":
		return reply, rtt, fmt.Errorf("%w: %v: %s", ErrRelay, req["command"], str(reply["error-reason"]))
	default:
		return reply, rtt, fmt.Errorf("%w: %v: result %q", ErrRelay, req["command"], r)
	}
}

// Warm pings through every socket once the relay answers: a socket that
// sent before the relay listened holds an ICMP "connection refused" that
// would otherwise fail its next real request.
func (d *Driver) Warm(ctx context.Context) error {
	for _, c := range d.all {
		var err error
		for range 3 {
			if _, err = c.Do(ctx, map[string]any{"command": "ping"}); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("ng ping: %w", err)
		}
	}
	return nil
}

// Ping sends ping and expects pong.
func (d *Driver) Ping(ctx context.Context) error {
	_, _, err := d.Do(ctx, map[string]any{"command": "ping"})
	return err
}

func (d *Driver) nextSessID() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessID++
	return d.sessID
}

// offerRequest is what Kamailio's rtpengine_offer("replace-origin
// replace-session-connection ICE=remove RTP/AVP trust-address
// direction=... direction=...") sends (reference-relay.md §1.7).
func (d *Driver) offerRequest(c *Call, sdp string) map[string]any {
	req := map[string]any{
		"supports":           []any{"load limit"},
		"sdp":                sdp,
		"ICE":                "remove",
		"flags":              []any{"trust-address"},
		"replace":            []any{"origin", "session-connection"},
		"transport-protocol": "RTP/AVP",
		"call-id":            c.ID,
		"received-from":      []any{"IP4", c.Caller.Addr().String()},
		"from-tag":           c.FromTag,
		"command":            "offer",
	}
	if len(d.opts.Directions) > 0 {
		dirs := make([]any, len(d.opts.Directions))
		for i, s := range d.opts.Directions {
			dirs[i] = s
		}
		req["direction"] = dirs
	}
	return req
}

// Offer sends the caller's offer and learns where the callee must send.
// An SRTP call's offer goes out as RTP/SAVP with the caller's key; what
// the relay offers the plain callee must be plain RTP without keys.
func (d *Driver) Offer(ctx context.Context, c *Call) (time.Duration, error) {
	crypto := ""
	if c.SRTP != nil {
		crypto = sdes.Format(cryptoTag, c.SRTP.Local)
	}
	sessID := d.nextSessID()
	req := d.offerRequest(c, BuildSecureOffer(c.Caller, sessID, crypto))
	if p := c.Transcode; p != nil {
		// What Kamailio sends for rtpengine_offer("... codec-mask-opus
		// codec-transcode-PCMU").
		req["sdp"] = BuildTranscodeOffer(c.Caller, sessID, p.Caller)
		req["codec"] = map[string]any{"transcode": []any{p.Callee.Name}, "mask": []any{p.Caller.Name}}
	}
	reply, rtt, err := d.Do(ctx, req)
	if err != nil {
		return rtt, err
	}
	a, err := ParseAudio(str(reply["sdp"]))
	if err != nil {
		return rtt, fmt.Errorf("offer reply of call %s: %w", c.ID, err)
	}
	if p := c.Transcode; p != nil {
		pt, ok := a.PayloadOf(p.Callee)
		if !ok {
			return rtt, fmt.Errorf("offer reply of call %s: %w: asked to transcode %s to %s, it offered the callee %s%s",
				c.ID, ErrNotTranscoded, p.Caller.Name, p.Callee.Name, describePayloads(a), warning(reply))
		}
		c.CalleePT = pt
	}
	if c.SRTP != nil && (a.Proto != "RTP/AVP" || len(a.Crypto) > 0) {
		return rtt, fmt.Errorf("offer reply of call %s: %w: the plain callee was offered %s with %d a=crypto lines, want RTP/AVP without",
			c.ID, ErrSDP, a.Proto, len(a.Crypto))
	}
	c.CalleeSendTo = a.Addr
	return rtt, nil
}

// relayKey finds the relay's key in its answer to an SRTP caller: RTP/SAVP
// and an a=crypto line with the tag and suite the caller offered
// (RFC 4568 §5.1.2).
func relayKey(a Audio, offered sdes.Key) (sdes.Key, error) {
	if a.Proto != "RTP/SAVP" {
		return sdes.Key{}, fmt.Errorf("%w: the SRTP caller was answered %s, want RTP/SAVP", ErrSDP, a.Proto)
	}
	var problems []string
	for _, v := range a.Crypto {
		cr, err := sdes.Parse(v)
		switch {
		case err != nil:
			problems = append(problems, err.Error())
		case cr.Tag != cryptoTag || cr.Key.Suite.Name != offered.Suite.Name:
			problems = append(problems, fmt.Sprintf("tag %d %s, the caller offered tag %d %s", cr.Tag, cr.Key.Suite.Name, cryptoTag, offered.Suite.Name))
		default:
			return cr.Key, nil
		}
	}
	if len(problems) == 0 {
		problems = append(problems, "no a=crypto line")
	}
	return sdes.Key{}, fmt.Errorf("%w: no usable key in the answer to the SRTP caller: %s", ErrSDP, strings.Join(problems, "; "))
}

// Answer sends the callee's answer and learns where the caller must send;
// for an SRTP call it asks for RTP/SAVP towards the caller (as a proxy
// that bridges an SRTP caller to a plain callee does) and learns the
// relay's key from the answer.
func (d *Driver) Answer(ctx context.Context, c *Call) (time.Duration, error) {
	proto := "RTP/AVP"
	if c.SRTP != nil {
		proto = "RTP/SAVP"
	}
	sessID := d.nextSessID()
	sdp := BuildAnswer(c.Callee, sessID)
	if p := c.Transcode; p != nil {
		sdp = BuildTranscodeAnswer(c.Callee, sessID, p.Callee)
	}
	req := map[string]any{
		"supports":           []any{"load limit"},
		"sdp":                sdp,
		"ICE":                "remove",
		"flags":              []any{"trust-address"},
		"replace":            []any{"origin", "session-connection"},
		"transport-protocol": proto,
		"call-id":            c.ID,
		"received-from":      []any{"IP4", c.Callee.Addr().String()},
		"from-tag":           c.FromTag,
		"to-tag":             c.ToTag,
		"command":            "answer",
	}
	reply, rtt, err := d.Do(ctx, req)
	if err != nil {
		return rtt, err
	}
	a, err := ParseAudio(str(reply["sdp"]))
	if err != nil {
		return rtt, fmt.Errorf("answer reply of call %s: %w", c.ID, err)
	}
	if len(a.Payloads) == 0 {
		return rtt, fmt.Errorf("answer reply of call %s: %w: no payload types", c.ID, ErrSDP)
	}
	if c.SRTP != nil {
		k, err := relayKey(a, c.SRTP.Local)
		if err != nil {
			return rtt, fmt.Errorf("answer reply of call %s: %w", c.ID, err)
		}
		c.SRTP.Relay = k
	}
	c.CallerSendTo, c.PT = a.Addr, a.Payloads[0]
	if p := c.Transcode; p != nil {
		pt, ok := a.PayloadOf(p.Caller)
		if !ok || pt != a.Payloads[0] {
			return rtt, fmt.Errorf("answer reply of call %s: %w: the %s-only caller was answered %s%s",
				c.ID, ErrNotTranscoded, p.Caller.Name, describePayloads(a), warning(reply))
		}
	}
	return rtt, nil
}

// describePayloads names a stream's payload types and their codecs.
func describePayloads(a Audio) string {
	var parts []string
	for _, pt := range a.Payloads {
		if m, ok := a.Rtpmap[pt]; ok {
			parts = append(parts, fmt.Sprintf("%d (%s)", pt, m))
		} else {
			parts = append(parts, strconv.Itoa(pt))
		}
	}
	return "payload types " + strings.Join(parts, ", ")
}

// warning is a reply's "warning", as a suffix of an error text.
func warning(reply map[string]any) string {
	if w := str(reply["warning"]); w != "" {
		return "; its warning: " + w
	}
	return ""
}

// Setup sends offer then answer.
func (d *Driver) Setup(ctx context.Context, c *Call) (offer, answer time.Duration, err error) {
	if offer, err = d.Offer(ctx, c); err != nil {
		return offer, 0, err
	}
	answer, err = d.Answer(ctx, c)
	return offer, answer, err
}

// CallTotals are the RTP counters a delete reply carries for the call: the
// packets the relay received from both parties.
type CallTotals struct {
	RTPPackets, RTPErrors int64
	OK                    bool // the reply had totals
	// Transcoding is what the reply says the relay's transcoder did.
	Transcoding Transcoding
}

// Delete ends the call the way Kamailio does on BYE (call-id and from-tag).
func (d *Driver) Delete(ctx context.Context, c *Call) (CallTotals, time.Duration, error) {
	req := map[string]any{
		"supports":      []any{"load limit"},
		"call-id":       c.ID,
		"received-from": []any{"IP4", c.Caller.Addr().String()},
		"from-tag":      c.FromTag,
		"command":       "delete",
	}
	reply, rtt, err := d.Do(ctx, req)
	if err != nil {
		return CallTotals{}, rtt, err
	}
	var t CallTotals
	if totals, ok := reply["totals"].(map[string]any); ok {
		if rtp, ok := totals["RTP"].(map[string]any); ok {
			t.RTPPackets, t.RTPErrors, t.OK = num(rtp["packets"]), num(rtp["errors"]), true
		}
	}
	t.Transcoding = ParseTranscoding(reply)
	return t, rtt, nil
}

// Transcoding is what a query or delete reply says about a call's
// transcoding, summed over its parties, where the relay says it
// (relayd's "transcoding" dictionary of each party's media).
type Transcoding struct {
	// Reported says the reply had any transcoding figures.
	Reported bool
	// Concealed are packets the relay lost before its decoder and filled
	// in (the receiver gets a packet for each: only the relay knows).
	Concealed int64
	// QueueFull are packets it dropped because its transcoding workers
	// were behind.
	QueueFull int64
}

// Add sums two calls' figures.
func (t Transcoding) Add(u Transcoding) Transcoding {
	return Transcoding{Reported: t.Reported || u.Reported, Concealed: t.Concealed + u.Concealed, QueueFull: t.QueueFull + u.QueueFull}
}

// ParseTranscoding reads the transcoding figures of a call's reply: the
// "transcoding" dictionary of every media of every tag.
func ParseTranscoding(reply map[string]any) Transcoding {
	var t Transcoding
	tags, _ := reply["tags"].(map[string]any)
	for _, tag := range tags {
		td, _ := tag.(map[string]any)
		medias, _ := td["medias"].([]any)
		for _, m := range medias {
			md, _ := m.(map[string]any)
			tc, ok := md["transcoding"].(map[string]any)
			if !ok {
				continue
			}
			t.Reported = true
			t.Concealed += num(tc["concealed"])
			if errs, ok := tc["errors"].(map[string]any); ok {
				t.QueueFull += num(errs["queue full"])
			}
		}
	}
	return t
}

// Query asks the relay about a call and returns its transcoding figures.
func (d *Driver) Query(ctx context.Context, c *Call) (Transcoding, error) {
	reply, _, err := d.Do(ctx, map[string]any{"command": "query", "call-id": c.ID, "from-tag": c.FromTag})
	if err != nil {
		return Transcoding{}, err
	}
	return ParseTranscoding(reply), nil
}

// QueryAll queries calls with conc requests in flight and sums their
// transcoding figures.
func (d *Driver) QueryAll(ctx context.Context, calls []*Call, conc int) (Transcoding, error) {
	var (
		mu  sync.Mutex
		sum Transcoding
	)
	err := parallel(ctx, len(calls), conc, func(ctx context.Context, i int) error {
		t, err := d.Query(ctx, calls[i])
		if err != nil {
			return err
		}
		mu.Lock()
		sum = sum.Add(t)
		mu.Unlock()
		return nil
	})
	return sum, err
}

// RelayStats are the counters of the ng "statistics" command the bench
// checks against what it sent.
type RelayStats struct {
	Sessions        int64 // currentstatistics.sessionsown
	RelayedPackets  int64 // totalstatistics.relayedpackets
	RelayedErrors   int64 // totalstatistics.relayedpacketerrors
	KernelPackets   int64 // totalstatistics.relayedpackets_kernel
	MediaKernel     int64 // currentstatistics.media_kernel
	MediaUserspace  int64 // currentstatistics.media_userspace
	ManagedSessions int64 // totalstatistics.managedsessions
}

// Statistics reads the relay's global counters.
func (d *Driver) Statistics(ctx context.Context) (RelayStats, error) {
	reply, _, err := d.Do(ctx, map[string]any{"command": "statistics"})
	if err != nil {
		return RelayStats{}, err
	}
	return ParseStatistics(reply)
}

// ParseStatistics reads a statistics reply (the counters nest under
// "statistics"; a top-level layout is accepted too).
func ParseStatistics(reply map[string]any) (RelayStats, error) {
	root := reply
	if s, ok := reply["statistics"].(map[string]any); ok {
		root = s
	}
	cur, ok1 := root["currentstatistics"].(map[string]any)
	tot, ok2 := root["totalstatistics"].(map[string]any)
	if !ok1 || !ok2 {
		return RelayStats{}, fmt.Errorf("%w: statistics reply without currentstatistics and totalstatistics", ErrRelay)
	}
	return RelayStats{
		Sessions:        num(cur["sessionsown"]),
		MediaKernel:     num(cur["media_kernel"]),
		MediaUserspace:  num(cur["media_userspace"]),
		RelayedPackets:  num(tot["relayedpackets"]),
		RelayedErrors:   num(tot["relayedpacketerrors"]),
		KernelPackets:   num(tot["relayedpackets_kernel"]),
		ManagedSessions: num(tot["managedsessions"]),
	}, nil
}

// SetupAll sets up calls with conc requests in flight, calling progress
// after each. It stops at the first error.
func (d *Driver) SetupAll(ctx context.Context, calls []*Call, conc int, progress func()) error {
	return parallel(ctx, len(calls), conc, func(ctx context.Context, i int) error {
		_, _, err := d.Setup(ctx, calls[i])
		if progress != nil {
			progress()
		}
		return err
	})
}

// DeleteAll deletes calls with conc requests in flight and returns each
// call's totals (zero where the delete failed) and the first error.
func (d *Driver) DeleteAll(ctx context.Context, calls []*Call, conc int) ([]CallTotals, error) {
	totals := make([]CallTotals, len(calls))
	var mu sync.Mutex
	var errs []error
	_ = parallel(ctx, len(calls), conc, func(ctx context.Context, i int) error {
		t, _, err := d.Delete(ctx, calls[i])
		totals[i] = t
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil // keep deleting the rest
	})
	if len(errs) > 0 {
		return totals, fmt.Errorf("%d of %d deletes failed, first: %w", len(errs), len(calls), errs[0])
	}
	return totals, nil
}

// parallel runs fn(0..n-1) on conc goroutines and returns the first error.
func parallel(parent context.Context, n, conc int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		wg    sync.WaitGroup
		next  int
		mu    sync.Mutex
		first error
	)
	for range max(1, min(conc, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && parent.Err() != nil {
		first = parent.Err()
	}
	return first
}

// str reads a bencode string (string or []byte); anything else is "".
func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	}
	return ""
}

// num reads an integer that may arrive as any integer type, a float (JSON)
// or a decimal string; anything else is 0.
func num(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int:
		return int64(n)
	case int32:
		return int64(n)
	case uint64:
		return int64(n)
	case float64:
		return int64(n)
	case string, []byte:
		i, err := strconv.ParseInt(str(n), 10, 64)
		if err != nil {
			return 0
		}
		return i
	}
	return 0
}
