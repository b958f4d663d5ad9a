// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package media

import (
	"net/netip"
	"sync/atomic"
)

// worker is a placeholder: the media plane needs epoll and recvmmsg, and
// NewEngine refuses to start without them.
type worker struct {
	e        *Engine
	load     atomic.Int64
	stopping atomic.Bool
	inject   injectQueue
	totals   struct{ packets, bytes, dropped atomic.Uint64 }
}

func newWorker(*Engine, int) (*worker, error) { return nil, ErrUnsupported }

func (w *worker) run()                                          {}
func (w *worker) stop()                                         {}
func (w *worker) discard()                                      {}
func (w *worker) kick()                                         {}
func (w *worker) watch(*Stream) error                           { return ErrUnsupported }
func (w *worker) unwatch(*Stream)                               {}
func (w *worker) closeLater(s *Stream)                          { s.closeSocket() }
func (w *worker) setTOSLater(*Stream)                           {}
func (w *worker) reply(*Stream, []byte, netip.AddrPort, uint32) {}
