// SPDX-License-Identifier: Apache-2.0

package session

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mplane "github.com/relayd/relayd/pkg/media"
)

// dueOf reports when expiry looks at the call next (zero: not planned).
func dueOf(m *Manager, id string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls[id]
	if c == nil || c.dueIdx < 0 {
		return time.Time{}
	}
	return c.due
}

// Expire looks only at the calls whose deadline has come: each signal plans
// the next look, and nothing else is touched in between.
func TestExpiryByDeadline(t *testing.T) {
	m, clk := newTestManager(t, func(c *Config) {
		c.OfferTimeout, c.DeleteDelay, c.FinalTimeout = 10*time.Second, 5*time.Second, time.Hour
	})
	t0 := clk.now()
	sdp := example(t, "sip-trunk-offer.sdp")
	if _, err := m.Offer(Signal{CallID: "c", FromTag: "A", SDP: sdp}); err != nil {
		t.Fatal(err)
	}
	if got := dueOf(m, "c"); !got.Equal(t0.Add(10 * time.Second)) {
		t.Fatalf("after the offer: due %v, want offer-timeout at %v", got, t0.Add(10*time.Second))
	}
	clk.add(4 * time.Second)
	if _, err := m.Offer(Signal{CallID: "c", FromTag: "A", SDP: sdp}); err != nil {
		t.Fatal(err)
	}
	// The earlier look stays planned; it finds the call alive and plans the
	// next one from the re-offer.
	clk.add(6 * time.Second)
	m.Expire()
	if got, want := dueOf(m, "c"), t0.Add(14*time.Second); !got.Equal(want) {
		t.Fatalf("after the first look: due %v, want %v", got, want)
	}
	if _, err := m.Delete(DeleteRequest{CallID: "c"}); err != nil {
		t.Fatal(err)
	}
	if got, want := dueOf(m, "c"), clk.now().Add(5*time.Second); got.IsZero() || got.After(want) {
		t.Fatalf("after delete: due %v, want no later than delete-delay at %v", got, want)
	}
	clk.add(5 * time.Second)
	m.Expire()
	if len(m.List(0)) != 0 {
		t.Fatalf("deleted call still listed after delete-delay")
	}
	if s := m.Statistics(); s.RegularTerminated != 1 {
		t.Errorf("regular terminated %d, want 1", s.RegularTerminated)
	}
}

// BenchmarkExpireIdle is one expiry tick with many calls none of which is
// due: it must not grow with the number of calls.
func BenchmarkExpireIdle(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("calls=%d", n), func(b *testing.B) {
			m, clk := newTestManager(&testing.T{}, func(c *Config) {
				c.OfferTimeout = time.Hour
				c.PortMin, c.PortMax = 40000, 49999
			})
			defer m.Close()
			sdp := []byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
			for i := range n {
				if _, err := m.Offer(Signal{CallID: fmt.Sprint(i), FromTag: "A", SDP: sdp}); err != nil {
					b.Fatal(err)
				}
			}
			clk.add(time.Second)
			b.ReportAllocs()
			for b.Loop() {
				m.Expire()
			}
		})
	}
}

// BenchmarkSetup is one call's offer, answer and delete through the session
// layer, with and without the media engine: what the control plane pays per
// call besides the wire codec. Ports are bound, attached and handed back
// (their closing runs on the media worker, not in the timed path).
func BenchmarkSetup(b *testing.B) {
	offer, err := os.ReadFile(filepath.Join("testdata", "sdp", "sip-trunk-offer.sdp"))
	if err != nil {
		b.Fatal(err)
	}
	answer, err := os.ReadFile(filepath.Join("testdata", "sdp", "freeswitch-answer.sdp"))
	if err != nil {
		b.Fatal(err)
	}
	for _, withMedia := range []bool{false, true} {
		b.Run(fmt.Sprintf("media=%v", withMedia), func(b *testing.B) {
			var eng *mplane.Engine
			if withMedia {
				var err error
				if eng, err = mplane.NewEngine(mplane.Config{Workers: 1}); err != nil {
					b.Fatal(err)
				}
				defer eng.Close()
			}
			m, err := NewManager(Config{
				Interfaces: []Interface{{Name: "internal", Local: netip.MustParseAddr("127.0.0.1")}},
				PortMin:    40000, PortMax: 49999, Timeout: time.Minute, SilentTimeout: time.Hour,
				OfferTimeout: time.Hour, TOS: 184, MaxSessions: -1,
				Media: mediaOrNil(eng),
			})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			zero := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := strconv.Itoa(i)
				if _, err := m.Offer(Signal{CallID: id, FromTag: "A", SDP: offer}); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Answer(Signal{CallID: id, FromTag: "A", ToTag: "B", SDP: answer}); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Delete(DeleteRequest{CallID: id, Options: Options{DeleteDelay: &zero}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func mediaOrNil(e *mplane.Engine) MediaPlane {
	if e == nil {
		return nil
	}
	return e
}
