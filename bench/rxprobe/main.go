// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Command rxprobe measures what the receive side of the userspace media loop
// costs per packet on this machine, with UDP sockets (what relayd uses) and
// with an AF_XDP socket fed by an XDP program (the route issue 9 names for
// streams that need userspace), so that the choice between them rests on a
// figure. It is a measuring probe, not a relay: both modes forward every
// datagram unchanged to one sink through a raw socket in one sendmmsg per
// batch (relayd's send path), so the two differ only in how packets reach
// the loop.
//
// It runs as root and builds its own rig: namespaces rxp-gen (10.77.0.1,
// generator and sink, CPU 0) and rxp-rel (10.77.0.2, the probe, CPU 1)
// joined by a veth pair whose NAPI runs threaded, pinned to each side's CPU,
// as bench/ does. The relay CPU's busy time (process, NAPI thread, softirq)
// is divided by the packets delivered to the sink.
//
//	go run ./bench/rxprobe --streams 600 --pps 30000 --seconds 10 --reps 3
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/relayd/relayd/bench/internal/netns"
	"github.com/relayd/relayd/bench/internal/topo"
	"github.com/relayd/relayd/pkg/inetsum"
)

const (
	genNS, relNS   = "rxp-gen", "rxp-rel"
	genIP, relIP   = "10.77.0.1", "10.77.0.2"
	basePort       = 40000
	sinkPort       = 9000
	payloadLen     = 172 // RTP header + 160 bytes of G.711
	batch          = 64
	frameSize      = 2048
	frames         = 4096
	ringSize       = 2048
	ethLen, ipLen  = 14, 20
	udpLen         = 8
	relayCPU       = 1
	generatorCPU   = 0
	settleDuration = 500 * time.Millisecond
)

