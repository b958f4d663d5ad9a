// SPDX-License-Identifier: Apache-2.0

//go:build linux

package testenv

import (
	"runtime"
	"testing"

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
