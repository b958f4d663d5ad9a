// SPDX-License-Identifier: Apache-2.0

package browser

import (
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/ngproto"
	"github.com/relayd/relayd/pkg/transcode"
	"github.com/relayd/relayd/test/e2e"
	"github.com/relayd/relayd/test/testenv"
)

const (
	// relayAddr is relayd's media interface: on a veth link in the
	// namespace (this kernel has no dummy links), so the relay's address
	// in every SDP is its own and not the phone's or the page's 127.0.0.1.
	relayAddr = "192.0.2.1"
	ngPort    = 2223
	portMin   = 30000
	portMax   = 30099

	browserHz = 1000.0 // the fake microphone's tone
	phoneHz   = 440.0  // the phone's tone
	toneAmp   = 8000.0
	// minToneSNR is how far above everything else a received tone must be.
	minToneSNR = 10.0
	rate       = 8000
	frame      = 160 // samples per 20 ms PCMU packet
	dtmfPT     = 101 // the phone's telephone-event payload type when it offers

	stepTimeout = 15 * time.Second // any one step of a call
)

//go:embed testdata/page.html
var page []byte

// chromiumFlags are media.md §4b's: headless, no sandbox (root), a fake
// microphone playing a file and a fake permission prompt, loopback allowed
// as an ICE candidate, and nothing that talks to the network by itself.
var chromiumFlags = []string{
	"--headless=new", "--no-sandbox", "--disable-gpu",
	"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
	"--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--no-first-run", "--disable-default-apps", "--disable-domain-reliability",
	"--metrics-recording-only",
	// The page's console and JavaScript errors in chromium's log too.
	"--enable-logging=stderr", "--log-level=0",
}

// requireEnvironment checks root and the programs the test runs before
// anything is created; it returns chromium's path.
func requireEnvironment(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "browser tests need root (a network namespace, a veth link); run with sudo -E")
	}
	if _, err := testenv.IPBinary(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Unavailable(t, "chromium not found (%v): install Debian's chromium (make deps)", err)
	}
	if os.Getenv("E2E_RELAYD_BIN") == "" {
		if _, err := exec.LookPath("go"); err != nil {
			testenv.Unavailable(t, "go not in PATH to build relayd (%v); set E2E_RELAYD_BIN", err)
		}
	}
	return chromium
}

// TestMain builds relayd once for the package's tests (a cgo link takes
// seconds on this machine) and removes the build afterwards.
func TestMain(m *testing.M) {
	code := m.Run()
	bins.mu.Lock()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	bins.mu.Unlock()
	os.Exit(code)
}

// bins are the relayd builds of this run: plain, and with Opus.
var bins struct {
	mu   sync.Mutex
	dir  string
	path map[bool]string
}

// relaydBinary is relayd built from the tree (E2E_RELAYD_BIN when set),
// with cgo and libopus when opus is set.
func relaydBinary(t *testing.T, opus bool) string {
	t.Helper()
	bins.mu.Lock()
	defer bins.mu.Unlock()
	if p, ok := bins.path[opus]; ok {
		return p
	}
	if bins.dir == "" {
		dir, err := os.MkdirTemp("", "relayd-browser-bin-")
		if err != nil {
			t.Fatal(err)
		}
		bins.dir, bins.path = dir, map[bool]string{}
	}
	dir := filepath.Join(bins.dir, map[bool]string{false: "plain", true: "opus"}[opus])
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var p string
	if opus {
		p = testenv.RelaydBinaryOpus(t, dir)
	} else {
		p = testenv.RelaydBinary(t, dir)
	}
	t.Logf("relayd (opus %v): %s, built in %v", opus, p, time.Since(start).Round(time.Millisecond))
	bins.path[opus] = p
	return p
}

// Codecs the page restricts the browser to (its ?codec=): the codec and
// the telephone-event at its clock.
const (
	pcmu = "pcmu"
	opus = "opus"
)

// env is one call's world: a network namespace with loopback and the
// relay's veth link, relayd in it, the page's HTTP server and an ng client
// whose sockets live in it.
type env struct {
	t        *testing.T
	dir      string
	ns       string
	chromium string
	// codec is what the browser speaks: pcmu, or opus, which relayd
	// transcodes and which needs relayd built with libopus.
	codec   string
	relayd  *testenv.Process
	ngc     *ngproto.Client
	web     *mailbox
	webAddr string

	mu         sync.Mutex
	transcript strings.Builder // the signalling, shown when the test fails
}

