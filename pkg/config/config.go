// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"time"
)

// DefaultConfigFile is read when --config-file is not given, and only if it exists.
const DefaultConfigFile = "/etc/relayd/relayd.conf"

// DefaultXDPPinPath is where the fast path pins by default (bpf.DefaultPinPath).
const DefaultXDPPinPath = "/sys/fs/bpf/relayd"

// DefaultConfigSection is the ini section read when --config-section is not
// given; it is the incumbent's, so that an rtpengine.conf works unchanged.
const DefaultConfigSection = "rtpengine"

// DefaultInterfaceName names an interface whose spec carried no "NAME/".
const DefaultInterfaceName = "default"

// Endpoint-learning modes (the incumbent's --endpoint-learning values).
const (
	LearningOff       = "off"
	LearningImmediate = "immediate"
	LearningDelayed   = "delayed"
	LearningHeuristic = "heuristic"
)

// Fast-path modes (the xdp key).
const (
	XDPAuto    = "auto"
	XDPNative  = "native"
	XDPGeneric = "generic"
	XDPOff     = "off"
)

// Recording methods (the recording-method key). relayd writes pcap files for
// each of them: proc and all are the incumbent's, accepted so that its
// configuration loads, and warned about at start.
const (
	RecordingPcap = "pcap"
	RecordingProc = "proc"
	RecordingAll  = "all"
)

// Interface is one logical media interface: where sockets bind and what the
// SDP says.
type Interface struct {
	Name       string     // logical name; "default" when the spec had no NAME/
	Addr       netip.Addr // local address sockets bind to
	Advertised netip.Addr // address printed in SDP; = Addr when no "!ADVERTISED"
}

// Config is relayd's validated start-up configuration.
type Config struct {
	Interfaces []Interface // in order; first is the default
	ListenNG   netip.AddrPort
	// NGAllowFrom lists the proxies (addresses as /32 or /128, or prefixes)
	// whose ng requests are answered; empty answers every source.
	NGAllowFrom []netip.Prefix

	PortMin, PortMax int

	Timeout       time.Duration
	SilentTimeout time.Duration
	OfferTimeout  time.Duration
	FinalTimeout  time.Duration // 0 = off
	DeleteDelay   time.Duration

	TOS         int // 0..255
	MaxSessions int // -1 = unlimited (default); 0 = accept none (drain)
	LogLevel    int // syslog scale 0..7
	PidFile     string
	Foreground  bool
	NumThreads  int // resolved: 0/absent -> runtime.NumCPU()
	// CodecThreads are the transcoding workers (0: one per CPU).
	CodecThreads int

	EndpointLearning string // off|immediate|delayed|heuristic

	// XDP selects the kernel fast path: auto|native|generic|off.
	XDP string
	// SocketSends sends userspace-forwarded media through each stream's own
	// socket instead of one raw socket per media worker.
	SocketSends bool
	// XDPPinPath is the bpffs directory the fast path pins under ("" =
	// nothing pinned: the kernel path ends with the process).
	XDPPinPath string
	// DTLSSignature is the hash of the a=fingerprint relayd writes
	// ("sha-256" …).
	DTLSSignature string

	// StateDir keeps every call's state for the next relayd ("" = off):
	// with it, stopping hands the calls over instead of ending them.
	StateDir string

	// Redis keeps every call's state in a Redis database shared by the
	// relays of a group (the incumbent's redis keys): read at start and
	// written as calls change. RedisWrite, when set, is where writes go
	// instead; RedisSubscribe is where SubscribeKeyspace's databases are
	// followed (default: Redis's server), their calls held as foreign.
	Redis, RedisWrite, RedisSubscribe RedisAddr
	// RedisDB is the database of the Redis addresses that name none.
	RedisDB int
	// RedisExpires is the records' lifetime in Redis (0 = none).
	RedisExpires time.Duration
	// SubscribeKeyspace are the database numbers whose calls this relay
	// holds ready to take over (a standby, or each of an active-active
	// pair).
	SubscribeKeyspace []int
	// NoRedisRequired starts relayd while Redis does not answer (calls go
	// on, their state is written once it does); without it a Redis that
	// does not answer at start stops the start.
	NoRedisRequired bool
	// ActiveSwitchover takes a foreign call over on its first media packet.
	ActiveSwitchover bool
	// NodeName names this relay in the records it writes (default: the
	// host name); every relay of a group needs its own.
	NodeName string

	// ListenHTTP serves /metrics (Prometheus) and ListenCLI the operator's
	// text protocol (rtpengine-ctl); the zero value is off.
	ListenHTTP, ListenCLI netip.AddrPort
	// B2BURL is where teardown notices go when a call times out ("" = none);
	// "%%" stands for the address of the proxy that created the call.
	B2BURL string
	// XMLRPCFormat is the notice's form: 0 SEMS, 1 call-id only, 2 Kamailio.
	XMLRPCFormat int

	// RecordingDir is where call recordings go ("" = recording off);
	// RecordingMethod is pcap, proc or all as configured ("" = pcap) and
	// RecordingFormat raw or eth ("" = raw).
	RecordingDir, RecordingMethod, RecordingFormat string

	// ConfigFile and ConfigSection name what was loaded; both are empty when
	// no file was read.
	ConfigFile, ConfigSection string
}

// RedisAddr is a Redis server and database: [PASSWORD@]HOST:PORT[/DB].
type RedisAddr struct {
	Addr     string // host:port; "" = not configured
	Password string
	DB       int // -1: not given (redis-db, else 0)
}

// IsSet reports whether the address was configured.
func (r RedisAddr) IsSet() bool { return r.Addr != "" }

// String is the address without its password, for logs.
func (r RedisAddr) String() string {
	if r.Addr == "" {
		return ""
	}
	return fmt.Sprintf("%s/%d", r.Addr, max(r.DB, 0))
}

// Default returns the configuration relayd runs with when nothing is
// configured: everything on loopback, the incumbent's default values.
func Default() *Config {
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	return &Config{
		Interfaces:       []Interface{{Name: DefaultInterfaceName, Addr: lo, Advertised: lo}},
		ListenNG:         netip.AddrPortFrom(lo, 2223),
		PortMin:          30000,
		PortMax:          40000,
		Timeout:          60 * time.Second,
		SilentTimeout:    3600 * time.Second,
		OfferTimeout:     3600 * time.Second,
		FinalTimeout:     0,
		DeleteDelay:      30 * time.Second,
		TOS:              184,
		MaxSessions:      -1,
		LogLevel:         6,
		NumThreads:       runtime.NumCPU(),
		EndpointLearning: LearningHeuristic,
		XDP:              XDPAuto,
		XDPPinPath:       DefaultXDPPinPath,
		DTLSSignature:    "sha-256",
		RedisExpires:     86400 * time.Second,
	}
}

// SlogLevel maps the syslog-scale log-level onto slog: 0-3 (emerg..err) Error,
// 4 (warning) Warn, 5-6 (notice, info) Info, 7 (debug) Debug.
func (c *Config) SlogLevel() slog.Level {
	switch {
	case c.LogLevel <= 3:
		return slog.LevelError
	case c.LogLevel == 4:
		return slog.LevelWarn
	case c.LogLevel <= 6:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