func main() {
	role := flag.String("role", "", "internal: gen, udp or xsk (run inside the rig)")
	streams := flag.Int("streams", 600, "relay ports (two per call)")
	pps := flag.Int("pps", 30000, "packets per second offered in all")
	seconds := flag.Float64("seconds", 10, "length of each measured window")
	reps := flag.Int("reps", 3, "repetitions of each mode, alternating")
	flag.Parse()
	var err error
	switch *role {
	case "":
		err = drive(*streams, *pps, *seconds, *reps)
	case "gen":
		err = generate(*streams, *pps, *seconds)
	case "udp":
		err = relayUDP(*streams)
	case "xsk":
		err = relayXSK(*streams)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rxprobe:", err)
		os.Exit(1)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func setup() error {
	teardown()
	steps := [][]string{
		{"ip", "netns", "add", genNS}, {"ip", "netns", "add", relNS},
		{"ip", "link", "add", "g0", "netns", genNS, "type", "veth", "peer", "name", "r0", "netns", relNS},
		{"ip", "-n", genNS, "addr", "add", genIP + "/24", "dev", "g0"},
		{"ip", "-n", relNS, "addr", "add", relIP + "/24", "dev", "r0"},
		{"ip", "-n", genNS, "link", "set", "g0", "up"}, {"ip", "-n", relNS, "link", "set", "r0", "up"},
		{"ip", "-n", genNS, "link", "set", "lo", "up"}, {"ip", "-n", relNS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return err
		}
	}
	// As bench/ sets its veths up: GRO on (a veth's NAPI only runs, and
	// threads, with it) and TX checksum offload off (so each side's receive
	// work runs in its peer's NAPI thread, not on the sender's CPU).
	off, on := false, true
	for _, d := range []struct{ ns, dev string }{{genNS, "g0"}, {relNS, "r0"}} {
		if err := topo.SetOffloads(netns.Path(d.ns), d.dev, &off, &on); err != nil {
			return fmt.Errorf("offloads on %s: %w", d.dev, err)
		}
		if err := sh("ip", "netns", "exec", d.ns, "sh", "-c", "echo 1 > /sys/class/net/"+d.dev+"/threaded"); err != nil {
			return err
		}
	}
	// Pin each side's NAPI threads to its CPU.
	out, err := exec.Command("pgrep", "-f", "napi/").Output()
	if err != nil {
		return fmt.Errorf("find NAPI threads: %w", err)
	}
	for _, pid := range strings.Fields(string(out)) {
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		c := strings.TrimSpace(string(comm))
		switch {
		case strings.HasPrefix(c, "napi/g0"):
			_ = sh("taskset", "-p", "-c", strconv.Itoa(generatorCPU), pid)
		case strings.HasPrefix(c, "napi/r0"):
			_ = sh("taskset", "-p", "-c", strconv.Itoa(relayCPU), pid)
		}
	}
	return nil
}

func teardown() {
	_ = exec.Command("ip", "netns", "del", genNS).Run()
	_ = exec.Command("ip", "netns", "del", relNS).Run()
}

// cpuBusy is the busy jiffies of one CPU (everything but idle and iowait).
func cpuBusy(cpu int) (uint64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	prefix := "cpu" + strconv.Itoa(cpu) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		var busy uint64
		for i, v := range f[1:] {
			if i == 3 || i == 4 { // idle, iowait
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			busy += n
		}
		return busy, nil
	}
	return 0, fmt.Errorf("no %s in /proc/stat", prefix)
}

func drive(streams, pps int, seconds float64, reps int) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: it creates network namespaces and attaches XDP")
	}
	if err := setup(); err != nil {
		return err
	}
	defer teardown()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	common := []string{"--streams", strconv.Itoa(streams), "--pps", strconv.Itoa(pps),
		"--seconds", strconv.FormatFloat(seconds, 'f', -1, 64)}
	results := map[string][]float64{}
	hz := 100.0 // USER_HZ
	fmt.Printf("rxprobe: %d streams, %d pps offered, %.0f s windows, %d repetitions\n", streams, pps, seconds, reps)
	for r := 0; r < reps; r++ {
		for _, mode := range []string{"udp", "xsk"} {
			relay := exec.Command("ip", append([]string{"netns", "exec", relNS, "taskset", "-c", strconv.Itoa(relayCPU),
				self, "--role", mode}, common...)...)
			relay.Stderr = os.Stderr
			if err := relay.Start(); err != nil {
				return err
			}
			time.Sleep(settleDuration)
			b0, _ := cpuBusy(relayCPU)
			gen := exec.Command("ip", append([]string{"netns", "exec", genNS, "taskset", "-c", strconv.Itoa(generatorCPU),
				self, "--role", "gen"}, common...)...)
			gen.Stderr = os.Stderr
			out, err := gen.Output()
			b1, _ := cpuBusy(relayCPU)
			_ = relay.Process.Signal(os.Interrupt)
			_ = relay.Wait()
			if err != nil {
				return fmt.Errorf("generator: %w", err)
			}
			var sent, got uint64
			var elapsed float64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%d %d %f", &sent, &got, &elapsed); err != nil {
				return fmt.Errorf("generator said %q: %w", out, err)
			}
			busy := float64(b1-b0) / hz
			nsPerPkt := busy * 1e9 / float64(got)
			results[mode] = append(results[mode], nsPerPkt)
			fmt.Printf("  %-3s rep %d: sent %d, delivered %d (%.2f %% lost), relay CPU %.0f %%, %.0f ns per packet\n",
				mode, r+1, sent, got, 100*float64(sent-min(sent, got))/float64(sent), 100*busy/elapsed, nsPerPkt)
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	u, x := med(results["udp"]), med(results["xsk"])
	fmt.Printf("median relay CPU per packet: UDP sockets %.0f ns, AF_XDP %.0f ns: AF_XDP needs %.2f× less\n", u, x, u/x)
	return nil
}

// generate sends pps datagrams a second round-robin over the relay's ports
// for the window, counts what reaches the sink, and prints sent, received
// and the window's length.
func generate(streams, pps int, seconds float64) error {
	runtime.LockOSThread()
	sink, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(sink, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(sink, &unix.SockaddrInet4{Port: sinkPort}); err != nil {
		return err
	}
	out, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	_ = unix.SetsockoptInt(out, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	var got atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		hdrs, _ := receiveBatch()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(sink), uintptr(unsafe.Pointer(&hdrs[0])), batch,
				unix.MSG_DONTWAIT, 0, 0)
			if e != 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			got.Add(uint64(r))
		}
	}()
	rel := netip.MustParseAddr(relIP).As4()
	names := make([][16]byte, streams)
	for i := range names {
		binary.NativeEndian.PutUint16(names[i][0:], unix.AF_INET)
		binary.BigEndian.PutUint16(names[i][2:], uint16(basePort+i))
		copy(names[i][4:8], rel[:])
	}
	payload := make([]byte, payloadLen)
	payload[0] = 0x80
	hdrs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	for i := range hdrs {
		iovs[i].Base = &payload[0]
		iovs[i].SetLen(payloadLen)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
		hdrs[i].Hdr.Namelen = 16
	}
	const tick = time.Millisecond
	total := int(float64(pps) * seconds)
	start := time.Now()
	sent, next := 0, 0
	for sent < total {
		due := int(float64(pps) * time.Since(start).Seconds())
		if due > total {
			due = total
		}
		for sent < due {
			n := min(batch, due-sent)
			for i := 0; i < n; i++ {
				hdrs[i].Hdr.Name = &names[next][0]
				next = (next + 1) % streams
			}
			r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(out), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n),
				unix.MSG_DONTWAIT, 0, 0)
			if e != 0 {
				break
			}
			sent += int(r)
		}
		time.Sleep(tick)
	}
	elapsed := time.Since(start).Seconds()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	fmt.Printf("%d %d %f\n", sent, got.Load(), elapsed)
	return nil
}