// newEnv makes a call's world for a browser speaking codec.
func newEnv(t *testing.T, codec string) *env {
	t.Helper()
	chromium := requireEnvironment(t)
	e := &env{t: t, dir: testenv.ArtifactDir(t, "BROWSER_ARTIFACTS"), chromium: chromium, codec: codec}
	e.ns = fmt.Sprintf("relayd-browser-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	testenv.Run(t, "ip", "netns", "add", e.ns)
	// First registered, so it runs after every process and socket is gone;
	// it checks that the namespace really went.
	t.Cleanup(func() {
		if out, err := testenv.Command("ip", "netns", "delete", e.ns).CombinedOutput(); err != nil {
			t.Errorf("delete netns %s: %v\n%s", e.ns, err, out)
		}
		if _, err := os.Stat(testenv.NSPath(e.ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("netns %s is still there after ip netns delete (%v)", e.ns, err)
		}
	})
	for _, s := range [][]string{
		{"ip", "-n", e.ns, "link", "set", "lo", "up"},
		{"ip", "-n", e.ns, "link", "add", "relay0", "type", "veth", "peer", "name", "relay1"},
		{"ip", "-n", e.ns, "addr", "add", relayAddr + "/24", "dev", "relay0"},
		{"ip", "-n", e.ns, "link", "set", "relay0", "up"},
		{"ip", "-n", e.ns, "link", "set", "relay1", "up"},
	} {
		testenv.Run(t, s...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			e.mu.Lock()
			t.Logf("--- signalling:\n%s", e.transcript.String())
			e.mu.Unlock()
		}
	})
	e.startRelayd()
	e.startWeb()
	return e
}

// inNS runs fn with the calling thread in the namespace: sockets it opens
// stay there.
func (e *env) inNS(fn func() error) {
	e.t.Helper()
	if err := e2e.DoInNetns(testenv.NSPath(e.ns), fn); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) note(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(&e.transcript, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (e *env) startRelayd() {
	t := e.t
	bin := relaydBinary(t, e.codec == opus)
	logPath := filepath.Join(e.dir, "relayd.log")
	e.relayd = testenv.StartProcess(t, e.ns, "relayd", logPath, bin,
		"--config-file=none", "--interface="+relayAddr,
		fmt.Sprintf("--listen-ng=127.0.0.1:%d", ngPort),
		fmt.Sprintf("--port-min=%d", portMin), fmt.Sprintf("--port-max=%d", portMax),
		"--xdp=off", "--delete-delay=0", "--log-level=7")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- relayd log %s, last lines:\n%s", logPath, testenv.Tail(readFile(logPath), 80))
		}
	})
	e.inNS(func() error {
		var err error
		e.ngc, err = ngproto.Dial(fmt.Sprintf("127.0.0.1:%d", ngPort))
		return err
	})
	e.ngc.Timeout, e.ngc.Tries = 300*time.Millisecond, 1
	t.Cleanup(func() { _ = e.ngc.Close() })
	// Before relayd stops: its view of a failed test's call (every test's
	// call-id is its name).
	t.Cleanup(func() {
		if !t.Failed() || e.relayd.Exited() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		reply, err := e.ngc.Do(ctx, map[string]any{"command": "query", "call-id": t.Name()})
		if err != nil {
			t.Logf("--- relayd's query of %s: %v", t.Name(), err)
			return
		}
		out, _ := json.MarshalIndent(reply, "    ", "  ")
		t.Logf("--- relayd's query of %s:\n    %s", t.Name(), out)
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if e.relayd.Exited() {
			t.Fatalf("relayd exited during startup: %v\n%s", e.relayd.Err(), testenv.Tail(readFile(logPath), 40))
		}
		reply, err := e.ngc.Do(context.Background(), map[string]any{"command": "ping"})
		if err == nil && reply["result"] == "pong" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("relayd did not answer an ng ping within 15s: %v %v", reply, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.ngc.Timeout, e.ngc.Tries = time.Second, 3
	if e.codec == opus {
		// relayd says at startup what it can transcode.
		log := readFile(logPath)
		if strings.Contains(log, "codec unavailable for transcoding") && strings.Contains(log, "codec=opus") {
			testenv.Unavailable(t, "relayd %s cannot transcode Opus (built without cgo or libopus?):\n%s", bin,
				testenv.Tail(log, 20))
		}
	}
}

// ng sends one request built the way Kamailio's rtpengine module builds it
// from a flag string, and returns the reply; an error reply or a warning
// fails the test.
func (e *env) ng(command, flags string, keys map[string]any) map[string]any {
	e.t.Helper()
	req := ngproto.FlagString(flags)
	req["command"] = command
	for k, v := range keys {
		req[k] = v
	}
	sdp, _ := req["sdp"].(string)
	e.note("ng %s flags %q%s", command, flags, sdpNote(sdp))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := e.ngc.Do(ctx, req)
	if err != nil {
		e.t.Fatalf("ng %s: %v", command, err)
	}
	rsdp, _ := reply["sdp"].(string)
	e.note("reply %v %v%s", reply["result"], reply["warning"], sdpNote(rsdp))
	if reply["result"] != "ok" {
		e.t.Fatalf("ng %s: %v (%v)", command, reply["result"], reply["error-reason"])
	}
	if w, ok := reply["warning"]; ok {
		e.t.Errorf("ng %s with %q warns: %v", command, flags, w)
	}
	return reply
}

func sdpNote(sdp string) string {
	if sdp == "" {
		return ""
	}
	return " sdp:\n    " + strings.ReplaceAll(strings.TrimSpace(sdp), "\r\n", "\n    ")
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(%v)", err)
	}
	return string(data)
}

// --- the page's server --------------------------------------------------

// mailbox is the page's HTTP server: it serves the page, and carries named
// messages between the page and the test (POST /to-test/NAME, GET
// /from-test/NAME). "log" lines go to the test's log, "error" fails it.
type mailbox struct {
	mu      sync.Mutex
	toTest  map[string]chan []byte
	toPage  map[string]chan []byte
	errs    chan string
	logf    func(string)
	closed  bool
	srv     *http.Server
	lastMsg map[string][]byte
}

func (m *mailbox) box(boxes map[string]chan []byte, name string) chan []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := boxes[name]
	if !ok {
		c = make(chan []byte, 4)
		boxes[name] = c
	}
	return c
}

func (m *mailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	case strings.HasPrefix(r.URL.Path, "/to-test/") && r.Method == http.MethodPost:
		name := strings.TrimPrefix(r.URL.Path, "/to-test/")
		body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch name {
		case "log":
			m.mu.Lock()
			if !m.closed {
				m.logf("page: " + string(body))
			}
			m.mu.Unlock()
		case "error":
			select {
			case m.errs <- string(body):
			default:
			}
		default:
			m.mu.Lock()
			m.lastMsg[name] = body
			m.mu.Unlock()
			select {
			case m.box(m.toTest, name) <- body:
			default:
				http.Error(w, "mailbox full", http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/from-test/") && r.Method == http.MethodGet:
		select {
		case b := <-m.box(m.toPage, strings.TrimPrefix(r.URL.Path, "/from-test/")):
			_, _ = w.Write(b)
		case <-r.Context().Done():
		}
	default:
		http.NotFound(w, r)
	}
}

// last is the latest message the page sent under one of names.
func (m *mailbox) last(names ...string) (string, []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range names {
		if b, ok := m.lastMsg[n]; ok {
			return n, b
		}
	}
	return "", nil
}

func (e *env) startWeb() {
	t := e.t
	m := &mailbox{toTest: map[string]chan []byte{}, toPage: map[string]chan []byte{},
		errs: make(chan string, 1), lastMsg: map[string][]byte{},
		logf: func(s string) { t.Log(s) }}
	var ln net.Listener
	e.inNS(func() error {
		var err error
		ln, err = net.Listen("tcp4", "127.0.0.1:0")
		return err
	})
	m.srv = &http.Server{Handler: m, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			if name, stats := m.last("stats", "connected"); stats != nil {
				t.Logf("--- the browser's latest getStats (%q):\n%s", name, stats)
			}
		}
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.srv.Shutdown(ctx)
		_ = m.srv.Close()
		<-done
	})
	e.web, e.webAddr = m, ln.Addr().String()
}

// toPage hands the page a message it waits for with GET /from-test/NAME.
func (e *env) toPage(name string, body []byte) {
	e.web.box(e.web.toPage, name) <- body
}

// fromPage waits for the page's message NAME; a page error, chromium
// exiting or the step's timeout fails the test.
func (e *env) fromPage(b *chromium, name string) []byte {
	e.t.Helper()
	timeout := time.After(stepTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case body := <-e.web.box(e.web.toTest, name):
			return body
		case msg := <-e.web.errs:
			e.t.Fatalf("the page failed waiting for %q: %s", name, msg)
		case <-tick.C:
			if b != nil && b.proc.Exited() {
				e.t.Fatalf("chromium exited (%v) before the page sent %q", b.proc.Err(), name)
			}
		case <-timeout:
			e.t.Fatalf("the page sent no %q within %v", name, stepTimeout)
		}
	}
}

