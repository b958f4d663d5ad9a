// SPDX-License-Identifier: Apache-2.0

package session

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// endLog collects CallEnd hooks.
type endLog struct {
	mu   sync.Mutex
	ends []CallEnd
}

func (l *endLog) add(e CallEnd) { l.mu.Lock(); l.ends = append(l.ends, e); l.mu.Unlock() }
func (l *endLog) all() []CallEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]CallEnd(nil), l.ends...)
}

func TestLimitsChangeAtRunTime(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) { c.OfferTimeout = time.Hour })
	trunk := example(t, "sip-trunk-offer.sdp")
	if _, err := m.Offer(Signal{CallID: "c1", FromTag: "A", SDP: trunk}); err != nil {
		t.Fatal(err)
	}
	l := m.Limits()
	if l.OfferTimeout != time.Hour || l.MaxSessions != -1 || l.DeleteDelay != 30*time.Second {
		t.Fatalf("initial limits %+v", l)
	}
	// Drain: new calls are refused, the running one keeps working.
	l.MaxSessions = 0
	l.OfferTimeout = 10 * time.Second
	m.SetLimits(l)
	if _, err := m.Offer(Signal{CallID: "c2", FromTag: "A", SDP: trunk}); !errors.Is(err, ErrSessionLimit) {
		t.Errorf("offer while draining: %v, want ErrSessionLimit", err)
	}
	if _, err := m.Offer(Signal{CallID: "c1", FromTag: "A", SDP: trunk}); err != nil {
		t.Errorf("re-INVITE of a running call while draining: %v", err)
	}
	// The shorter offer-timeout applies to the running call at once.
	clk.add(11 * time.Second)
	m.Expire()
	if got := m.List(0); len(got) != 0 {
		t.Errorf("after the lowered offer-timeout: %v still listed", got)
	}
	if got := m.Limits(); got != l {
		t.Errorf("Limits() = %+v, want %+v", got, l)
	}
	l.MaxSessions = -1
	m.SetLimits(l)
	if _, err := m.Offer(Signal{CallID: "c3", FromTag: "A", SDP: trunk}); err != nil {
		t.Errorf("offer after the drain ended: %v", err)
	}
}

func TestSessionsTerminateAndOrigin(t *testing.T) {
	ends := &endLog{}
	var logBuf bytes.Buffer
	m, clk := newTestManager(t, func(c *Config) {
		c.OnCallEnd = ends.add
		c.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	})
	trunk, fs := example(t, "sip-trunk-offer.sdp"), example(t, "freeswitch-answer.sdp")
	proxy := netip.MustParseAddrPort("192.0.2.5:5060")
	for _, id := range []string{"one", "two"} {
		if _, err := m.Offer(Signal{CallID: id, FromTag: "A-" + id, SDP: trunk}); err != nil {
			t.Fatal(err)
		}
		m.NoteOrigin(id, proxy)
		m.NoteOrigin(id, netip.MustParseAddrPort("198.51.100.1:1")) // the first stays
		clk.add(time.Second)
	}
	if _, err := m.Answer(Signal{CallID: "one", FromTag: "A-one", ToTag: "B-one", SDP: fs}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Delete(DeleteRequest{CallID: "two"}); err != nil { // delete-delay 30 s
		t.Fatal(err)
	}
	list := m.Sessions()
	if len(list) != 2 || list[0].CallID != "one" || list[1].CallID != "two" {
		t.Fatalf("Sessions() = %+v", list)
	}
	if list[0].Deleting || !list[1].Deleting {
		t.Errorf("deletion marks: one %v two %v, want false true", list[0].Deleting, list[1].Deleting)
	}
	if list[0].Origin != proxy || !list[0].IPv4 || list[0].IPv6 || list[0].TOS != 184 {
		t.Errorf("summary of one: %+v", list[0])
	}
	if _, err := m.Session("nope"); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Session(nope): %v", err)
	}
	if err := m.Terminate("nope"); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Terminate(nope): %v", err)
	}
	clk.add(2 * time.Second)
	if err := m.Terminate("one"); err != nil {
		t.Fatal(err)
	}
	if n := m.TerminateAll(); n != 1 {
		t.Errorf("TerminateAll() = %d, want 1", n)
	}
	if got := m.List(0); len(got) != 0 || usedSlots(m) != 0 {
		t.Errorf("after terminate: %v listed, %d slots used", got, usedSlots(m))
	}
	got := ends.all()
	if len(got) != 2 {
		t.Fatalf("%d CallEnd hooks, want 2: %+v", len(got), got)
	}
	one := got[0]
	if one.CallID != "one" || one.Reason != "forced" || one.Timeout || one.Origin != proxy ||
		one.Duration() != 4*time.Second || len(one.Dialogues) != 1 || one.Dialogues[0] != [2]string{"A-one", "B-one"} {
		t.Errorf("CallEnd of one: %+v", one)
	}
	if s := m.Statistics(); s.ForcedTerminated != 2 {
		t.Errorf("forcedterminated %d, want 2", s.ForcedTerminated)
	}
	total, sq, n := m.DurationStats()
	// one lived 4 s, two 3 s.
	if n != 2 || total != 7*time.Second || sq != 25 {
		t.Errorf("DurationStats = %v %v %d, want 7s 25 2", total, sq, n)
	}
	if sd := StdDev(total, sq, n); sd != 0.5 {
		t.Errorf("StdDev = %v, want 0.5", sd)
	}
	logs := logBuf.String()
	for _, want := range []string{`msg=CDR component=session call-id=one reason=forced`, `duration=4`, `tags="[A-one B-one]"`, `packets=0`, `mos=n/a`} {
		if !strings.Contains(logs, want) {
			t.Errorf("CDR log lacks %q:\n%s", want, logs)
		}
	}
	m.adm.mu.Lock()
	left := len(m.adm.origin)
	m.adm.mu.Unlock()
	if left != 0 {
		t.Errorf("%d origins left behind", left)
	}
}

func TestCallEndOnTimeout(t *testing.T) {
	ends := &endLog{}
	m, clk := newTestManager(t, func(c *Config) { c.OnCallEnd = ends.add; c.OfferTimeout = 5 * time.Second })
	if _, err := m.Offer(Signal{CallID: "t", FromTag: "A", SDP: example(t, "sip-trunk-offer.sdp")}); err != nil {
		t.Fatal(err)
	}
	clk.add(6 * time.Second)
	m.Expire()
	got := ends.all()
	if len(got) != 1 || !got[0].Timeout || got[0].Reason != "offer-timeout" || len(got[0].Tags) != 1 || got[0].Tags[0] != "A" {
		t.Errorf("CallEnd: %+v", got)
	}
}
