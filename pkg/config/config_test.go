// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testLoad runs the loader with an implicit config file that does not exist,
// so the machine's /etc/relayd cannot leak into tests.
func testLoad(t *testing.T, args ...string) (*Config, []string, error) {
	t.Helper()
	l := loader{defaultFile: filepath.Join(t.TempDir(), "absent.conf"), stdout: &bytes.Buffer{}}
	return l.load(args)
}

// writeConf writes content to a fresh file and returns its path.
func writeConf(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relayd.conf")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadFile loads content as the [rtpengine] section plus extra flags.
func loadFile(t *testing.T, content string, args ...string) (*Config, []string, error) {
	t.Helper()
	path := writeConf(t, content)
	return testLoad(t, append([]string{"--config-file=" + path}, args...)...)
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestDefault(t *testing.T) {
	c := Default()
	lo := addr("127.0.0.1")
	want := &Config{
		Interfaces:       []Interface{{Name: "default", Addr: lo, Advertised: lo}},
		ListenNG:         netip.MustParseAddrPort("127.0.0.1:2223"),
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
		EndpointLearning: "heuristic",
		XDP:              "auto",
		DTLSSignature:    "sha-256",
		XDPPinPath:       "/sys/fs/bpf/relayd",
		RedisExpires:     86400 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", c, want)
	}
}

func TestLoadNoFileEqualsDefault(t *testing.T) {
	c, warnings, err := testLoad(t)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q, want none", warnings)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load() =\n%+v\nwant Default()\n%+v", c, Default())
	}
}

// getters reads back the field each scalar key sets.
var getters = map[string]func(*Config) any{
	"listen-ng":         func(c *Config) any { return c.ListenNG },
	"ng-allow-from":     func(c *Config) any { return c.NGAllowFrom },
	"port-min":          func(c *Config) any { return c.PortMin },
	"port-max":          func(c *Config) any { return c.PortMax },
	"timeout":           func(c *Config) any { return c.Timeout },
	"silent-timeout":    func(c *Config) any { return c.SilentTimeout },
	"offer-timeout":     func(c *Config) any { return c.OfferTimeout },
	"final-timeout":     func(c *Config) any { return c.FinalTimeout },
	"delete-delay":      func(c *Config) any { return c.DeleteDelay },
	"tos":               func(c *Config) any { return c.TOS },
	"max-sessions":      func(c *Config) any { return c.MaxSessions },
	"log-level":         func(c *Config) any { return c.LogLevel },
	"pidfile":           func(c *Config) any { return c.PidFile },
	"foreground":        func(c *Config) any { return c.Foreground },
	"num-threads":       func(c *Config) any { return c.NumThreads },
	"endpoint-learning": func(c *Config) any { return c.EndpointLearning },
	"xdp":               func(c *Config) any { return c.XDP },
	"socket-sends":      func(c *Config) any { return c.SocketSends },
	"listen-http":       func(c *Config) any { return c.ListenHTTP },
	"listen-cli":        func(c *Config) any { return c.ListenCLI },
	"b2b-url":           func(c *Config) any { return c.B2BURL },
	"xmlrpc-format":     func(c *Config) any { return c.XMLRPCFormat },
}