// --- chromium -----------------------------------------------------------

type chromium struct {
	proc *testenv.Process
}

// startChromium opens the page in role "offer" (the browser calls) or
// "answer" (it is called), speaking e.codec, with a fresh profile and a
// fake microphone playing a browserHz tone.
func (e *env) startChromium(role string) *chromium {
	t := e.t
	home := filepath.Join(e.dir, "chromium-"+role)
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(home, "tone.wav")
	if err := os.WriteFile(wav, toneWAV(browserHz, 48000, 2*time.Second), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := []string{"env", "HOME=" + home, "XDG_CONFIG_HOME=" + home + "/config", "XDG_CACHE_HOME=" + home + "/cache",
		e.chromium}
	argv = append(argv, chromiumFlags...)
	argv = append(argv, "--user-data-dir="+filepath.Join(home, "profile"),
		"--use-file-for-fake-audio-capture="+wav,
		fmt.Sprintf("http://%s/?role=%s&codec=%s", e.webAddr, role, e.codec))
	logPath := filepath.Join(home, "chromium.log")
	// Registered before the process, so it runs after the process's own
	// cleanup has stopped its group: chromium's zygote, renderer, GPU and
	// utility processes must be gone too.
	var p *testenv.Process
	t.Cleanup(func() {
		if p == nil {
			return
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			left := groupMembers(p.Pid())
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("chromium processes %v outlived the test; killing them", left)
				_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	p = testenv.StartProcess(t, e.ns, "chromium", logPath, argv...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- chromium log %s, last lines (without D-Bus and ALSA noise):\n%s", logPath,
				testenv.Tail(chromiumLog(readFile(logPath)), 60))
		}
	})
	return &chromium{proc: p}
}

// chromiumLog drops the lines a headless chromium without D-Bus or a sound
// card always writes.
func chromiumLog(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "dbus") || strings.HasPrefix(l, "ALSA lib") || strings.Contains(l, "alsa_util") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// groupMembers lists the live (not zombie) processes of process group pgid.
func groupMembers(pgid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + de.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parens.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// toneWAV is a mono 16-bit PCM WAV file of a tone; its length is a whole
// number of periods, so chromium's looping of it is seamless.
func toneWAV(hz float64, sampleRate int, d time.Duration) []byte {
	n := int(d.Seconds() * float64(sampleRate))
	pcm := make([]int16, n)
	transcode.Tone(pcm, hz, sampleRate, toneAmp, 0)
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(sampleRate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*sampleRate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}

// --- the phone ----------------------------------------------------------

// phone is a SIP phone's media: plain RTP/AVP, PCMU and telephone-event,
// on a UDP socket on 127.0.0.1 in the namespace.
type phone struct {
	t    *testing.T
	conn *net.UDPConn
	stop chan struct{}
	wg   sync.WaitGroup

	relay netip.AddrPort // where its media goes, from the relay's SDP
	tePT  uint8          // telephone-event's payload type in this call

	mu      sync.Mutex
	pcmu    []int16     // every PCMU sample received, in arrival order
	pcmuAt  []time.Time // the arrival of each PCMU packet
	sources map[netip.AddrPort]int
	events  []dtmfPacket
	otherPT map[uint8]int
	headers []rtpHeader // every RTP packet's header, in arrival order
}

// rtpHeader is what the phone keeps of each RTP packet's header.
type rtpHeader struct {
	at        time.Time
	pt        uint8
	marker    bool
	seq       uint16
	timestamp uint32
	ssrc      uint32
}

// dtmfPacket is one RFC 4733 telephone-event packet as received.
type dtmfPacket struct {
	at        time.Time
	marker    bool
	timestamp uint32
	event     uint8
	end       bool
	volume    uint8
	duration  uint16
}

func (e *env) newPhone() *phone {
	p := &phone{t: e.t, stop: make(chan struct{}), sources: map[netip.AddrPort]int{}, otherPT: map[uint8]int{}}
	e.inNS(func() error {
		var err error
		p.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	p.wg.Add(1)
	go p.read()
	e.t.Cleanup(func() {
		close(p.stop)
		_ = p.conn.Close()
		p.wg.Wait()
	})
	return p
}

func (p *phone) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// sdp is the phone's offer (tePT 0: it picks dtmfPT) or its answer to an
// offer whose telephone-event payload type is tePT.
func (p *phone) sdp() string {
	if p.tePT == 0 {
		p.tePT = dtmfPT
	}
	return fmt.Sprintf("v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 %d\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:%d telephone-event/8000\r\n"+
		"a=fmtp:%d 0-16\r\na=ptime:20\r\na=sendrecv\r\n", p.port(), p.tePT, p.tePT, p.tePT)
}

func (p *phone) read() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		b := buf[:n]
		if n < 12 || b[0]>>6 != 2 {
			continue
		}
		cc := int(b[0] & 0x0f)
		hdr := 12 + 4*cc
		if b[0]&0x10 != 0 && n >= hdr+4 { // header extension
			hdr += 4 + 4*int(binary.BigEndian.Uint16(b[hdr+2:]))
		}
		if hdr > n {
			continue
		}
		payload := b[hdr:]
		pt := b[1] & 0x7f
		p.mu.Lock()
		p.sources[from]++
		p.headers = append(p.headers, rtpHeader{at: time.Now(), pt: pt, marker: b[1]&0x80 != 0,
			seq: binary.BigEndian.Uint16(b[2:]), timestamp: binary.BigEndian.Uint32(b[4:]), ssrc: binary.BigEndian.Uint32(b[8:])})
		switch {
		case pt == 0:
			p.pcmuAt = append(p.pcmuAt, time.Now())
			for _, c := range payload {
				p.pcmu = append(p.pcmu, transcode.UlawDecode(c))
			}
		case pt == p.tePT && len(payload) >= 4:
			p.events = append(p.events, dtmfPacket{at: time.Now(), marker: b[1]&0x80 != 0,
				timestamp: binary.BigEndian.Uint32(b[4:]), event: payload[0], end: payload[1]&0x80 != 0,
				volume: payload[1] & 0x3f, duration: binary.BigEndian.Uint16(payload[2:])})
		default:
			p.otherPT[pt]++
		}
		p.mu.Unlock()
	}
}

// send plays a phoneHz tone to the relay, one packet per 20 ms of wall
// clock until the test ends: a late wake-up (a loaded 2-CPU machine) sends
// the packets due at once instead of losing them, as a phone's sound card
// clock would.
func (p *phone) send() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		start := time.Now()
		pcm := make([]int16, frame)
		for i := 0; ; i++ {
			transcode.Tone(pcm, phoneHz, rate, toneAmp, i*frame)
			b := make([]byte, 12, 12+frame)
			b[0] = 0x80
			if i == 0 {
				b[1] = 0x80 // marker: start of a talkspurt
			}
			binary.BigEndian.PutUint16(b[2:], uint16(i))
			binary.BigEndian.PutUint32(b[4:], uint32(i*frame))
			binary.BigEndian.PutUint32(b[8:], 0x70686f6e)
			for _, s := range pcm {
				b = append(b, transcode.UlawEncode(s))
			}
			_, _ = p.conn.WriteToUDPAddrPort(b, p.relay)
			select {
			case <-p.stop:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond))):
			}
		}
	}()
}

