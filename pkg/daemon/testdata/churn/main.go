// SPDX-License-Identifier: Apache-2.0

// Command churn measures relayd's resident memory against its calls: it
// starts a relayd binary on loopback, holds a number of calls, drives many
// call setups (offer, answer, delete, as Kamailio sends them) with a number
// of requests in flight, and samples VmRSS throughout and for a while after
// the churn. The bench (bench/) measures media; this measures what signalling
// leaves behind.
//
//	go build -o /tmp/relayd ./cmd/relayd
//	go run ./pkg/daemon/testdata/churn -relayd /tmp/relayd -setups 50000 -conc 200
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
)

func main() {
	bin := flag.String("relayd", "bin/relayd", "relayd binary")
	setups := flag.Int("setups", 50_000, "call setups (offer, answer, delete) to drive")
	conc := flag.Int("conc", 200, "requests in flight")
	hold := flag.String("hold", "0", "comma-separated numbers of calls to hold before the churn, measuring RSS at each")
	after := flag.Duration("after", 60*time.Second, "how long to keep sampling after the churn")
	port := flag.Int("port", 22890, "ng port on 127.0.0.1")
	extra := flag.String("args", "", "extra relayd flags, space-separated")
	flag.Parse()
	if err := run(*bin, *setups, *conc, *hold, *after, *port, strings.Fields(*extra)); err != nil {
		fmt.Fprintln(os.Stderr, "churn:", err)
		os.Exit(1)
	}
}

func run(bin string, setups, conc int, hold string, after time.Duration, port int, extra []string) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	httpAddr := "127.0.0.1:" + strconv.Itoa(port+1)
	args := append([]string{"--config-file=none", "--interface=internal/127.0.0.1", "--interface=external/127.0.0.1", "--listen-ng=" + addr,
		"--listen-http=" + httpAddr,
		"--port-min=10000", "--port-max=65000", "--delete-delay=0", "--xdp=off", "--num-threads=1",
		"--log-level=4"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	ctx := context.Background()
	c, err := ngproto.Dial(addr)
	if err != nil {
		return err
	}
	c.Timeout, c.Tries = 200*time.Millisecond, 50
	if _, err := c.Do(ctx, map[string]any{"command": "ping"}); err != nil {
		return fmt.Errorf("relayd does not answer: %w", err)
	}
	c.Close()
	time.Sleep(time.Second)
	start := time.Now()
	report := func(phase string, calls int) {
		m := scrape(httpAddr)
		fmt.Printf("%7.1f s  %-24s calls %6d  RSS %6.1f MiB  heap in use %5.1f  stacks %5.1f  reply cache %5.1f MiB\n",
			time.Since(start).Seconds(), phase, calls, mib(rss(pid)), m["go_memstats_heap_inuse_bytes"]/(1<<20),
			m["go_memstats_stack_inuse_bytes"]/(1<<20), m["relayd_control_cache_bytes"]/(1<<20))
	}
	report("idle", 0)

	d := &driver{addr: addr}
	held := 0
	for _, f := range strings.Split(hold, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < held {
			return fmt.Errorf("bad -hold %q", hold)
		}
		if err := d.many(ctx, conc, held, n, false); err != nil {
			return err
		}
		held = n
		time.Sleep(2 * time.Second)
		report("holding", held)
	}

	// The churn, sampled every second.
	done := make(chan struct{})
	peak := uint64(0)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if r := rss(pid); r > peak {
					peak = r
				}
			}
		}
	}()
	t0 := time.Now()
	if err := d.many(ctx, conc, 1_000_000, 1_000_000+setups, true); err != nil {
		return err
	}
	close(done)
	el := time.Since(t0)
	fmt.Printf("churn: %d setups with %d in flight in %.1f s (%.0f/s), %d errors; peak RSS %.1f MiB\n",
		setups, conc, el.Seconds(), float64(setups)/el.Seconds(), d.errors.Load(), mib(peak))
	report("after churn", held)
	for _, at := range []time.Duration{5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second, 120 * time.Second} {
		if at > after {
			break
		}
		time.Sleep(time.Until(t0.Add(el + at)))
		report(fmt.Sprintf("churn end + %v", at), held)
	}
	if held > 0 {
		// The held calls end too: what is left is the relay at rest.
		if err := d.deleteHeld(ctx, conc, held); err != nil {
			return err
		}
		report("held calls deleted", 0)
		t1 := time.Now()
		for _, at := range []time.Duration{10 * time.Second, 30 * time.Second} {
			time.Sleep(time.Until(t1.Add(at)))
			report(fmt.Sprintf("deleted + %v", at), 0)
		}
	}
	return nil
}

