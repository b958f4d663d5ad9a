// SPDX-License-Identifier: Apache-2.0

// Package notify tells the SIP side that relayd ended a call on its own (a
// timeout), as the incumbent does with b2b-url and xmlrpc-format: an
// XML-RPC call to the proxy or B2BUA, which then sends BYE to both ends.
// With Kamailio (format 2) that is dlg.terminate_dlg of its dialog module,
// reached through its xmlrpc module.
//
// Notices leave through a bounded queue served by a worker, so signalling
// and the expiry loop never wait on the network: a full queue drops the
// notice, and every drop or failure is counted and logged with the call-id.
package notify

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// Formats (xmlrpc-format), the incumbent's numbering.
const (
	FormatSEMS     = 0 // di("sbc", "postControlCmd", <tag>, "teardown"), once per party
	FormatCallID   = 1 // teardown(<call-id>)
	FormatKamailio = 2 // dlg.terminate_dlg(<call-id>, <from-tag>, <to-tag>), once per dialogue
)

// DefaultQueue is how many notices may wait; beyond, notices are dropped
// (and counted), never queued without bound.
const DefaultQueue = 1024

// DefaultTimeout bounds one XML-RPC exchange (the incumbent allows 5 s).
const DefaultTimeout = 5 * time.Second

// Config configures the notifier.
type Config struct {
	// URL is b2b-url; "%%" is replaced by the address of the proxy that
	// created the call.
	URL     string
	Format  int
	Queue   int           // DefaultQueue when 0
	Timeout time.Duration // DefaultTimeout when 0
	Logger  *slog.Logger
	// Client sends the requests; nil uses an http.Client with Timeout.
	Client *http.Client
}

// Stats counts notices by result.
type Stats struct {
	Sent    uint64 // the proxy accepted it (or no longer knew the dialog)
	Failed  uint64 // transport error, HTTP error or XML-RPC fault
	Dropped uint64 // the queue was full
}

// Notifier sends teardown notices.
type Notifier struct {
	cfg    Config
	log    *slog.Logger
	queue  chan notice
	client *http.Client

	sent, failed, dropped atomic.Uint64
}

// notice is one XML-RPC call.
type notice struct {
	callID string
	url    string
	method string
	params []string
}