// waitPCMU waits until n PCMU packets have arrived and returns the samples
// of the latest n.
func (p *phone) waitPCMU(n int) []int16 {
	p.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		p.mu.Lock()
		got := len(p.pcmuAt)
		if got >= n {
			s := append([]int16(nil), p.pcmu[len(p.pcmu)-n*frame:]...)
			p.mu.Unlock()
			return s
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			p.t.Fatalf("the phone received %d PCMU packets in %v, want %d (sources %v, other payload types %v)",
				got, stepTimeout, n, p.sourcesSeen(), p.otherPTs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *phone) sourcesSeen() map[netip.AddrPort]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[netip.AddrPort]int{}
	for k, v := range p.sources {
		out[k] = v
	}
	return out
}

func (p *phone) otherPTs() map[uint8]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[uint8]int{}
	for k, v := range p.otherPT {
		out[k] = v
	}
	return out
}

// pcmuBetween counts the PCMU packets that arrived between from and to.
func (p *phone) pcmuBetween(from, to time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.pcmuAt {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

func (p *phone) rtpHeaders() []rtpHeader {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rtpHeader(nil), p.headers...)
}

func (p *phone) dtmf() []dtmfPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]dtmfPacket(nil), p.events...)
}

// --- SDP helpers ---------------------------------------------------------