func TestScalarKeysValid(t *testing.T) {
	tests := []struct {
		key, value string
		want       any
	}{
		{"listen-ng", "2223", netip.MustParseAddrPort("0.0.0.0:2223")},
		{"listen-ng", ":22222", netip.MustParseAddrPort("0.0.0.0:22222")},
		{"listen-ng", "10.0.1.20:2223", netip.MustParseAddrPort("10.0.1.20:2223")},
		{"listen-ng", "localhost:2223", netip.MustParseAddrPort("127.0.0.1:2223")},
		{"listen-ng", "[::1]:2223", netip.MustParseAddrPort("[::1]:2223")},
		{"listen-ng", "[2001:db8::1]:65535", netip.MustParseAddrPort("[2001:db8::1]:65535")},
		{"listen-ng", "[::ffff:10.0.0.1]:1", netip.MustParseAddrPort("10.0.0.1:1")},
		{"ng-allow-from", "10.0.1.5", []netip.Prefix{netip.MustParsePrefix("10.0.1.5/32")}},
		{"ng-allow-from", "10.0.1.5;192.0.2.0/24, 2001:db8::/32 ::1", []netip.Prefix{
			netip.MustParsePrefix("10.0.1.5/32"), netip.MustParsePrefix("192.0.2.0/24"),
			netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("::1/128")}},
		{"ng-allow-from", "192.0.2.77/24", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		{"ng-allow-from", "::ffff:10.0.0.0/104", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{"ng-allow-from", "", []netip.Prefix(nil)},
		{"port-min", "1024", 1024},
		{"port-min", "20000", 20000},
		{"port-max", "65535", 65535},
		{"port-max", "30001", 30001},
		{"timeout", "0", time.Duration(0)},
		{"timeout", "90", 90 * time.Second},
		{"silent-timeout", "7200", 7200 * time.Second},
		{"offer-timeout", "10", 10 * time.Second},
		{"final-timeout", "7200", 7200 * time.Second},
		{"final-timeout", "0", time.Duration(0)},
		{"delete-delay", "0", time.Duration(0)},
		{"delete-delay", "5", 5 * time.Second},
		{"tos", "0", 0},
		{"tos", "255", 255},
		{"tos", "46", 46},
		{"max-sessions", "-1", -1},
		{"max-sessions", "0", 0},
		{"max-sessions", "5000", 5000},
		{"log-level", "0", 0},
		{"log-level", "7", 7},
		{"pidfile", "/run/relayd/relayd.pid", "/run/relayd/relayd.pid"},
		{"pidfile", "", ""},
		{"foreground", "true", true},
		{"foreground", "yes", true},
		{"foreground", "1", true},
		{"foreground", "on", true},
		{"foreground", "TRUE", true},
		{"foreground", "false", false},
		{"foreground", "no", false},
		{"foreground", "0", false},
		{"foreground", "off", false},
		{"num-threads", "0", runtime.NumCPU()},
		{"num-threads", "8", 8},
		{"endpoint-learning", "off", "off"},
		{"endpoint-learning", "immediate", "immediate"},
		{"endpoint-learning", "delayed", "delayed"},
		{"endpoint-learning", "heuristic", "heuristic"},
		{"socket-sends", "yes", true},
		{"socket-sends", "no", false},
		{"xdp", "off", "off"},
		{"xdp", "Native", "native"},
		{"xdp", "generic", "generic"},
		{"endpoint-learning", "Delayed", "delayed"},
		{"listen-http", "127.0.0.1:2225", netip.MustParseAddrPort("127.0.0.1:2225")},
		{"listen-http", "9101", netip.MustParseAddrPort("0.0.0.0:9101")},
		{"listen-http", "", netip.AddrPort{}},
		{"listen-cli", "localhost:2224", netip.MustParseAddrPort("127.0.0.1:2224")},
		{"listen-cli", "[::1]:2224", netip.MustParseAddrPort("[::1]:2224")},
		{"b2b-url", "http://127.0.0.1:5060/RPC2", "http://127.0.0.1:5060/RPC2"},
		{"b2b-url", "http://%%:8090/", "http://%%:8090/"},
		{"b2b-url", "", ""},
		{"xmlrpc-format", "0", 0},
		{"xmlrpc-format", "2", 2},
	}
	for _, tc := range tests {
		for _, via := range []string{"file", "flag"} {
			t.Run(via+"/"+tc.key+"="+tc.value, func(t *testing.T) {
				var (
					c   *Config
					err error
				)
				if via == "file" {
					c, _, err = loadFile(t, "[rtpengine]\n"+tc.key+" = "+tc.value+"\n")
				} else {
					c, _, err = testLoad(t, "--"+tc.key+"="+tc.value)
				}
				if err != nil {
					t.Fatalf("error = %v, want none", err)
				}
				if got := getters[tc.key](c); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s = %v (%T), want %v (%T)", tc.key, got, got, tc.want, tc.want)
				}
			})
		}
	}
}

func TestKeysInvalid(t *testing.T) {
	tests := []struct {
		key, value string
		reason     string // substring of the cause
	}{
		{"listen-ng", "", "port"},
		{"listen-ng", "abc", "port"},
		{"listen-ng", "0", "between 1 and 65535"},
		{"listen-ng", "65536", "between 1 and 65535"},
		{"listen-ng", "10.0.0.1:", "between 1 and 65535"},
		{"listen-ng", "10.0.0.1:x", "between 1 and 65535"},
		{"listen-ng", "example.com:2223", "not an IPv4 or IPv6 address"},
		{"listen-ng", "2001:db8::1:2223", "brackets"},
		{"listen-ng", "10.0.0.256:2223", "not an IPv4 or IPv6 address"},
		{"ng-allow-from", "kamailio.example", "not an address or ADDR/LEN prefix"},
		{"ng-allow-from", "10.0.0.0/33", "not an address or ADDR/LEN prefix"},
		{"ng-allow-from", "::ffff:10.0.0.0/8", "at least /96"},
		{"ng-allow-from", "fe80::1%eth0", "zones"},
		{"port-min", "abc", "not an integer"},
		{"port-min", "", "not an integer"},
		{"port-min", "1023", "between 1024 and 65535"},
		{"port-min", "65536", "between 1024 and 65535"},
		{"port-min", "99999999999999999999", "between 1024 and 65535"},
		{"port-max", "-5", "between 1024 and 65535"},
		{"port-max", "30000.5", "not an integer"},
		{"timeout", "-1", "negative"},
		{"timeout", "1m", "whole number of seconds"},
		{"timeout", "1.5", "whole number of seconds"},
		{"silent-timeout", "abc", "whole number of seconds"},
		{"offer-timeout", "", "whole number of seconds"},
		{"final-timeout", "9223372037", "at most"},
		{"final-timeout", "99999999999999999999", "at most"},
		{"delete-delay", "-30", "negative"},
		{"tos", "256", "between 0 and 255"},
		{"tos", "-1", "between 0 and 255"},
		{"tos", "0xb8", "not an integer"},
		{"max-sessions", "-2", "between -1 and"},
		{"max-sessions", "many", "not an integer"},
		{"log-level", "8", "between 0 and 7"},
		{"log-level", "-1", "between 0 and 7"},
		{"log-level", "debug", "not an integer"},
		{"foreground", "maybe", "not a boolean"},
		{"foreground", "", "not a boolean"},
		{"num-threads", "-1", "between 0 and"},
		{"num-threads", "100000000", "between 0 and"},
		{"endpoint-learning", "sometimes", "one of off, immediate, delayed, heuristic"},
		{"endpoint-learning", "", "one of"},
		{"xdp", "kernel", "want auto, native, generic or off"},
		{"listen-http", "abc", "port"},
		{"listen-cli", "127.0.0.1:0", "between 1 and 65535"},
		{"b2b-url", "127.0.0.1:8090", "http:// or https://"},
		{"b2b-url", "ftp://example.com/", "http:// or https://"},
		{"b2b-url", "http:///RPC2", "no host"},
		{"xmlrpc-format", "3", "between 0 and 2"},
		{"interface", "", "empty interface list"},
		{"interface", "eth0", "not an IPv4 or IPv6 address"},
		{"interface", "any", "not an IPv4 or IPv6 address"},
		{"interface", "a/1.2.3.4;a/5.6.7.8", `duplicate interface name "a"`},
	}
	for _, tc := range tests {
		for _, via := range []string{"file", "flag"} {
			t.Run(via+"/"+tc.key+"="+tc.value, func(t *testing.T) {
				var err error
				var wantSource string
				if via == "file" {
					path := writeConf(t, "[rtpengine]\n# comment\n"+tc.key+" = "+tc.value+"\n")
					_, _, err = testLoad(t, "--config-file", path)
					wantSource = path + ":3"
				} else {
					_, _, err = testLoad(t, "--"+tc.key+"="+tc.value)
					wantSource = "command line"
				}
				checkValueError(t, err, tc.key, tc.value, tc.reason)
				var ve *ValueError
				if errors.As(err, &ve) && ve.Source != wantSource {
					t.Errorf("Source = %q, want %q", ve.Source, wantSource)
				}
			})
		}
	}
}

func checkValueError(t *testing.T, err error, key, value, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want invalid value %q for %q", value, key)
	}
	if !errors.Is(err, ErrInvalidValue) {
		t.Errorf("errors.Is(%v, ErrInvalidValue) = false", err)
	}
	var ve *ValueError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValueError", err)
	}
	if ve.Key != key || ve.Value != value {
		t.Errorf("ValueError key/value = %q/%q, want %q/%q", ve.Key, ve.Value, key, value)
	}
	prefix := `config: invalid value "` + value + `" for key "` + key + `": `
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, reason) {
		t.Errorf("error = %q\nwant prefix %q and containing %q", msg, prefix, reason)
	}
}