// New validates cfg and returns a notifier; Run must be started.
func New(cfg Config) (*Notifier, error) {
	if cfg.URL == "" {
		return nil, errors.New("notify: no b2b-url")
	}
	if cfg.Format < FormatSEMS || cfg.Format > FormatKamailio {
		return nil, fmt.Errorf("notify: xmlrpc-format %d: want 0, 1 or 2", cfg.Format)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Notifier{cfg: cfg, log: cfg.Logger.With("component", "notify"),
		queue: make(chan notice, cfg.Queue), client: client}, nil
}

// CallEnded is session.Config.OnCallEnd: it queues the notices for a call
// that timed out and returns at once.
func (n *Notifier) CallEnded(e session.CallEnd) {
	if !e.Timeout {
		return // the SIP side ended it, or the operator did
	}
	url := expandURL(n.cfg.URL, e.Origin)
	var notices []notice
	switch n.cfg.Format {
	case FormatSEMS:
		for _, tag := range e.Tags {
			notices = append(notices, notice{e.CallID, url, "di", []string{"sbc", "postControlCmd", tag, "teardown"}})
		}
	case FormatCallID:
		notices = append(notices, notice{e.CallID, url, "teardown", []string{e.CallID}})
	case FormatKamailio:
		for _, d := range e.Dialogues {
			notices = append(notices, notice{e.CallID, url, "dlg.terminate_dlg", []string{e.CallID, d[0], d[1]}})
		}
		if len(e.Dialogues) == 0 {
			// Never answered: there is no dialog to terminate (the proxy's
			// own timers end the transaction).
			n.log.Debug("no dialogue to tear down", "call-id", e.CallID, "reason", e.Reason)
		}
	}
	for _, nt := range notices {
		select {
		case n.queue <- nt:
		default:
			n.dropped.Add(1)
			n.log.Warn("teardown notice dropped: queue full", "call-id", e.CallID, "queue", cap(n.queue))
		}
	}
}

// expandURL puts the proxy's address where the URL has "%%".
func expandURL(url string, origin netip.AddrPort) string {
	if !strings.Contains(url, "%%") {
		return url
	}
	host := "127.0.0.1"
	if origin.IsValid() {
		a := origin.Addr().Unmap()
		host = a.String()
		if a.Is6() {
			host = "[" + host + "]"
		}
	}
	return strings.ReplaceAll(url, "%%", host)
}

// Run sends queued notices until ctx is done; notices still queued then are
// sent with what is left of a short grace period.
func (n *Notifier) Run(ctx context.Context) {
	for {
		select {
		case nt := <-n.queue:
			n.send(ctx, nt)
		case <-ctx.Done():
			grace, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
			defer cancel()
			for {
				select {
				case nt := <-n.queue:
					n.send(grace, nt)
				default:
					return
				}
			}
		}
	}
}

// Stats returns the counters.
func (n *Notifier) Stats() Stats {
	return Stats{Sent: n.sent.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Counters are the stats by result label (relayd_teardown_notices_total).
func (n *Notifier) Counters() map[string]uint64 {
	s := n.Stats()
	return map[string]uint64{"sent": s.Sent, "failed": s.Failed, "dropped": s.Dropped}
}

func (n *Notifier) send(ctx context.Context, nt notice) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	err := call(ctx, n.client, nt.url, nt.method, nt.params)
	var fault *Fault
	switch {
	case err == nil:
		n.sent.Add(1)
		n.log.Info("teardown notice sent", "call-id", nt.callID, "method", nt.method, "url", nt.url)
	case errors.As(err, &fault) && strings.Contains(strings.ToLower(fault.String), "dialog not found"):
		// The proxy has already forgotten the dialog: nothing left to end.
		n.sent.Add(1)
		n.log.Info("teardown notice: dialog already gone", "call-id", nt.callID, "method", nt.method)
	default:
		n.failed.Add(1)
		n.log.Warn("teardown notice failed", "call-id", nt.callID, "method", nt.method, "url", nt.url, "error", err)
	}
}

// Fault is an XML-RPC fault response.
type Fault struct {
	Code   int
	String string
}

func (f *Fault) Error() string { return fmt.Sprintf("XML-RPC fault %d: %s", f.Code, f.String) }

// Request renders an XML-RPC methodCall with string parameters.
func Request(method string, params []string) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n<methodCall><methodName>")
	_ = xml.EscapeText(&b, []byte(method))
	b.WriteString("</methodName><params>")
	for _, p := range params {
		b.WriteString("<param><value><string>")
		_ = xml.EscapeText(&b, []byte(p))
		b.WriteString("</string></value></param>")
	}
	b.WriteString("</params></methodCall>\n")
	return b.Bytes()
}

// maxResponse bounds what is read of a reply.
const maxResponse = 64 << 10

func call(ctx context.Context, client *http.Client, url, method string, params []string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(Request(method, params)))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "relayd")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return ParseResponse(body)
}

// ParseResponse returns nil for a methodResponse with params and a *Fault
// for a fault; anything else is an error.
func ParseResponse(body []byte) error {
	var r struct {
		XMLName xml.Name  `xml:"methodResponse"`
		Params  *struct{} `xml:"params"`
		Fault   *struct {
			Members []struct {
				Name  string `xml:"name"`
				Value struct {
					Int    string `xml:"int"`
					I4     string `xml:"i4"`
					String string `xml:"string"`
					Text   string `xml:",chardata"`
				} `xml:"value"`
			} `xml:"value>struct>member"`
		} `xml:"fault"`
	}
	if err := xml.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("not an XML-RPC response: %w", err)
	}
	if r.Fault != nil {
		f := &Fault{}
		for _, m := range r.Fault.Members {
			switch m.Name {
			case "faultCode":
				v := m.Value.Int + m.Value.I4
				_, _ = fmt.Sscan(strings.TrimSpace(v), &f.Code)
			case "faultString":
				f.String = m.Value.String
				if f.String == "" {
					f.String = strings.TrimSpace(m.Value.Text)
				}
			}
		}
		return f
	}
	if r.Params == nil {
		return errors.New("XML-RPC response without params or fault")
	}
	return nil
}