// mediaOf reads the audio m= line's port and protocol, the connection
// address and the payload type of each rtpmap ("PCMU/8000" → 0).
type sdpMedia struct {
	port  int
	proto string
	addr  string
	pts   map[string]uint8 // encoding/clock → payload type
	attrs []string         // every a= line, without "a="
	fmts  []string
}

func parseSDP(t *testing.T, s string) sdpMedia {
	t.Helper()
	var m sdpMedia
	m.pts = map[string]uint8{}
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "m=audio "):
			f := strings.Fields(l)
			if len(f) < 4 {
				t.Fatalf("bad m= line %q", l)
			}
			fmt.Sscanf(f[1], "%d", &m.port)
			m.proto, m.fmts = f[2], f[3:]
		case strings.HasPrefix(l, "c=IN IP4 "):
			m.addr = strings.TrimPrefix(l, "c=IN IP4 ")
		case strings.HasPrefix(l, "a="):
			a := strings.TrimPrefix(l, "a=")
			m.attrs = append(m.attrs, a)
			if v, ok := strings.CutPrefix(a, "rtpmap:"); ok {
				var pt int
				var enc string
				if _, err := fmt.Sscanf(v, "%d %s", &pt, &enc); err == nil {
					m.pts[strings.ToLower(enc)] = uint8(pt)
				}
			}
		}
	}
	if m.port == 0 || m.addr == "" {
		t.Fatalf("SDP without an audio port or a connection address:\n%s", s)
	}
	return m
}