// receiveBatch is a recvmmsg batch of frameSize slots in one buffer.
func receiveBatch() ([]unix.Mmsghdr, []byte) {
	hdrs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	buf := make([]byte, batch*frameSize)
	for i := range hdrs {
		iovs[i].Base = &buf[i*frameSize]
		iovs[i].SetLen(frameSize)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	return hdrs, buf
}

// forwarder sends batches to the sink through a raw socket, with the
// headers relayd's raw send path writes.
type forwarder struct {
	fd    int
	hdrs  []unix.Mmsghdr
	iovs  [][2]unix.Iovec
	heads [][ipLen + udpLen]byte
	name  [16]byte
	src   [4]byte
	dst   [4]byte
	n     int
	id    uint16
}

func newForwarder() (*forwarder, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	f := &forwarder{fd: fd, hdrs: make([]unix.Mmsghdr, batch), iovs: make([][2]unix.Iovec, batch),
		heads: make([][ipLen + udpLen]byte, batch)}
	binary.NativeEndian.PutUint16(f.name[0:], unix.AF_INET)
	f.src, f.dst = netip.MustParseAddr(relIP).As4(), netip.MustParseAddr(genIP).As4()
	copy(f.name[4:8], f.dst[:])
	for i := range f.hdrs {
		f.iovs[i][0].Base = &f.heads[i][0]
		f.iovs[i][0].SetLen(ipLen + udpLen)
		f.hdrs[i].Hdr.Name = &f.name[0]
		f.hdrs[i].Hdr.Namelen = 16
		f.hdrs[i].Hdr.Iov = &f.iovs[i][0]
		f.hdrs[i].Hdr.SetIovlen(2)
	}
	return f, nil
}

func (f *forwarder) put(srcPort uint16, payload []byte) {
	if f.n == batch {
		f.flush()
	}
	h := &f.heads[f.n]
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:], uint16(ipLen+udpLen+len(payload)))
	f.id++
	binary.BigEndian.PutUint16(h[4:], f.id|1)
	binary.BigEndian.PutUint16(h[6:], 0x4000)
	h[8], h[9], h[10], h[11] = 64, unix.IPPROTO_UDP, 0, 0
	copy(h[12:16], f.src[:])
	copy(h[16:20], f.dst[:])
	binary.BigEndian.PutUint16(h[10:], inetsum.Checksum(inetsum.Add(h[:ipLen], 0)))
	binary.BigEndian.PutUint16(h[20:], srcPort)
	binary.BigEndian.PutUint16(h[22:], sinkPort)
	binary.BigEndian.PutUint16(h[24:], uint16(udpLen+len(payload)))
	h[26], h[27] = 0, 0
	s := inetsum.Add(h[12:20], uint64(unix.IPPROTO_UDP)+uint64(udpLen+len(payload)))
	binary.BigEndian.PutUint16(h[26:], inetsum.UDP(inetsum.Add(payload, inetsum.Add(h[20:28], s))))
	f.iovs[f.n][1].Base = unsafe.SliceData(payload)
	f.iovs[f.n][1].SetLen(len(payload))
	f.n++
}