func TestPortRange(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantMin    int
		wantMax    int
		errKey     string
		errValue   string
		wantReason string
	}{
		{name: "one pair", args: []string{"--port-min=30000", "--port-max=30001"}, wantMin: 30000, wantMax: 30001},
		{name: "odd min", args: []string{"--port-min=30001", "--port-max=30003"}, wantMin: 30001, wantMax: 30003},
		{name: "min above default max", args: []string{"--port-min=50000", "--port-max=60000"}, wantMin: 50000, wantMax: 60000},
		{name: "min greater than max", args: []string{"--port-min=40000", "--port-max=30000"},
			errKey: "port-max", errValue: "30000", wantReason: "greater than port-max"},
		{name: "only min set, above default max", args: []string{"--port-min=45000"},
			errKey: "port-min", errValue: "45000", wantReason: "port-min 45000 is greater than port-max 40000"},
		{name: "single port", args: []string{"-m", "30000", "-M", "30000"},
			errKey: "port-max", errValue: "30000", wantReason: "no even/odd port pair"},
		{name: "odd even no pair", args: []string{"--port-min=30001", "--port-max=30002"},
			errKey: "port-max", errValue: "30002", wantReason: "no even/odd port pair"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := testLoad(t, tc.args...)
			if tc.errKey != "" {
				checkValueError(t, err, tc.errKey, tc.errValue, tc.wantReason)
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if c.PortMin != tc.wantMin || c.PortMax != tc.wantMax {
				t.Errorf("ports = %d-%d, want %d-%d", c.PortMin, c.PortMax, tc.wantMin, tc.wantMax)
			}
		})
	}
}