type driver struct {
	addr   string
	ids    sync.Map // held calls: index -> call-id
	errors atomic.Int64
	first  atomic.Value
}

// many sets up calls [from, to); with churn each is deleted again.
func (d *driver) many(ctx context.Context, conc, from, to int, churn bool) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ngproto.Dial(d.addr)
			if err != nil {
				d.fail(err)
				return
			}
			defer c.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := d.call(ctx, c, i, churn); err != nil {
					d.fail(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := d.errors.Load(); n > 0 {
		return fmt.Errorf("%d errors, first: %v", n, d.first.Load())
	}
	return nil
}

func (d *driver) fail(err error) {
	d.errors.Add(1)
	d.first.CompareAndSwap(nil, err)
}

func (d *driver) call(ctx context.Context, c *ngproto.Client, i int, churn bool) error {
	id := fmt.Sprintf("churn-%d-%08x@bench", i, rand.Uint32())
	if !churn {
		d.ids.Store(i, id)
	}
	caller := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 4000)
	callee := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), 6000)
	offer := map[string]any{
		"supports": []any{"load limit"}, "sdp": sdp(caller), "ICE": "remove",
		"direction": []any{"external", "internal"}, "flags": []any{"trust-address", "symmetric"},
		"replace": []any{"origin", "session-connection"}, "transport-protocol": "RTP/AVP",
		"call-id": id, "received-from": []any{"IP4", caller.Addr().String()}, "from-tag": "f" + id[6:14],
		"command": "offer",
	}
	if err := ok(c.Do(ctx, offer)); err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	answer := map[string]any{
		"supports": []any{"load limit"}, "sdp": sdp(callee), "ICE": "remove",
		"flags": []any{"trust-address"}, "replace": []any{"origin", "session-connection"},
		"transport-protocol": "RTP/AVP", "call-id": id, "received-from": []any{"IP4", callee.Addr().String()},
		"from-tag": "f" + id[6:14], "to-tag": "t" + id[6:14], "command": "answer",
	}
	if err := ok(c.Do(ctx, answer)); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	if !churn {
		return nil
	}
	del := map[string]any{"supports": []any{"load limit"}, "call-id": id,
		"received-from": []any{"IP4", caller.Addr().String()}, "from-tag": "f" + id[6:14], "command": "delete"}
	if err := ok(c.Do(ctx, del)); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// deleteHeld deletes the held calls [0, n).
func (d *driver) deleteHeld(ctx context.Context, conc, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ngproto.Dial(d.addr)
			if err != nil {
				d.fail(err)
				return
			}
			defer c.Close()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id, _ := d.ids.Load(i)
				s, _ := id.(string)
				if err := ok(c.Do(ctx, map[string]any{"call-id": s, "command": "delete"})); err != nil {
					d.fail(err)
				}
			}
		}()
	}
	wg.Wait()
	if n := d.errors.Load(); n > 0 {
		return fmt.Errorf("%d errors, first: %v", n, d.first.Load())
	}
	return nil
}

func ok(reply map[string]any, err error) error {
	if err != nil {
		return err
	}
	if reply["result"] != "ok" {
		return fmt.Errorf("%w: %v", errNotOK, reply)
	}
	return nil
}

var errNotOK = errors.New("reply not ok")

func sdp(a netip.AddrPort) string {
	ip, p := a.Addr().String(), strconv.Itoa(int(a.Port()))
	return "v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=SIP Call\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\n" +
		"m=audio " + p + " RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
}

func rss(pid int) uint64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// scrape reads the unlabelled gauges of relayd's /metrics (those of the old
// binaries without them read as 0).
func scrape(addr string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") && !strings.Contains(f[0], "{") {
			v, _ := strconv.ParseFloat(f[1], 64)
			out[f[0]] = v
		}
	}
	return out
}
