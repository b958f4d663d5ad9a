// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// keyDef describes one configuration key. The same name is the file key and
// the long flag; short is the incumbent's one-letter alias (0 for none).
type keyDef struct {
	name    string
	short   byte
	isBool  bool   // a flag that takes no value on the command line
	argName string // value placeholder in the usage text
	help    string
	// secret: the value may hold a password, shown redacted in errors.
	secret bool
	// set parses v and stores it in c. The error is the bare reason; the
	// caller wraps it into a *ValueError naming the key and value.
	set func(c *Config, v string) error
}

// Keys that exist only on the command line: they choose the file, so a file
// cannot set them.
const (
	flagConfigFile    = "config-file"
	flagConfigSection = "config-section"
	flagHelp          = "help"
	keyInterface      = "interface"
	keyPortMin        = "port-min"
	keyPortMax        = "port-max"

	keyRedis             = "redis"
	keyRedisDB           = "redis-db"
	keySubscribeKeyspace = "subscribe-keyspace"
)

// keyDefs is the list of keys in usage order. It is built by a function, not
// held in a package variable, so that no package-level mutable state exists.
func keyDefs() []keyDef {
	intKey := func(dst func(*Config) *int, lo, hi int) func(*Config, string) error {
		return func(c *Config, v string) error {
			n, err := parseInt(v, lo, hi)
			if err != nil {
				return err
			}
			*dst(c) = n
			return nil
		}
	}
	secKey := func(dst func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := parseSeconds(v)
			if err != nil {
				return err
			}
			*dst(c) = d
			return nil
		}
	}
	return []keyDef{
		{name: keyInterface, short: 'i', argName: "[NAME/]ADDR[!ADV]",
			// No set: the loader appends, as only it knows whether the
			// command line replaces the file's list.
			help: "logical media interface; repeatable, first is the default (default 127.0.0.1)"},
		{name: "listen-ng", short: 'n', argName: "[ADDR:]PORT",
			help: "UDP address for the ng control protocol (default 127.0.0.1:2223)",
			set: func(c *Config, v string) error {
				ap, err := parseListen(v)
				if err != nil {
					return err
				}
				c.ListenNG = ap
				return nil
			}},
		{name: "ng-allow-from", argName: "ADDR[/LEN];...",
			help: "proxies whose ng requests are answered: addresses or prefixes separated by ; , or spaces; others are dropped and counted (default: any source)",
			set: func(c *Config, v string) error {
				list, err := parsePrefixList(v)
				if err != nil {
					return err
				}
				c.NGAllowFrom = list
				return nil
			}},
		{name: keyPortMin, short: 'm', argName: "INT", help: "lowest media port (default 30000)",
			set: intKey(func(c *Config) *int { return &c.PortMin }, 1024, 65535)},
		{name: keyPortMax, short: 'M', argName: "INT", help: "highest media port (default 40000)",
			set: intKey(func(c *Config) *int { return &c.PortMax }, 1024, 65535)},
		{name: "timeout", short: 'o', argName: "SECS", help: "RTP timeout: no media received (default 60)",
			set: secKey(func(c *Config) *time.Duration { return &c.Timeout })},
		{name: "silent-timeout", argName: "SECS", help: "timeout for calls on hold (default 3600)",
			set: secKey(func(c *Config) *time.Duration { return &c.SilentTimeout })},
		{name: "offer-timeout", argName: "SECS", help: "timeout for calls never answered (default 3600)",
			set: secKey(func(c *Config) *time.Duration { return &c.OfferTimeout })},
		{name: "final-timeout", argName: "SECS", help: "hard maximum call duration, 0 = off (default 0)",
			set: secKey(func(c *Config) *time.Duration { return &c.FinalTimeout })},
		{name: "delete-delay", argName: "SECS", help: "how long a deleted call lingers (default 30)",
			set: secKey(func(c *Config) *time.Duration { return &c.DeleteDelay })},
		{name: "tos", short: 'T', argName: "INT", help: "TOS byte of media packets, 0-255 (default 184)",
			set: intKey(func(c *Config) *int { return &c.TOS }, 0, 255)},
		{name: "max-sessions", argName: "INT", help: "session limit, -1 = unlimited, 0 = refuse new calls (default -1)",
			set: intKey(func(c *Config) *int { return &c.MaxSessions }, -1, maxInt)},
		{name: "log-level", short: 'L', argName: "0-7", help: "syslog-scale log level (default 6)",
			set: intKey(func(c *Config) *int { return &c.LogLevel }, 0, 7)},
		{name: "pidfile", short: 'p', argName: "PATH", help: "write the process id to PATH",
			set: func(c *Config, v string) error { c.PidFile = v; return nil }},
		{name: "foreground", short: 'f', isBool: true, help: "stay in the foreground",
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				if err != nil {
					return err
				}
				c.Foreground = b
				return nil
			}},
		{name: "num-threads", argName: "INT", help: "worker threads, 0 = one per CPU (default 0)",
			set: intKey(func(c *Config) *int { return &c.NumThreads }, 0, maxThreads)},
		{name: "codec-num-threads", argName: "INT", help: "transcoding worker threads, 0 = one per CPU (default 0)",
			set: intKey(func(c *Config) *int { return &c.CodecThreads }, 0, maxThreads)},
		{name: "endpoint-learning", argName: "MODE",
			help: "off, immediate, delayed or heuristic (default heuristic)",
			set: func(c *Config, v string) error {
				m, err := parseLearning(v)
				if err != nil {
					return err
				}
				c.EndpointLearning = m
				return nil
			}},
		{name: "listen-http", argName: "[ADDR:]PORT",
			help: "HTTP address for Prometheus /metrics, empty = off (default off)",
			set:  func(c *Config, v string) error { return setOptionalListen(&c.ListenHTTP, v) }},
		{name: "listen-cli", argName: "[ADDR:]PORT",
			help: "TCP address for the operator's CLI (rtpengine-ctl, relayd ctl), empty = off (default off)",
			set:  func(c *Config, v string) error { return setOptionalListen(&c.ListenCLI, v) }},
		{name: "b2b-url", short: 'b', argName: "URL",
			help: "XML-RPC URL told when a call times out; %% = the proxy's address (default none)",
			set: func(c *Config, v string) error {
				u, err := parseB2BURL(v)
				if err != nil {
					return err
				}
				c.B2BURL = u
				return nil
			}},
		{name: "xmlrpc-format", short: 'x', argName: "0-2",
			help: "teardown notice: 0 SEMS, 1 call-id only, 2 Kamailio dlg.terminate_dlg (default 0)",
			set:  intKey(func(c *Config) *int { return &c.XMLRPCFormat }, 0, 2)},
		{name: "dtls-signature", argName: "HASH",
			help: "hash of the a=fingerprint relayd writes: SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512 (default SHA-256)",
			set: func(c *Config, v string) error {
				switch h := strings.ToLower(strings.ReplaceAll(v, "_", "-")); h {
				case "sha-1", "sha-224", "sha-256", "sha-384", "sha-512":
					c.DTLSSignature = h
					return nil
				case "sha1", "sha224", "sha256", "sha384", "sha512":
					c.DTLSSignature = "sha-" + h[3:]
					return nil
				}
				return fmt.Errorf("want SHA-1, SHA-224, SHA-256, SHA-384 or SHA-512")
			}},
		{name: "xdp-pin-path", argName: "PATH",
			help: "bpffs directory where the fast path's program, links and maps outlive relayd (a restart adopts them); none = not pinned (default /sys/fs/bpf/relayd)",
			set: func(c *Config, v string) error {
				switch {
				case strings.EqualFold(v, "none"):
					c.XDPPinPath = ""
				case !strings.HasPrefix(v, "/"):
					return fmt.Errorf("want an absolute path or none")
				default:
					c.XDPPinPath = v
				}
				return nil
			}},
		{name: "state-dir", argName: "PATH",
			help: "directory where every call's state is kept so that a restarted or upgraded relayd continues its calls; empty = off (default off)",
			set:  func(c *Config, v string) error { c.StateDir = v; return nil }},
		{name: keyRedis, argName: "[PW@]HOST:PORT[/DB]", secret: true,
			help: "Redis database every call's state is kept in and read from at start (HA); empty = off (default off)",
			set:  func(c *Config, v string) error { return setRedisAddr(&c.Redis, v) }},
		{name: "redis-write", argName: "[PW@]HOST:PORT[/DB]", secret: true,
			help: "Redis database call states are written to instead of redis's (default: redis)",
			set:  func(c *Config, v string) error { return setRedisAddr(&c.RedisWrite, v) }},
		{name: keyRedisDB, argName: "INT",
			help: "database number of redis, redis-write and redis-subscribe when they name none (default 0)",
			set:  intKey(func(c *Config) *int { return &c.RedisDB }, 0, 1<<20)},
		{name: "redis-expires", argName: "SECS",
			help: "lifetime of a call's record in Redis, renewed while the call lives; 0 = none (default 86400)",
			set:  secKey(func(c *Config) *time.Duration { return &c.RedisExpires })},
		{name: "redis-subscribe", argName: "[PW@]HOST:PORT[/DB]", secret: true,
			help: "Redis server whose subscribe-keyspace databases are followed (default: redis)",
			set:  func(c *Config, v string) error { return setRedisAddr(&c.RedisSubscribe, v) }},
		{name: keySubscribeKeyspace, argName: "DB[;DB...]",
			help: "Redis databases whose calls this relay holds as foreign, ready to take over (standby); empty = none (default none)",
			set: func(c *Config, v string) error {
				c.SubscribeKeyspace = nil
				for item := range strings.SplitSeq(v, ";") {
					if item = strings.TrimSpace(item); item == "" {
						continue
					}
					n, err := parseInt(item, 0, 1<<20)
					if err != nil {
						return fmt.Errorf("database %q: %w", item, err)
					}
					if !slices.Contains(c.SubscribeKeyspace, n) {
						c.SubscribeKeyspace = append(c.SubscribeKeyspace, n)
					}
				}
				return nil
			}},
		{name: "no-redis-required", isBool: true,
			help: "start even when Redis does not answer (calls go on; their state is written once it does)",
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.NoRedisRequired = b
				return err
			}},
		{name: "active-switchover", isBool: true,
			help: "take a foreign call over on its first media packet, not only on signalling or 'relayd ctl active'",
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.ActiveSwitchover = b
				return err
			}},
		{name: "node-name", argName: "NAME",
			help: "this relay's name in the call records it writes to Redis; unique per relay of a group (default: the host name)",
			set: func(c *Config, v string) error {
				if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t") {
					return fmt.Errorf("want a name without blanks")
				}
				c.NodeName = v
				return nil
			}},
		{name: "recording-dir", argName: "PATH",
			help: "directory for call recordings (pcaps/, metadata/), empty = recording off (default off)",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if v != "" && !filepath.IsAbs(v) {
					return fmt.Errorf("want an absolute path")
				}
				c.RecordingDir = v
				return nil
			}},
		{name: "recording-method", argName: "METHOD",
			help: "pcap; the incumbent's proc and all are accepted and write pcap files (default pcap)",
			set: func(c *Config, v string) error {
				switch m := strings.ToLower(strings.TrimSpace(v)); m {
				case RecordingPcap, RecordingProc, RecordingAll:
					c.RecordingMethod = m
					return nil
				}
				return fmt.Errorf("want pcap (proc and all are accepted and write pcap files)")
			}},
		{name: "recording-format", argName: "FORMAT",
			help: "link layer of the pcap files: raw (IP) or eth (synthetic Ethernet header) (default raw)",
			set: func(c *Config, v string) error {
				switch f := strings.ToLower(strings.TrimSpace(v)); f {
				case "raw", "eth":
					c.RecordingFormat = f
					return nil
				}
				return fmt.Errorf("want raw or eth")
			}},
		{name: "socket-sends", isBool: true,
			help: "send userspace-forwarded media through each stream's own socket, not one raw socket per media worker",
			set: func(c *Config, v string) error {
				b, err := parseBool(v)
				c.SocketSends = b
				return err
			}},
		{name: "xdp", argName: "MODE",
			help: "kernel fast path: auto (native, else generic, else userspace), native, generic or off (default auto)",
			set: func(c *Config, v string) error {
				switch m := strings.ToLower(v); m {
				case XDPAuto, XDPNative, XDPGeneric, XDPOff:
					c.XDP = m
					return nil
				}
				return fmt.Errorf("want auto, native, generic or off")
			}},
	}
}