func TestParseInterface(t *testing.T) {
	tests := []struct {
		spec    string
		want    Interface
		wantErr string
	}{
		{spec: "10.0.0.1", want: Interface{"default", addr("10.0.0.1"), addr("10.0.0.1")}},
		{spec: " 10.0.0.1 ", want: Interface{"default", addr("10.0.0.1"), addr("10.0.0.1")}},
		{spec: "internal/10.0.1.20", want: Interface{"internal", addr("10.0.1.20"), addr("10.0.1.20")}},
		{spec: "external/10.0.1.20!203.0.113.20", want: Interface{"external", addr("10.0.1.20"), addr("203.0.113.20")}},
		{spec: "10.0.1.20!203.0.113.20", want: Interface{"default", addr("10.0.1.20"), addr("203.0.113.20")}},
		{spec: "2001:db8::1", want: Interface{"default", addr("2001:db8::1"), addr("2001:db8::1")}},
		{spec: "internal/2001:db8::1!2001:db8::2", want: Interface{"internal", addr("2001:db8::1"), addr("2001:db8::2")}},
		{spec: "v6/[2001:db8::1]![2001:db8::2]", want: Interface{"v6", addr("2001:db8::1"), addr("2001:db8::2")}},
		{spec: "pub:1/192.0.2.1", want: Interface{"pub:1", addr("192.0.2.1"), addr("192.0.2.1")}},
		{spec: "lo/::ffff:127.0.0.1", want: Interface{"lo", addr("127.0.0.1"), addr("127.0.0.1")}},
		{spec: "any/0.0.0.0!192.0.2.1", want: Interface{"any", addr("0.0.0.0"), addr("192.0.2.1")}},
		{spec: "", wantErr: "missing address"},
		{spec: "internal/", wantErr: "missing address"},
		{spec: "/10.0.0.1", wantErr: "empty interface name"},
		{spec: "a b/10.0.0.1", wantErr: "contains"},
		{spec: "a!b/10.0.0.1", wantErr: "contains"},
		{spec: "10.0.0.1/24", wantErr: "prefix lengths"},
		{spec: "eth0", wantErr: "not an IPv4 or IPv6 address"},
		{spec: "x/10.0.0.1!", wantErr: "advertised: missing address"},
		{spec: "x/10.0.0.1!nope", wantErr: "advertised"},
		{spec: "x/10.0.0.1!2001:db8::1", wantErr: "same family"},
		{spec: "x/2001:db8::1!192.0.2.1", wantErr: "same family"},
		{spec: "x/0.0.0.0", wantErr: "needs an !ADVERTISED"},
		{spec: "x/10.0.0.1!0.0.0.0", wantErr: "needs an !ADVERTISED"},
		{spec: "x/fe80::1%eth0", wantErr: "zoned"},
		{spec: "x/224.0.0.1", wantErr: "multicast"},
		{spec: "x/y/10.0.0.1", wantErr: "not an IPv4 or IPv6 address"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := parseInterface(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseInterface(%q) = %+v, %v; want error containing %q", tc.spec, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseInterface(%q) error = %v", tc.spec, err)
			}
			if got != tc.want {
				t.Errorf("parseInterface(%q) = %+v, want %+v", tc.spec, got, tc.want)
			}
		})
	}
}

func TestInterfaceLists(t *testing.T) {
	a, b, pub := addr("10.0.0.1"), addr("10.0.0.2"), addr("203.0.113.1")
	tests := []struct {
		name string
		file string
		args []string
		want []Interface
	}{
		{name: "none is loopback default", want: Default().Interfaces},
		{name: "file lines accumulate in order",
			file: "interface = int/10.0.0.1\ninterface = ext/10.0.0.2\n",
			want: []Interface{{"int", a, a}, {"ext", b, b}}},
		{name: "semicolon list",
			file: "interface = int/10.0.0.1;ext/10.0.0.2 ; \n",
			want: []Interface{{"int", a, a}, {"ext", b, b}}},
		{name: "shared address",
			file: "interface = int/10.0.0.1\ninterface = ext/10.0.0.1!203.0.113.1\n",
			want: []Interface{{"int", a, a}, {"ext", a, pub}}},
		{name: "flag replaces file list",
			file: "interface = int/10.0.0.1\ninterface = ext/10.0.0.2\n",
			args: []string{"--interface=x/10.0.0.2"},
			want: []Interface{{"x", b, b}}},
		{name: "repeated flags accumulate, short and long",
			file: "interface = int/10.0.0.1\n",
			args: []string{"-i", "x/10.0.0.2", "--interface", "y/10.0.0.1", "-iz/10.0.0.2!203.0.113.1"},
			want: []Interface{{"x", b, b}, {"y", a, a}, {"z", b, pub}}},
		{name: "flag may reuse a file name",
			file: "interface = int/10.0.0.1\n",
			args: []string{"--interface=int/10.0.0.2"},
			want: []Interface{{"int", b, b}}},
		{name: "unnamed flag",
			args: []string{"--interface=10.0.0.2"},
			want: []Interface{{"default", b, b}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := loadFile(t, "[rtpengine]\n"+tc.file, tc.args...)
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if !reflect.DeepEqual(c.Interfaces, tc.want) {
				t.Errorf("Interfaces = %+v, want %+v", c.Interfaces, tc.want)
			}
		})
	}
}

func TestDuplicateInterfaceNames(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		value      string
	}{
		{name: "file", file: "interface = a/10.0.0.1\ninterface = a/10.0.0.2\n", value: "a/10.0.0.2"},
		{name: "two unnamed", file: "interface = 10.0.0.1\ninterface = 10.0.0.2\n", value: "10.0.0.2"},
		{name: "flags", args: []string{"-i", "b/10.0.0.1", "-i", "b/10.0.0.3"}, value: "b/10.0.0.3"},
		{name: "v6 twice", file: "interface = a/2001:db8::1;a/2001:db8::2\n", value: "a/2001:db8::1;a/2001:db8::2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadFile(t, "[rtpengine]\n"+tc.file, tc.args...)
			checkValueError(t, err, "interface", tc.value, "duplicate interface name")
		})
	}
}