func (f *forwarder) flush() {
	for i := 0; i < f.n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(f.fd), uintptr(unsafe.Pointer(&f.hdrs[i])), uintptr(f.n-i),
			unix.MSG_DONTWAIT, 0, 0)
		if e != 0 {
			break
		}
		i += int(r)
	}
	f.n = 0
}

func bindPorts(streams int) ([]int, error) {
	rel := netip.MustParseAddr(relIP).As4()
	fds := make([]int, streams)
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return nil, err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: rel, Port: basePort + i}); err != nil {
			return nil, err
		}
		fds[i] = fd
	}
	return fds, nil
}

func stopOnSignal() *atomic.Bool {
	var stop atomic.Bool
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, unix.SIGTERM)
	go func() { <-ch; stop.Store(true) }()
	return &stop
}

// relayUDP is relayd's receive side without the Go runtime's netpoller:
// every port a socket in one edge-triggered epoll set, drained with recvmmsg.
func relayUDP(streams int) error {
	runtime.LockOSThread()
	stop := stopOnSignal()
	fds, err := bindPorts(streams)
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(0)
	if err != nil {
		return err
	}
	for i, fd := range fds {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return err
		}
	}
	f, err := newForwarder()
	if err != nil {
		return err
	}
	events := make([]unix.EpollEvent, 128)
	hdrs, buf := receiveBatch()
	used := 0
	for !stop.Load() {
		n, err := unix.EpollWait(ep, events, 100)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		for i := 0; i < n; i++ {
			idx := int(events[i].Fd)
			for {
				if used == batch {
					f.flush()
					used = 0
				}
				free := batch - used
				r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fds[idx]), uintptr(unsafe.Pointer(&hdrs[used])),
					uintptr(free), unix.MSG_DONTWAIT, 0, 0)
				if e != 0 || r == 0 {
					break
				}
				for k := used; k < used+int(r); k++ {
					f.put(uint16(basePort+idx), buf[k*frameSize:k*frameSize+int(hdrs[k].Len)])
				}
				used += int(r)
				if int(r) < free {
					break
				}
			}
		}
		f.flush()
		used = 0
	}
	return nil
}

// xdpProgram redirects UDP to the probe's ports into the XSK of the
// receive queue; everything else (ARP, other traffic) goes to the stack.
func xdpProgram(xsks *ebpf.Map, streams int) (*ebpf.Program, error) {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, ethLen+ipLen+udpLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half), // ethertype, network order
		asm.JNE.Imm(asm.R5, 0x0008, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen+9, asm.Byte),
		asm.JNE.Imm(asm.R5, unix.IPPROTO_UDP, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethLen+ipLen+2, asm.Half),
		asm.HostTo(asm.BE, asm.R5, asm.Half),
		asm.JLT.Imm(asm.R5, basePort, "pass"),
		asm.JGE.Imm(asm.R5, int32(basePort+streams), "pass"),
		asm.LoadMem(asm.R2, asm.R6, 16, asm.Word), // rx_queue_index
		asm.LoadMapPtr(asm.R1, xsks.FD()),
		asm.Mov.Imm(asm.R3, 2), // XDP_PASS when the queue has no socket
		asm.FnRedirectMap.Call(),
		asm.Return(),
		asm.Mov.Imm(asm.R0, 2).WithSymbol("pass"),
		asm.Return(),
	}
	return ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "Apache-2.0", Instructions: insns})
}

type ring struct {
	prod, cons *uint32
	flags      *uint32
	desc       unsafe.Pointer
	mask       uint32
}

func mapRing(fd int, off unix.XDPRingOffset, pgoff int64, entrySize, n int) (ring, error) {
	size := int(off.Desc) + entrySize*n
	b, err := unix.Mmap(fd, pgoff, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring{}, fmt.Errorf("mmap ring at %#x: %w", pgoff, err)
	}
	base := unsafe.Pointer(&b[0])
	return ring{
		prod:  (*uint32)(unsafe.Add(base, off.Producer)),
		cons:  (*uint32)(unsafe.Add(base, off.Consumer)),
		flags: (*uint32)(unsafe.Add(base, off.Flags)),
		desc:  unsafe.Add(base, off.Desc),
		mask:  uint32(n - 1),
	}, nil
}