const maxInt = int(^uint(0) >> 1)

func findKey(defs []keyDef, name string) (keyDef, bool) {
	for _, d := range defs {
		if d.name == name {
			return d, true
		}
	}
	return keyDef{}, false
}

func findShort(defs []keyDef, c byte) (keyDef, bool) {
	for _, d := range defs {
		if d.short != 0 && d.short == c {
			return d, true
		}
	}
	return keyDef{}, false
}

// Usage returns the --help text.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: relayd [OPTIONS]\n\n")
	b.WriteString("Every option is also a key in the config file's [" + DefaultConfigSection + "] section.\n\n")
	row := func(short byte, long, arg, help string) {
		s := "    "
		if short != 0 {
			s = fmt.Sprintf("-%c, ", short)
		}
		s += "--" + long
		if arg != "" {
			s += "=" + arg
		}
		fmt.Fprintf(&b, "  %-40s %s\n", s, help)
	}
	for _, d := range keyDefs() {
		row(d.short, d.name, d.argName, d.help)
	}
	row(0, flagConfigFile, "PATH", `config file, "none" for no file (default `+DefaultConfigFile+", if present)")
	row(0, flagConfigSection, "NAME", "section of the config file to read (default "+DefaultConfigSection+")")
	row('h', flagHelp, "", "print this help")
	return b.String()
}
