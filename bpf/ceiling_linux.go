// SPDX-License-Identifier: Apache-2.0

//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/link"
)

// Ceiling is the bare rewrite-and-bounce XDP program: the relay program's
// per-packet rewrite (MACs, addresses, ports, TTL, checksums) with no map
// lookup and no checks, bounced with XDP_TX to where the packet came from.
// Benchmarks attach it to the relay's interface to measure what the machine
// can do at best; relayd never loads it.
type Ceiling struct {
	objs  bareObjects
	links []link.Link
}

// OpenCeiling loads the bare program.
func OpenCeiling() (*Ceiling, error) {
	c := &Ceiling{}
	if err := loadBareObjects(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("load the bare XDP program: %w", errors.Join(ErrUnavailable, err))
	}
	return c, nil
}

// Attach hooks the bounce program into ifindex (of the calling thread's
// network namespace).
func (c *Ceiling) Attach(ifindex int, mode Mode) error {
	flags := link.XDPDriverMode
	if mode == ModeGeneric {
		flags = link.XDPGenericMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: c.objs.BareBounce, Interface: ifindex, Flags: flags})
	if err != nil {
		return &AttachError{Ifindex: ifindex, Mode: mode, Err: err}
	}
	c.links = append(c.links, l)
	return nil
}

// Close detaches and unloads.
func (c *Ceiling) Close() error {
	var errs []error
	for _, l := range c.links {
		errs = append(errs, l.Close())
	}
	errs = append(errs, c.objs.Close())
	return errors.Join(errs...)
}
