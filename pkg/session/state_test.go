// SPDX-License-Identifier: Apache-2.0

package session

import (
	"testing"
	"time"
)

// latchedRTP reports, per tag, whether the call's RTP socket facing that
// party has latched its source, as a snapshot saves it.
func latchedRTP(t *testing.T, m *Manager, id string) map[string]bool {
	t.Helper()
	cs, ok := m.Snapshot(id)
	if !ok {
		t.Fatalf("no state for call %s", id)
	}
	out := map[string]bool{}
	for _, ml := range cs.Monologues {
		for _, md := range ml.Medias {
			for _, set := range md.Sets {
				if len(set.Sockets) > 0 {
					out[ml.Tag] = set.Sockets[0].Latched
				}
			}
		}
	}
	return out
}

// A restored call's sockets come back as learning left them on both sides:
// configuring the second party's media must not restart the learning the
// first party's sockets had just resumed (with a fast path, an unlatched
// stream leaves the kernel and forwards in userspace until it latches
// again).
func TestRestoreResumesBothParties(t *testing.T) {
	m, _ := newMediaManager(t, nil)
	a, b := newParty(t, "127.0.0.1"), newParty(t, "127.0.0.1")
	setupCall(t, m, "both", a, b, Options{})
	toA, toB := relayPorts(t, m, "both")
	a.send(toA, 3)
	b.send(toB, 3)
	waitReceived(t, m, "both", 6)
	if got := latchedRTP(t, m, "both"); !got["A"] || !got["B"] {
		t.Fatalf("before the restart: latched %v, want both", got)
	}
	cs, _ := m.Snapshot("both")
	m.Close() // its media workers close the sockets soon after

	m2, _ := newMediaManager(t, nil)
	for deadline := time.Now().Add(2 * time.Second); ; {
		err := m2.Restore(cs)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := latchedRTP(t, m2, "both"); !got["A"] || !got["B"] {
		t.Errorf("after the restore: latched %v, want both", got)
	}
	// And media flows at once both ways, without a new learning window.
	a.recv(50*time.Millisecond, toA) // what the parties' sockets still hold from before
	b.recv(50*time.Millisecond, toB)
	a.send(toA, 5)
	if got := b.recv(500*time.Millisecond, toB); got != 5 {
		t.Errorf("B received %d of 5 after the restore", got)
	}
	b.send(toB, 5)
	if got := a.recv(500*time.Millisecond, toA); got != 5 {
		t.Errorf("A received %d of 5 after the restore", got)
	}
}
