// SPDX-License-Identifier: Apache-2.0

package statestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

func offerSDP(port int) []byte {
	return fmt.Appendf(nil, "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n", port)
}

// newManager is a signalling-only session manager on loopback ports
// [min, min+100).
func newManager(t *testing.T, portMin int, onChange func(string)) *session.Manager {
	t.Helper()
	m, err := session.NewManager(session.Config{
		Interfaces: []session.Interface{{Name: "default", Local: netip.MustParseAddr("127.0.0.1")}},
		PortMin:    portMin, PortMax: portMin + 100,
		Timeout: time.Minute, SilentTimeout: time.Hour, OfferTimeout: time.Hour, MaxSessions: -1,
		OnChange: onChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func call(t *testing.T, m *session.Manager, id string) {
	t.Helper()
	if _, err := m.Offer(session.Signal{CallID: id, FromTag: "a", SDP: offerSDP(4000)}); err != nil {
		t.Fatalf("offer %s: %v", id, err)
	}
	if _, err := m.Answer(session.Signal{CallID: id, FromTag: "a", ToTag: "b", SDP: offerSDP(5000)}); err != nil {
		t.Fatalf("answer %s: %v", id, err)
	}
}

func ids(t *testing.T, b Backend) []string {
	t.Helper()
	got, err := b.IDs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

// waitFor polls cond: the Writer runs on its own goroutine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDirRoundTrip(t *testing.T) {
	ctx := context.Background()
	d, err := OpenDir(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	odd := "weird/call id\x00with bytes" + string(make([]byte, 300))
	for _, id := range []string{"abc@host", odd} {
		if err := d.Put(ctx, id, []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := d.Put(ctx, id, []byte(`{"x":2}`)); err != nil {
			t.Fatal(err)
		}
		got, err := d.Get(ctx, id)
		if err != nil || string(got) != `{"x":2}` {
			t.Fatalf("Get(%q) = %s, %v", id, got, err)
		}
	}
	if got := ids(t, d); !slices.Equal(got, []string{"abc@host", odd}) {
		t.Fatalf("IDs = %q", got)
	}
	if err := d.Put(ctx, "line\nbreak", nil); err == nil {
		t.Error("a call-id with a line break was stored")
	}
	if err := d.Delete(ctx, "abc@host"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "abc@host"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, err := d.Get(ctx, "abc@host"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete: %v", err)
	}
	// A damaged file is named, the good ones still listed.
	if err := os.WriteFile(filepath.Join(d.path, "junk"+dirSuffix), []byte("no line"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := d.IDs(ctx)
	if err == nil || !slices.Equal(got, []string{odd}) {
		t.Fatalf("IDs with a damaged file = %q, %v", got, err)
	}
}

func TestOpenDirRefusesAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDir(f); err == nil {
		t.Fatal("OpenDir on a regular file succeeded")
	}
}

// A call is saved after its offer and answer, its record follows deletes,
// and a new manager restores it with its ports.
func TestWriterSavesAndRestores(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var w *Writer
	m := newManager(t, 41000, func(id string) { w.Changed(id) })
	w = NewWriter(WriterConfig{Backend: d, Source: m, Sweep: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	call(t, m, "one")
	call(t, m, "two")
	call(t, m, "gone")
	waitFor(t, "three calls saved", func() bool { return len(ids(t, d)) == 3 })
	if _, err := m.Delete(session.DeleteRequest{CallID: "gone", Options: session.Options{DeleteDelay: new(int)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted call's record removed", func() bool { return slices.Equal(ids(t, d), []string{"one", "two"}) })
	before, _ := m.Snapshot("one")

	cancel()
	<-done
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	// Three calls written (offer and answer may coalesce), two flushed.
	if st.Writes < 5 || st.Deletes < 1 || st.Failures != 0 || !st.Healthy || st.Pending != 0 {
		t.Errorf("stats = %+v", st)
	}
	// The old relay stops without ending its calls' records (it hands
	// over); its sockets go with it.
	m.Close()

	m2 := newManager(t, 41000, nil)
	defer m2.Close()
	res, err := Restore(context.Background(), d, m2, slog.New(slog.DiscardHandler))
	if err != nil || res.Restored != 2 || res.Failed != 0 {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	after, ok := m2.Snapshot("one")
	if !ok {
		t.Fatal("call one not restored")
	}
	if got, want := after.Monologues[0].Medias[0].Sets[0].Port, before.Monologues[0].Medias[0].Sets[0].Port; got != want {
		t.Errorf("restored port %d, want %d", got, want)
	}
	// Restoring again finds them present.
	if res, err := Restore(context.Background(), d, m2, slog.New(slog.DiscardHandler)); err != nil || res.Present != 2 {
		t.Errorf("second Restore = %+v, %v", res, err)
	}
}

// A record that cannot be used is removed and named; the others restore.
func TestRestoreDropsUnusableRecords(t *testing.T) {
	ctx := context.Background()
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := newManager(t, 41200, nil)
	call(t, m, "good")
	cs, _ := m.Snapshot("good")
	rec, _ := Encode(&cs)
	m.Close()
	old := cs
	old.CallID, old.Version = "future", cs.Version+1
	oldRec, _ := Encode(&old)
	for id, r := range map[string][]byte{"good": rec, "future": oldRec, "garbage": []byte("{")} {
		if err := d.Put(ctx, id, r); err != nil {
			t.Fatal(err)
		}
	}
	m2 := newManager(t, 41200, nil)
	defer m2.Close()
	res, err := Restore(ctx, d, m2, slog.New(slog.DiscardHandler))
	if err != nil || res.Restored != 1 || res.Failed != 2 {
		t.Fatalf("Restore = %+v, %v", res, err)
	}
	if got := ids(t, d); !slices.Equal(got, []string{"good"}) {
		t.Errorf("records left = %q, want only the restored call's", got)
	}
}

// With the directory gone bad, writes fail and are counted, nothing blocks,
// and everything is written once it is back.
func TestWriterRetriesAFailingStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var w *Writer
	m := newManager(t, 41400, func(id string) { w.Changed(id) })
	defer m.Close()
	w = NewWriter(WriterConfig{Backend: d, Source: m, Sweep: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	// The writer stops before the temporary directory goes.
	defer func() { cancel(); <-done }()

	// The store's directory replaced by a file: every write fails.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 20 {
		call(t, m, fmt.Sprint("c", i))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("signalling took %v with the store failing", took)
	}
	waitFor(t, "failures counted", func() bool { st := w.Stats(); return st.Failures > 0 && !st.Healthy })
	if st := w.Stats(); st.Pending == 0 {
		t.Errorf("nothing pending while the store fails: %+v", st)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all calls written after recovery", func() bool { return len(ids(t, d)) == 20 && w.Stats().Healthy })
}

// The sweep writes what the media plane changed and nothing else.
func TestDigestIgnoresCounters(t *testing.T) {
	m := newManager(t, 41600, nil)
	defer m.Close()
	call(t, m, "c")
	cs, _ := m.Snapshot("c")
	d0 := Digest(&cs)
	sock := &cs.Monologues[0].Medias[0].Sets[0].Sockets[0]
	sock.Counters.InPackets += 100
	if Digest(&cs) != d0 {
		t.Error("a packet counter changed the digest")
	}
	sock.Src = netip.MustParseAddrPort("198.51.100.7:4000")
	sock.Latched = true
	if Digest(&cs) == d0 {
		t.Error("a latched source did not change the digest")
	}
	// A DTLS handshake that ended after the answer: its keys are news.
	d1 := Digest(&cs)
	cs.Monologues[0].Medias[0].Security = &session.SecurityState{
		DTLSLocal:  &session.KeysJSON{Suite: "AES_CM_128_HMAC_SHA1_80", Key: make([]byte, 16), Salt: make([]byte, 14)},
		DTLSRemote: &session.KeysJSON{Suite: "AES_CM_128_HMAC_SHA1_80", Key: make([]byte, 16), Salt: make([]byte, 14)},
	}
	if Digest(&cs) == d1 {
		t.Error("DTLS keys did not change the digest")
	}
}
