// SPDX-License-Identifier: Apache-2.0

// Package ngceiling is the control plane's ceiling: an ng responder that
// allocates nothing and rewrites nothing. It answers ping, offer, answer
// and delete as a relay would, on one blocking thread pinned to the
// relay's CPUs, so the setups per second it sustains are what the load
// generator and the kernel's round trip allow on this rig: no relay can
// be measured faster than it.
package ngceiling

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/metrics"
	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/pkg/ngproto"
)

// Responder is a running ceiling responder.
type Responder struct {
	fd   int
	tid  atomic.Int32
	stop atomic.Bool
	done chan struct{}
	err  error
}

// Start binds addr inside the network namespace at nsPath ("" for the
// current one) and answers on a thread pinned to cpus (none: unpinned).
func Start(nsPath string, addr netip.AddrPort, cpus []int) (*Responder, error) {
	if !addr.Addr().Is4() {
		return nil, fmt.Errorf("ng ceiling: %v is not IPv4", addr)
	}
	var fd int
	err := netns.Do(nsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
	})
	if err != nil {
		if fd > 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("ng ceiling on %v: %w", addr, err)
	}
	// The receive timeout lets Stop end the loop without closing a socket
	// a blocked recvfrom still uses.
	tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ng ceiling receive timeout: %w", err)
	}
	r := &Responder{fd: fd, done: make(chan struct{})}
	started := make(chan error, 1)
	go r.serve(cpus, started)
	if err := <-started; err != nil {
		<-r.done
		unix.Close(fd)
		return nil, err
	}
	return r, nil
}

// serve runs on a thread of its own for good: it is pinned, and the
// runtime discards a thread its goroutine leaves locked.
func (r *Responder) serve(cpus []int, started chan<- error) {
	defer close(r.done)
	runtime.LockOSThread()
	if len(cpus) > 0 {
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			started <- fmt.Errorf("ng ceiling: pin to CPUs %v: %w", cpus, err)
			return
		}
	}
	r.tid.Store(int32(unix.Gettid()))
	started <- nil
	buf := make([]byte, 65536)
	out := make([]byte, 0, 65536)
	for !r.stop.Load() {
		n, from, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			r.err = fmt.Errorf("ng ceiling receive: %w", err)
			return
		}
		out = Reply(out[:0], buf[:n])
		if out != nil {
			_ = unix.Sendto(r.fd, out, 0, from)
		}
	}
}

// Reply appends the answer to one ng datagram to dst: pong to ping, the
// offered SDP unchanged to offer and answer, ok to delete, an error to
// anything else; nil for a datagram without a cookie.
func Reply(dst, datagram []byte) []byte {
	cookie, body, err := ngproto.SplitMessage(datagram)
	if err != nil {
		return nil
	}
	dst = append(append(dst, cookie...), ' ')
	req, _, err := ngproto.Decode(body)
	if err != nil {
		return append(dst, "d6:result5:error12:error-reason9:malformede"...)
	}
	command, _ := req["command"].(string)
	switch command {
	case "ping":
		return append(dst, "d6:result4:ponge"...)
	case "offer", "answer":
		sdp, _ := req["sdp"].(string)
		dst = append(dst, "d3:sdp"...)
		dst = strconv.AppendInt(dst, int64(len(sdp)), 10)
		dst = append(append(dst, ':'), sdp...)
		return append(dst, "6:result2:oke"...)
	case "delete":
		return append(dst, "d6:result2:oke"...)
	}
	return append(dst, "d6:result5:error12:error-reason15:unknown commande"...)
}

// Addr is the address the responder answers on (the bound port when Start
// was given port 0).
func (r *Responder) Addr() (netip.AddrPort, error) {
	sa, err := unix.Getsockname(r.fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("ng ceiling: socket name %T", sa)
	}
	return netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)), nil
}

// CPU is the responder thread's CPU time so far.
func (r *Responder) CPU() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", r.tid.Load()))
	if err != nil {
		return 0, err
	}
	t, err := metrics.ParsePIDStat(data)
	if err != nil {
		return 0, err
	}
	return time.Duration(t.Total()) * metrics.Tick, nil
}

// Stop ends the responder and closes its socket; it returns the error
// that stopped it early, if any.
func (r *Responder) Stop() error {
	r.stop.Store(true)
	<-r.done
	unix.Close(r.fd)
	return r.err
}
