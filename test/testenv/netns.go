// SPDX-License-Identifier: Apache-2.0

//go:build linux

package testenv

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InNetNS runs fn on the calling goroutine's thread switched into ns.
// Sockets created in fn stay in ns; kernel calls that resolve an ifindex
// (XDP attach, devmap updates, route lookups) see ns.
func InNetNS(t testing.TB, ns netns.NsHandle, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("current netns: %v", err)
	}
	if err := netns.Set(ns); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("enter netns: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// The thread stays locked, so the runtime discards it rather
			// than letting another goroutine run in the wrong namespace.
			t.Errorf("back to the original netns: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
	}()
	fn()
}

// NewNetNS creates an empty network namespace with loopback up, closed at
// cleanup (it goes away with its last reference: the handle and any
// sockets in it).
func NewNetNS(t testing.TB) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("current netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread is stuck in the new namespace: keep it locked, and
		// let it die with the goroutine.
		runtime.LockOSThread()
		t.Fatalf("back to the original netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("loopback up: %v", err)
	}
	return ns
}
