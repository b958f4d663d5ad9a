// SPDX-License-Identifier: Apache-2.0

//go:build linux

package fastpath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/relayd/relayd/bpf"
)

const (
	// notifyBuffer is each notification socket's receive buffer: room for
	// a burst (a neighbour table's worth of changes after a link flap)
	// while the refresh goroutine is busy with a re-check.
	notifyBuffer = 4 << 20
	// notifyQueue is the depth of the channels between netlink's reader
	// goroutines and the refresh goroutine.
	notifyQueue = 256
	// pendingRoutesMax bounds the route prefixes gathered before one
	// round of lookups; beyond it every destination is looked up.
	pendingRoutesMax = 64
	// resubscribeMax caps the wait between attempts to get notifications
	// back (each attempt re-reads everything).
	resubscribeMax = 30 * time.Second
	// dumpAttempts bounds retries of a dump the kernel interrupted
	// (the table changed while it was read).
	dumpAttempts = 3
)

// usableNeigh are the neighbour states whose MAC the kernel itself sends
// to, the same as bpf.ResolveNextHop accepts.
const usableNeigh = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// watcher asks the kernel about routes, interfaces and neighbours, and
// subscribes to their changes, in the network namespace the FastPath was
// opened in: its sockets are made there, so the refresh goroutine may run
// on any thread.
type watcher struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

var _ kernel = (*watcher)(nil)

// newWatcher binds to the calling thread's network namespace.
func newWatcher() (*watcher, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("current network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &watcher{ns: ns, h: h}, nil
}

func (w *watcher) close() {
	w.h.Close()
	w.ns.Close()
}

func (w *watcher) routeTo(dst netip.Addr) (route, error) {
	routes, err := w.h.RouteGet(net.IP(dst.AsSlice()))
	if err != nil {
		return route{}, fmt.Errorf("route to %v: %w: %w", dst, bpf.ErrNoRoute, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex <= 0 {
		return route{}, fmt.Errorf("route to %v: %w", dst, bpf.ErrNoRoute)
	}
	rt := routes[0]
	switch rt.Type {
	case syscall.RTN_UNICAST:
	case syscall.RTN_LOCAL:
		return route{}, fmt.Errorf("route to %v: local address: %w", dst, bpf.ErrUnsupportedLink)
	default:
		return route{}, fmt.Errorf("route to %v: route type %d: %w", dst, rt.Type, bpf.ErrNoRoute)
	}
	via := dst
	if gw, ok := netip.AddrFromSlice(rt.Gw); ok && !gw.IsUnspecified() {
		via = gw.Unmap()
	}
	return route{ifindex: rt.LinkIndex, via: via}, nil
}

func (w *watcher) links() ([]linkInfo, error) {
	var (
		ls  []netlink.Link
		err error
	)
	for range dumpAttempts {
		if ls, err = w.h.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]linkInfo, len(ls))
	for i, l := range ls {
		out[i] = linkOf(l)
	}
	return out, nil
}

func (w *watcher) neighbours() (map[neighKey]net.HardwareAddr, error) {
	out := map[neighKey]net.HardwareAddr{}
	// Per family: an AF_UNSPEC dump would bring every bridge's FDB too.
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var (
			ns  []netlink.Neigh
			err error
		)
		for range dumpAttempts {
			if ns, err = w.h.NeighList(0, family); !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if k, mac, ok := neighOf(n, true); ok && mac != nil {
				out[k] = mac
			}
		}
	}
	return out, nil
}

func linkOf(l netlink.Link) linkInfo {
	a := l.Attrs()
	return linkInfo{ifindex: a.Index, name: a.Name, encap: a.EncapType, mac: a.HardwareAddr}
}

// neighOf keys a neighbour entry and gives its MAC, nil when the kernel
// would not send to it (gone, failed, incomplete). ok is false for entries
// that never address a next hop: proxy entries, other families (bridge
// FDB).
func neighOf(n netlink.Neigh, present bool) (neighKey, net.HardwareAddr, bool) {
	if (n.Family != netlink.FAMILY_V4 && n.Family != netlink.FAMILY_V6) || n.Flags&netlink.NTF_PROXY != 0 {
		return neighKey{}, nil, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return neighKey{}, nil, false
	}
	k := neighKey{ifindex: n.LinkIndex, ip: ip.Unmap()}
	if !present || n.State&usableNeigh == 0 || len(n.HardwareAddr) != 6 {
		return k, nil, true
	}
	return k, n.HardwareAddr, true
}

// routePrefix is the destination prefix of a changed route (a default
// route's is the whole family); ok is false for other families (MPLS).
func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	var zero netip.Addr
	switch r.Family {
	case netlink.FAMILY_V4:
		zero = netip.IPv4Unspecified()
	case netlink.FAMILY_V6:
		zero = netip.IPv6Unspecified()
	default:
		return netip.Prefix{}, false
	}
	if r.Dst == nil {
		return netip.PrefixFrom(zero, 0), true
	}
	ip, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok {
		return netip.PrefixFrom(zero, 0), true
	}
	ones, _ := r.Dst.Mask.Size()
	p, err := ip.Unmap().Prefix(ones)
	if err != nil {
		return netip.PrefixFrom(zero, 0), true
	}
	return p, true
}

// subscription is one set of route, neighbour and interface notification
// sockets. Losing one (netlink ends a subscription whose receive buffer
// overflowed) means replacing them all and re-reading everything.
type subscription struct {
	done   chan struct{}
	routes chan netlink.RouteUpdate
	neighs chan netlink.NeighUpdate
	links  chan netlink.LinkUpdate
	errs   chan error // netlink's error callback: a notification may be lost
	drains []func()
}

