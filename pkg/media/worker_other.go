// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package media

import (
	"sync/atomic"
	"syscall"
)

type opKind uint8

const (
	opAdd opKind = iota
	opDel
)

// worker is a placeholder: the media plane needs epoll and recvmmsg.
type worker struct {
	load atomic.Int64
}

func newWorker(*Engine, int) (*worker, error) { return nil, ErrUnsupported }

func (w *worker) run()                         {}
func (w *worker) stop()                        {}
func (w *worker) discard()                     {}
func (w *worker) submit(opKind, *Stream) error { return ErrUnsupported }

func socketIsIPv6(syscall.RawConn) (bool, error) { return false, ErrUnsupported }

func setTOS(syscall.RawConn, bool, int) error { return ErrUnsupported }