// A logical interface may have one IPv4 and one IPv6 address (dual stack).
func TestDualStackInterface(t *testing.T) {
	c, _, err := loadFile(t, "[rtpengine]\ninterface = pub/192.0.2.1;pub/2001:db8::1\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Interfaces) != 2 || c.Interfaces[0].Name != "pub" || c.Interfaces[1].Name != "pub" || !c.Interfaces[1].Addr.Is6() {
		t.Errorf("Interfaces = %+v", c.Interfaces)
	}
}

func TestFlagsOverrideFile(t *testing.T) {
	file := `[rtpengine]
listen-ng = 10.0.1.20:2223
port-min = 20000
port-max = 40000
timeout = 60
tos = 184
log-level = 5
foreground = true
pidfile = /run/a.pid
endpoint-learning = off
`
	c, _, err := loadFile(t, file,
		"--listen-ng", "127.0.0.1:9999",
		"-m", "31000",
		"--timeout=5",
		"-T", "0",
		"-L7",
		"--foreground=false",
		"-p", "/tmp/b.pid",
		"--endpoint-learning=delayed",
		"--max-sessions", "-1",
	)
	if err != nil {
		t.Fatalf("error = %v", err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen-ng", c.ListenNG, netip.MustParseAddrPort("127.0.0.1:9999")},
		{"port-min", c.PortMin, 31000},
		{"port-max (from file)", c.PortMax, 40000},
		{"timeout", c.Timeout, 5 * time.Second},
		{"tos", c.TOS, 0},
		{"log-level", c.LogLevel, 7},
		{"foreground", c.Foreground, false},
		{"pidfile", c.PidFile, "/tmp/b.pid"},
		{"endpoint-learning", c.EndpointLearning, "delayed"},
		{"max-sessions", c.MaxSessions, -1},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.key, ch.got, ch.want)
		}
	}
}

func TestInvalidFileValueNotHiddenByFlag(t *testing.T) {
	_, _, err := loadFile(t, "[rtpengine]\nport-min = abc\n", "--port-min=30000")
	checkValueError(t, err, "port-min", "abc", "not an integer")
}

func TestLastValueWins(t *testing.T) {
	c, _, err := loadFile(t, "[rtpengine]\ntos = 1\n[other]\ntos = 2\n[rtpengine]\ntos = 3\n", "-T", "4", "--tos=5")
	if err != nil {
		t.Fatal(err)
	}
	if c.TOS != 5 {
		t.Errorf("TOS = %d, want 5 (last flag)", c.TOS)
	}
	c, _, err = loadFile(t, "[rtpengine]\ntos = 1\n[other]\ntos = 2\n[rtpengine]\ntos = 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.TOS != 3 {
		t.Errorf("TOS = %d, want 3 (last rtpengine value, other section ignored)", c.TOS)
	}
}