// has reports whether the SDP has an a= line starting with prefix.
func (m sdpMedia) has(prefix string) bool {
	for _, a := range m.attrs {
		if strings.HasPrefix(a, prefix) {
			return true
		}
	}
	return false
}

// --- audio ----------------------------------------------------------------

// checkTone requires samples to carry wantHz at about the level it was
// sent with (a peak of toneAmp), and most of their energy to be that tone.
func checkTone(t *testing.T, who string, samples []int16, sampleRate int, wantHz float64) {
	t.Helper()
	got := transcode.DominantFrequency(samples, sampleRate, 200, 2000, 10)
	rms := transcode.RMS(samples)
	snr := toneSNR(samples, sampleRate, wantHz)
	want := toneAmp / math.Sqrt2
	t.Logf("%s hears %.0f Hz at %.0f RMS (%+.1f dB against the %.0f sent), tone-to-rest %.1f dB (%d samples at %d Hz)",
		who, got, rms, 20*math.Log10(rms/want), want, snr, len(samples), sampleRate)
	if math.Abs(got-wantHz) > wantHz*0.03 {
		t.Errorf("%s hears %.0f Hz, want %.0f Hz", who, got, wantHz)
	}
	// Within -6/+3 dB of the tone sent: the browser's audio processing is
	// off, G.711 and Opus keep a tone's level.
	if rms < want/2 || rms > want*math.Sqrt2 {
		t.Errorf("%s hears a level of %.0f RMS, want about %.0f", who, rms, want)
	}
	if snr < minToneSNR {
		t.Errorf("%s hears the tone only %.1f dB above the rest, want at least %.0f dB", who, snr, minToneSNR)
	}
}

// toneSNR is how far, in dB, the tone at hz stands above everything else in
// samples: what codecs, concealment and time stretching added. It is
// measured in 50 ms blocks (a whole number of periods of both tones), so
// that the phase jumps of a jitter buffer stretching or shrinking time
// between blocks do not count as noise.
func toneSNR(samples []int16, sampleRate int, hz float64) float64 {
	n := sampleRate / 20
	var tone, total float64
	for i := 0; i+n <= len(samples); i += n {
		b := samples[i : i+n]
		// A sine of amplitude A has a Goertzel power of A²/4 and a mean
		// square of A²/2.
		tone += 2 * transcode.Power(b, hz, sampleRate)
		r := transcode.RMS(b)
		total += r * r
	}
	return 10 * math.Log10(tone/math.Max(total-tone, 1e-9))
}