// relayXSK receives through an AF_XDP socket (copy mode, as veth and
// generic XDP need) and forwards like relayUDP. The ports stay bound so
// that nothing else takes them, but no datagram reaches those sockets.
func relayXSK(streams int) error {
	runtime.LockOSThread()
	stop := stopOnSignal()
	if _, err := bindPorts(streams); err != nil {
		return err
	}
	r0, err := net.InterfaceByName("r0")
	if err != nil {
		return err
	}
	ifc := r0.Index
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW, 0)
	if err != nil {
		return fmt.Errorf("AF_XDP socket: %w", err)
	}
	umem, err := unix.Mmap(-1, 0, frames*frameSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return err
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&umem[0]))), Len: uint64(len(umem)), Size: frameSize}
	if err := setsockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return fmt.Errorf("XDP_UMEM_REG: %w", err)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, ringSize); err != nil {
			return fmt.Errorf("ring size %d: %w", opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	l := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return fmt.Errorf("XDP_MMAP_OFFSETS: %w", e)
	}
	fill, err := mapRing(fd, off.Fr, unix.XDP_UMEM_PGOFF_FILL_RING, 8, ringSize)
	if err != nil {
		return err
	}
	rx, err := mapRing(fd, off.Rx, unix.XDP_PGOFF_RX_RING, int(unsafe.Sizeof(unix.XDPDesc{})), ringSize)
	if err != nil {
		return err
	}
	// Give the kernel every frame the fill ring holds.
	for i := uint32(0); i < ringSize; i++ {
		*(*uint64)(unsafe.Add(fill.desc, 8*uintptr(i))) = uint64(i) * frameSize
	}
	atomic.StoreUint32(fill.prod, ringSize)
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifc), QueueID: 0}); err != nil {
		return fmt.Errorf("bind AF_XDP to r0 queue 0: %w", err)
	}
	xsks, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		return err
	}
	if err := xsks.Put(uint32(0), uint32(fd)); err != nil {
		return fmt.Errorf("XSKMAP: %w", err)
	}
	prog, err := xdpProgram(xsks, streams)
	if err != nil {
		return fmt.Errorf("load XDP program: %w", err)
	}
	lnk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc, Flags: link.XDPGenericMode})
	if err != nil {
		return fmt.Errorf("attach XDP: %w", err)
	}
	defer lnk.Close()
	f, err := newForwarder()
	if err != nil {
		return err
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	base := unsafe.Pointer(&umem[0])
	for !stop.Load() {
		prod := atomic.LoadUint32(rx.prod)
		cons := *rx.cons
		if prod == cons {
			_, err := unix.Poll(pfd, 100)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return err
			}
			continue
		}
		fprod := *fill.prod
		for ; cons != prod; cons++ {
			d := (*unix.XDPDesc)(unsafe.Add(rx.desc, uintptr(cons&rx.mask)*unsafe.Sizeof(unix.XDPDesc{})))
			frame := unsafe.Slice((*byte)(unsafe.Add(base, d.Addr)), d.Len)
			if len(frame) >= ethLen+ipLen+udpLen {
				port := binary.BigEndian.Uint16(frame[ethLen+ipLen+2:])
				f.put(port, frame[ethLen+ipLen+udpLen:])
			}
			if f.n == batch {
				f.flush()
			}
			// The frame goes back once its payload has been copied out
			// (sendmmsg copies): at the end of this batch.
			*(*uint64)(unsafe.Add(fill.desc, 8*uintptr(fprod&fill.mask))) = d.Addr &^ (frameSize - 1)
			fprod++
		}
		f.flush()
		atomic.StoreUint32(rx.cons, cons)
		atomic.StoreUint32(fill.prod, fprod)
	}
	return nil
}

func setsockopt(fd, opt int, v unsafe.Pointer, size uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(v), size, 0); e != 0 {
		return e
	}
	return nil
}