func TestFlagForms(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want func(*Config) bool
	}{
		{"long equals", []string{"--port-min=20000"}, func(c *Config) bool { return c.PortMin == 20000 }},
		{"long space", []string{"--port-min", "20000"}, func(c *Config) bool { return c.PortMin == 20000 }},
		{"short space", []string{"-m", "20000"}, func(c *Config) bool { return c.PortMin == 20000 }},
		{"short attached", []string{"-m20000"}, func(c *Config) bool { return c.PortMin == 20000 }},
		{"short -M", []string{"-M", "50000"}, func(c *Config) bool { return c.PortMax == 50000 }},
		{"short -n", []string{"-n", "2224"}, func(c *Config) bool { return c.ListenNG == netip.MustParseAddrPort("0.0.0.0:2224") }},
		{"short -o", []string{"-o", "5"}, func(c *Config) bool { return c.Timeout == 5*time.Second }},
		{"short -L", []string{"-L", "7"}, func(c *Config) bool { return c.LogLevel == 7 }},
		{"short -p", []string{"-p", "/x.pid"}, func(c *Config) bool { return c.PidFile == "/x.pid" }},
		{"negative value as next arg", []string{"--max-sessions", "-1"}, func(c *Config) bool { return c.MaxSessions == -1 }},
		{"bool long", []string{"--foreground"}, func(c *Config) bool { return c.Foreground }},
		{"bool short", []string{"-f"}, func(c *Config) bool { return c.Foreground }},
		{"bool long false", []string{"-f", "--foreground=no"}, func(c *Config) bool { return !c.Foreground }},
		{"bool does not eat next arg", []string{"--foreground", "-T", "1"}, func(c *Config) bool { return c.Foreground && c.TOS == 1 }},
		{"double dash ends flags", []string{"-f", "--"}, func(c *Config) bool { return c.Foreground }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := testLoad(t, tc.args...)
			if err != nil {
				t.Fatalf("Load(%q) error = %v", tc.args, err)
			}
			if !tc.want(c) {
				t.Errorf("Load(%q) = %+v, check failed", tc.args, c)
			}
		})
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantIs  error
		wantMsg string
	}{
		{"unknown long", []string{"--log-facility=daemon"}, ErrUnknownFlag, `config: unknown flag "--log-facility"`},
		{"unknown short", []string{"-Q"}, ErrUnknownFlag, `unknown flag "-Q"`},
		{"bool short with junk", []string{"-fx"}, ErrUnknownFlag, `unknown flag "-fx"`},
		{"missing value", []string{"--port-min"}, ErrMissingValue, `"--port-min": flag needs a value`},
		{"missing short value", []string{"-T"}, ErrMissingValue, `"-T": flag needs a value`},
		{"positional", []string{"start"}, ErrUnexpectedArgument, `unexpected argument "start"`},
		{"lone dash", []string{"-"}, ErrUnexpectedArgument, `unexpected argument "-"`},
		{"after double dash", []string{"--", "x"}, ErrUnexpectedArgument, `unexpected argument "x"`},
		{"empty config file", []string{"--config-file="}, ErrInvalidValue, `for key "config-file"`},
		{"empty config section", []string{"--config-section", ""}, ErrInvalidValue, `for key "config-section"`},
		{"bad bool flag", []string{"--foreground=perhaps"}, ErrInvalidValue, `invalid value "perhaps" for key "foreground"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := testLoad(t, tc.args...)
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Load(%q) error = %v, want errors.Is %v", tc.args, err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--port-min=1", "-h"}} {
		var out bytes.Buffer
		l := loader{defaultFile: filepath.Join(t.TempDir(), "absent.conf"), stdout: &out}
		c, _, err := l.load(args)
		if !errors.Is(err, ErrHelp) || c != nil {
			t.Errorf("load(%q) = %v, %v; want nil, ErrHelp", args, c, err)
		}
		if out.String() != Usage() {
			t.Errorf("load(%q) printed %q, want Usage()", args, out.String())
		}
	}
	usage := Usage()
	for _, def := range keyDefs() {
		if !strings.Contains(usage, "--"+def.name) {
			t.Errorf("Usage() does not mention --%s", def.name)
		}
	}
	for _, s := range []string{"--config-file", "--config-section", "-h, --help", "-i, --interface"} {
		if !strings.Contains(usage, s) {
			t.Errorf("Usage() does not mention %q", s)
		}
	}
}

func TestUnknownKeysWarnOncePerKey(t *testing.T) {
	file := `[rtpengine]
log-facility = daemon
table = 0
log-facility = local0
redis-num-threads = 4
table = -1
config-file = /etc/other.conf
[other]
not-ours = 1
`
	_, warnings, err := loadFile(t, file)
	if err != nil {
		t.Fatalf("error = %v", err)
	}
	want := []string{
		`unknown key "log-facility" ignored`,
		`unknown key "table" ignored`,
		`unknown key "redis-num-threads" ignored`,
		`unknown key "config-file" ignored`,
	}
	if !reflect.DeepEqual(warnings, want) {
		t.Errorf("warnings =\n%q\nwant\n%q", warnings, want)
	}
}

func TestSeedFile(t *testing.T) {
	c, warnings, err := testLoad(t, "--config-file", "testdata/rtpengine.conf")
	if err != nil {
		t.Fatalf("loading the seed file: %v", err)
	}
	a, pub := addr("10.0.1.20"), addr("203.0.113.20")
	want := &Config{
		Interfaces:       []Interface{{"internal", a, a}, {"external", a, pub}},
		ListenNG:         netip.MustParseAddrPort("10.0.1.20:2223"),
		PortMin:          20000,
		PortMax:          40000,
		Timeout:          60 * time.Second,
		SilentTimeout:    3600 * time.Second,
		OfferTimeout:     3600 * time.Second,
		FinalTimeout:     7200 * time.Second,
		DeleteDelay:      30 * time.Second,
		TOS:              184,
		MaxSessions:      -1,
		LogLevel:         5,
		PidFile:          "/run/rtpengine/rtpengine.pid",
		Foreground:       false,
		NumThreads:       runtime.NumCPU(),
		EndpointLearning: "heuristic",
		XDP:              "auto",
		DTLSSignature:    "sha-256",
		XDPPinPath:       "/sys/fs/bpf/relayd",
		RedisExpires:     86400 * time.Second,
		ConfigFile:       "testdata/rtpengine.conf",
		ConfigSection:    "rtpengine",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("seed file =\n%+v\nwant\n%+v", c, want)
	}
	wantWarn := []string{`unknown key "log-facility" ignored`, `unknown key "log-facility-cdr" ignored`}
	if !reflect.DeepEqual(warnings, wantWarn) {
		t.Errorf("warnings = %q, want %q", warnings, wantWarn)
	}
}

func TestConfigFileSelection(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "relayd.conf")
	if err := os.WriteFile(present, []byte("[rtpengine]\ntos = 1\n[alt]\ntos = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent.conf")
	tests := []struct {
		name        string
		defaultFile string
		args        []string
		wantTOS     int
		wantFile    string
		wantSection string
		wantErr     error
		wantWarn    int
	}{
		{name: "implicit default absent", defaultFile: absent, wantTOS: 184},
		{name: "implicit default present", defaultFile: present, wantTOS: 1, wantFile: present, wantSection: "rtpengine"},
		{name: "explicit present", defaultFile: absent, args: []string{"--config-file", present},
			wantTOS: 1, wantFile: present, wantSection: "rtpengine"},
		{name: "explicit missing", defaultFile: present, args: []string{"--config-file=" + absent}, wantErr: fs.ErrNotExist},
		{name: "none skips default", defaultFile: present, args: []string{"--config-file=none"}, wantTOS: 184},
		{name: "none with section", defaultFile: present, args: []string{"--config-file=none", "--config-section=x"}, wantTOS: 184},
		{name: "other section", defaultFile: present, args: []string{"--config-section=alt"},
			wantTOS: 2, wantFile: present, wantSection: "alt"},
		{name: "explicit section missing", defaultFile: present, args: []string{"--config-section", "nope"},
			wantErr: ErrSectionNotFound},
		{name: "explicit section, no default file", defaultFile: absent, args: []string{"--config-section", "nope"}, wantTOS: 184},
		{name: "last config-file wins", defaultFile: absent, args: []string{"--config-file=" + absent, "--config-file", present},
			wantTOS: 1, wantFile: present, wantSection: "rtpengine"},
		{name: "directory", defaultFile: absent, args: []string{"--config-file", dir}, wantErr: errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := loader{defaultFile: tc.defaultFile, stdout: &bytes.Buffer{}}
			c, warnings, err := l.load(tc.args)
			if tc.wantErr != nil {
				if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if c.TOS != tc.wantTOS || c.ConfigFile != tc.wantFile || c.ConfigSection != tc.wantSection {
				t.Errorf("TOS, file, section = %d, %q, %q; want %d, %q, %q",
					c.TOS, c.ConfigFile, c.ConfigSection, tc.wantTOS, tc.wantFile, tc.wantSection)
			}
			if len(warnings) != tc.wantWarn {
				t.Errorf("warnings = %q, want %d", warnings, tc.wantWarn)
			}
		})
	}
}

// errAny marks a test case that only needs some error.
var errAny = errors.New("any error")

func TestImplicitSectionMissingWarns(t *testing.T) {
	c, warnings, err := loadFile(t, "[something-else]\ntos = 1\n")
	if err != nil {
		t.Fatalf("error = %v", err)
	}
	if c.TOS != 184 {
		t.Errorf("TOS = %d, want default 184", c.TOS)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "section [rtpengine] not found") {
		t.Errorf("warnings = %q, want one about the missing section", warnings)
	}
}

func TestFileSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"no equals", "[rtpengine]\ntos 184\n", `:2: syntax error: expected "key = value"`},
		{"empty key", "[rtpengine]\n = 184\n", ":2: syntax error: missing key"},
		{"unterminated section", "[rtpengine\ntos = 1\n", ":1: syntax error: unterminated section header"},
		{"empty section", "[ ]\n", ":1: syntax error: empty section name"},
		{"unterminated quote", "[rtpengine]\npidfile = \"/run/x\n", `:2: syntax error: key "pidfile": unterminated quote`},
		{"text after quote", "[rtpengine]\npidfile = \"/run/x\" y\n", ":2: syntax error: key \"pidfile\": text after closing quote"},
		{"broken line in other section", "[other]\nbroken\n[rtpengine]\ntos = 1\n", ":2: syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConf(t, tc.file)
			_, _, err := testLoad(t, "--config-file", path)
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error = %v, want ErrSyntax", err)
			}
			if want := "config: " + path + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q\nwant prefix %q", err, want)
			}
		})
	}
}

func TestParseINI(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		want      []entry
		wantFound bool
	}{
		{name: "inline comments and whitespace",
			data:      "[rtpengine]\n  timeout = 60 # RTP timeout\ntos=184\t# EF\nkey = a#b\nempty =\nhash = #only comment\n",
			want:      []entry{{"timeout", "60", 2}, {"tos", "184", 3}, {"key", "a#b", 4}, {"empty", "", 5}, {"hash", "", 6}},
			wantFound: true},
		{name: "full-line comments",
			data:      "# a\n; b\n[rtpengine]\n  # c\n\t; d\nx = 1\n",
			want:      []entry{{"x", "1", 6}},
			wantFound: true},
		{name: "semicolon is not an inline comment",
			data:      "[rtpengine]\ninterface = a/1.2.3.4;b/5.6.7.8 ; \n",
			want:      []entry{{"interface", "a/1.2.3.4;b/5.6.7.8 ;", 2}},
			wantFound: true},
		{name: "quotes",
			data:      "[rtpengine]\na = \"x y\"\nb = 'z' # c\nc = \"#not comment\"\nd = \"\"\ne = x\"y\"\n",
			want:      []entry{{"a", "x y", 2}, {"b", "z", 3}, {"c", "#not comment", 4}, {"d", "", 5}, {"e", "x\"y\"", 6}},
			wantFound: true},
		{name: "value with equals",
			data:      "[rtpengine]\na = b=c\n",
			want:      []entry{{"a", "b=c", 2}},
			wantFound: true},
		{name: "CRLF and BOM",
			data:      "\xef\xbb\xbf[rtpengine]\r\na = 1\r\n",
			want:      []entry{{"a", "1", 2}},
			wantFound: true},
		{name: "header with spaces and comment",
			data:      "[ rtpengine ] # main\na = 1\n",
			want:      []entry{{"a", "1", 2}},
			wantFound: true},
		{name: "other sections and keys before any section ignored",
			data: "a = 0\n[x]\na = 1\n[rtpengine]\nb = 2\n[y]\nc = 3\n",
			want: []entry{{"b", "2", 5}}, wantFound: true},
		{name: "section names are case sensitive",
			data: "[RTPengine]\na = 1\n"},
		{name: "empty file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := parseINI([]byte(tc.data), "rtpengine")
			if err != nil {
				t.Fatalf("parseINI error = %v", err)
			}
			if found != tc.wantFound || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseINI = %+v, found %v\nwant %+v, found %v", got, found, tc.want, tc.wantFound)
			}
		})
	}
}

func TestSlogLevel(t *testing.T) {
	want := []slog.Level{
		slog.LevelError, slog.LevelError, slog.LevelError, slog.LevelError,
		slog.LevelWarn, slog.LevelInfo, slog.LevelInfo, slog.LevelDebug,
	}
	for lvl, w := range want {
		c := &Config{LogLevel: lvl}
		if got := c.SlogLevel(); got != w {
			t.Errorf("SlogLevel(log-level %d) = %v, want %v", lvl, got, w)
		}
	}
}

func TestDTLSSignature(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"SHA-256", "sha-256"}, {"sha-1", "sha-1"}, {"SHA512", "sha-512"}, {"sha_384", "sha-384"}, {"md5", ""},
	} {
		c, _, err := Load([]string{"--config-file=none", "--dtls-signature=" + tc.in})
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "dtls-signature") {
				t.Errorf("%q: error %v, want one naming dtls-signature", tc.in, err)
			}
			continue
		}
		if err != nil || c.DTLSSignature != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, c.DTLSSignature, err, tc.want)
		}
	}
}

func TestXDPPinPath(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
		bad       bool
	}{
		{"", "/sys/fs/bpf/relayd", false},
		{"--xdp-pin-path=/run/bpf/relayd-a", "/run/bpf/relayd-a", false},
		{"--xdp-pin-path=none", "", false},
		{"--xdp-pin-path=relative", "", true},
	} {
		args := []string{"--config-file=none"}
		if tc.arg != "" {
			args = append(args, tc.arg)
		}
		c, _, err := Load(args)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "xdp-pin-path") {
				t.Errorf("%s: got %v, want an error naming the key", tc.arg, err)
			}
			continue
		}
		if err != nil || c.XDPPinPath != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.arg, c.XDPPinPath, err, tc.want)
		}
	}
}

// The incumbent's HA keys: addresses with or without a password and a
// database (redis-db fills in the missing one), the keyspace list, the
// switches; a bad value names its key and never shows the password.
func TestRedisKeys(t *testing.T) {
	c, _, err := loadFile(t, `[rtpengine]
redis = s3cret@10.0.0.5:6379/2
redis-write = [2001:db8::5]:6380
redis-db = 4
redis-expires = 600
subscribe-keyspace = 2;3;2
no-redis-required = yes
active-switchover = true
node-name = relay-a
`)
	if err != nil {
		t.Fatal(err)
	}
	want := struct {
		r, w, s RedisAddr
		ks      []int
	}{RedisAddr{"10.0.0.5:6379", "s3cret", 2}, RedisAddr{"[2001:db8::5]:6380", "", 4}, RedisAddr{}, []int{2, 3}}
	if c.Redis != want.r || c.RedisWrite != want.w || c.RedisSubscribe != want.s || !reflect.DeepEqual(c.SubscribeKeyspace, want.ks) {
		t.Errorf("redis %+v write %+v subscribe %+v keyspace %v", c.Redis, c.RedisWrite, c.RedisSubscribe, c.SubscribeKeyspace)
	}
	if c.RedisExpires != 10*time.Minute || !c.NoRedisRequired || !c.ActiveSwitchover || c.NodeName != "relay-a" {
		t.Errorf("expires %v no-redis-required %v active-switchover %v node %q", c.RedisExpires, c.NoRedisRequired, c.ActiveSwitchover, c.NodeName)
	}
	if got := c.Redis.String(); strings.Contains(got, "s3cret") || got != "10.0.0.5:6379/2" {
		t.Errorf("String() = %q", got)
	}
	for _, tc := range []struct {
		args []string
		key  string
	}{
		{[]string{"--redis=pw@10.0.0.5"}, "redis"},
		{[]string{"--redis=pw@10.0.0.5:99999/1"}, "redis"},
		{[]string{"--redis-write=10.0.0.5:6379/x"}, "redis-write"},
		{[]string{"--subscribe-keyspace=1;two"}, "subscribe-keyspace"},
		{[]string{"--subscribe-keyspace=1"}, "subscribe-keyspace"}, // nothing to follow
		{[]string{"--redis-expires=-1"}, "redis-expires"},
		{[]string{"--node-name= "}, "node-name"},
	} {
		_, _, err := testLoad(t, append([]string{"--config-file=none"}, tc.args...)...)
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Key != tc.key {
			t.Errorf("%v: error %v, want one naming %q", tc.args, err, tc.key)
			continue
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%v: the password is in the error: %v", tc.args, err)
		}
	}
	// Following another server without redis.
	c, _, err = testLoad(t, "--config-file=none", "--redis-subscribe=10.0.0.6:6379", "--subscribe-keyspace=1")
	if err != nil || c.RedisSubscribe.DB != 0 || !reflect.DeepEqual(c.SubscribeKeyspace, []int{1}) {
		t.Errorf("redis-subscribe alone: %+v %v, %v", c.RedisSubscribe, c.SubscribeKeyspace, err)
	}
}