func (w *watcher) subscribe() (*subscription, error) {
	s := &subscription{
		done:   make(chan struct{}),
		routes: make(chan netlink.RouteUpdate, notifyQueue),
		neighs: make(chan netlink.NeighUpdate, notifyQueue),
		links:  make(chan netlink.LinkUpdate, notifyQueue),
		errs:   make(chan error, 1),
	}
	// Called on netlink's reader goroutines: it must never block, and the
	// errors of closing the sockets are no news.
	onErr := func(err error) {
		select {
		case <-s.done:
			return
		default:
		}
		select {
		case s.errs <- err:
		default:
		}
	}
	ns := w.ns
	err := netlink.RouteSubscribeWithOptions(s.routes, s.done, netlink.RouteSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: notifyBuffer, ReceiveBufferForceSize: true})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to route changes: %w", err)
	}
	s.drains = append(s.drains, func() { drain(s.routes) })
	err = netlink.NeighSubscribeWithOptions(s.neighs, s.done, netlink.NeighSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: notifyBuffer, ReceiveBufferForceSize: true})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to neighbour changes: %w", err)
	}
	s.drains = append(s.drains, func() { drain(s.neighs) })
	err = netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{
		Namespace: &ns, ErrorCallback: onErr, ReceiveBufferSize: notifyBuffer, ReceiveBufferForceSize: true})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("subscribe to interface changes: %w", err)
	}
	s.drains = append(s.drains, func() { drain(s.links) })
	return s, nil
}

// close ends the subscription and returns once netlink's reader goroutines
// have: each closes its channel when its socket is closed, after
// delivering what it holds, so the channels are read until then.
func (s *subscription) close() {
	close(s.done)
	for _, d := range s.drains {
		d()
	}
}

func drain[T any](ch <-chan T) {
	for range ch {
	}
}

// lastErr is the error netlink reported, if any.
func (s *subscription) lastErr() error {
	select {
	case err := <-s.errs:
		return err
	default:
		return errors.New("notification channel closed")
	}
}

// startRefresh binds to the calling thread's network namespace, subscribes
// to changes, reads the current state (after subscribing, so no change
// falls in between) and starts the goroutine that applies changes.
func (f *FastPath) startRefresh() error {
	w, err := newWatcher()
	if err != nil {
		return err
	}
	s, err := w.subscribe()
	if err != nil {
		w.close()
		return err
	}
	f.hops = newHopTable(w)
	if err := f.resync("start"); err != nil {
		s.close()
		w.close()
		return err
	}
	f.done = make(chan struct{})
	go f.refresh(w, s)
	return nil
}

// refresh applies route, neighbour and interface changes to the rules as
// they are notified, re-checks every destination every recheckEvery, and
// re-subscribes (re-reading everything) when notifications are lost. It
// runs until Close and leaves no goroutine or socket behind.
func (f *FastPath) refresh(w *watcher, s *subscription) {
	defer close(f.done)
	defer w.close()
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	settle := time.NewTimer(routeSettle)
	settle.Stop()
	defer settle.Stop()
	resubscribe := time.NewTimer(0)
	resubscribe.Stop()
	defer resubscribe.Stop()
	backoff := time.Second
	var pending []netip.Prefix

	resync := func(cause string) {
		if err := f.resync(cause); err != nil {
			f.log.Warn("re-read routes and neighbours", "cause", cause, "error", err)
		}
	}
	lost := func() {
		f.log.Warn("route and neighbour notifications lost; re-subscribing and re-reading them", "error", s.lastErr())
		s.close()
		s = nil
		resubscribe.Reset(0)
	}
	for {
		var (
			routes <-chan netlink.RouteUpdate
			neighs <-chan netlink.NeighUpdate
			links  <-chan netlink.LinkUpdate
			errs   <-chan error
		)
		if s != nil {
			routes, neighs, links, errs = s.routes, s.neighs, s.links, s.errs
		}
		select {
		case <-f.stop:
			return
		case u, ok := <-routes:
			if !ok {
				lost()
				continue
			}
			p, ok := routePrefix(u.Route)
			if !ok {
				continue
			}
			if len(pending) == 0 {
				settle.Reset(routeSettle)
			}
			if len(pending) < pendingRoutesMax {
				pending = append(pending, p)
			} else {
				pending = []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.PrefixFrom(netip.IPv6Unspecified(), 0)}
			}
		case <-settle.C:
			f.reroute(pending)
			pending = nil
		case u, ok := <-neighs:
			if !ok {
				lost()
				continue
			}
			// RTM_GETNEIGH asks a resolver daemon for help: no change.
			if u.Type != syscall.RTM_NEWNEIGH && u.Type != syscall.RTM_DELNEIGH {
				continue
			}
			if k, mac, ok := neighOf(u.Neigh, u.Type == syscall.RTM_NEWNEIGH); ok {
				f.neighChanged(k, mac)
			}
		case u, ok := <-links:
			if !ok {
				lost()
				continue
			}
			f.linkChanged(linkOf(u.Link), u.Header.Type == syscall.RTM_DELLINK)
		case err := <-errs:
			// A notification may have been dropped. Had the socket failed
			// for good, its channel closes next and all are replaced.
			f.log.Warn("route and neighbour notifications failed; re-reading them", "error", err)
			resync("notification error")
		case <-recheck.C:
			resync("re-check")
		case <-resubscribe.C:
			var err error
			if s, err = w.subscribe(); err != nil {
				f.log.Warn("subscribe to route and neighbour changes", "retry in", backoff, "error", err)
				resubscribe.Reset(backoff)
				backoff = min(2*backoff, resubscribeMax)
				// Meanwhile nothing reports changes: poll at that pace.
				resync("no notifications")
				continue
			}
			backoff = time.Second
			pending = nil
			settle.Stop()
			resync("re-subscribed")
		}
	}
}
