// SPDX-License-Identifier: Apache-2.0

package media_test

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/relayd/relayd/pkg/media"
	"github.com/relayd/relayd/pkg/ports"
)

// Two relay sockets, one per party, cross-wired: what A sends to its socket
// leaves from B's socket towards B, and the other way round. The sockets come
// from a port pool and belong to the engine once attached: it closes them
// after Detach and gives their ports back.
func Example() {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			panic(err)
		}
		return c
	}
	addr := func(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }
	phoneA, phoneB := listen(), listen() // the parties
	defer phoneA.Close()
	defer phoneB.Close()

	eng, err := media.NewEngine(media.Config{Workers: 1})
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	pool, err := ports.NewPool(netip.MustParseAddr("127.0.0.1"), 41000, 41099)
	if err != nil {
		panic(err)
	}
	call := eng.NewGroup() // one call's streams share a worker
	relaySocket := func() *media.Stream {
		alloc, err := pool.Allocate(1) // the relay's port facing one party
		if err != nil {
			panic(err)
		}
		alloc.HandOver(0)
		sock := alloc.Sockets[0]
		s, err := eng.Attach(call, media.Socket{FD: sock.FD, Local: sock.Local}, alloc.SocketClosed)
		if err != nil {
			panic(err)
		}
		return s
	}
	toA, toB := relaySocket(), relaySocket()
	defer toA.Detach()
	defer toB.Detach()

	// What the offer and the answer said.
	toA.Configure(media.StreamConfig{Sink: toB, Peer: addr(phoneA)})
	toB.Configure(media.StreamConfig{Sink: toA, Peer: addr(phoneB)})

	if _, err := phoneA.WriteToUDPAddrPort([]byte("hello"), toA.LocalAddr()); err != nil {
		panic(err)
	}
	buf := make([]byte, 1500)
	_ = phoneB.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := phoneB.ReadFromUDPAddrPort(buf)
	if err != nil {
		panic(err)
	}
	fmt.Printf("B got %q from the relay: %v\n", buf[:n], from == toB.LocalAddr())
	st := toA.Stats()
	fmt.Printf("A: in %d packets, latched %v\n", st.In.Packets, st.Confirmed)
	// Output:
	// B got "hello" from the relay: true
	// A: in 1 packets, latched true
}
