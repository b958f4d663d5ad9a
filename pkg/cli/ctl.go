// SPDX-License-Identifier: Apache-2.0

package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/relayd/relayd/pkg/config"
)

// DefaultCLIAddr is where `relayd ctl` connects when neither a flag nor the
// config file names listen-cli: the shipped config's address.
const DefaultCLIAddr = "127.0.0.1:2224"

const ctlUsage = `usage: relayd ctl [-ip ADDR[:PORT]] [-port PORT] [-config-file PATH] COMMAND...

Sends COMMAND to relayd's listen-cli, as the incumbent's rtpengine-ctl does,
and prints the reply. Without -ip/-port the address is listen-cli from the
config file (default ` + config.DefaultConfigFile + `), else ` + DefaultCLIAddr + `.

  list numsessions | maxsessions | sessions all|own|foreign|CALLID | totals |
       counters | jsonstats | interfaces | timeout | silenttimeout |
       offertimeout | finaltimeout | deletedelay | loglevel | maxopenfiles
  get ...                        (same as list)
  terminate CALLID | all | own | foreign
  active                         take every foreign call over (HA: this relay is active)
  standby                        make every own call foreign (HA: another relay is active)
  set maxsessions N              (-1 unlimited, 0 drains: new calls refused)
  set timeout|silenttimeout|offertimeout|finaltimeout|deletedelay SECONDS
  set loglevel 0-7
`

// Main runs `relayd ctl` and returns the exit code: 0 when relayd answered,
// 1 when it could not be reached, 2 for a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relayd ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage) }
	ip := fs.String("ip", "", "relayd's CLI address, ADDR or ADDR:PORT")
	port := fs.Int("port", 0, "relayd's CLI port")
	cfgFile := fs.String("config-file", config.DefaultConfigFile, "relayd config file to read listen-cli from")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	addr, err := ctlAddr(*ip, *port, *cfgFile)
	if err != nil {
		fmt.Fprintln(stderr, "relayd ctl:", err)
		return 2
	}
	reply, err := Send(addr, strings.Join(fs.Args(), " "), *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "relayd ctl:", err)
		return 1
	}
	_, _ = io.WriteString(stdout, reply)
	return 0
}

// ctlAddr resolves the address the way rtpengine-ctl does: flags first,
// then listen-cli from the config file.
func ctlAddr(ip string, port int, cfgFile string) (string, error) {
	host, p := "", ""
	if ip != "" {
		if h, pp, err := net.SplitHostPort(ip); err == nil {
			host, p = h, pp
		} else {
			host = strings.Trim(ip, "[]")
		}
	}
	if port != 0 {
		p = strconv.Itoa(port)
	}
	if host == "" || p == "" {
		def, err := configCLIAddr(cfgFile)
		if err != nil {
			return "", err
		}
		dh, dp, _ := net.SplitHostPort(def)
		if host == "" {
			host = dh
		}
		if p == "" {
			p = dp
		}
	}
	return net.JoinHostPort(host, p), nil
}

// configCLIAddr reads listen-cli from the config file; a missing default
// file or key gives DefaultCLIAddr. A wildcard address is reached on
// loopback.
func configCLIAddr(path string) (string, error) {
	cfg, _, err := config.Load([]string{"--config-file", path})
	if err != nil {
		if path == config.DefaultConfigFile && errors.Is(err, fs.ErrNotExist) {
			return DefaultCLIAddr, nil
		}
		return "", err
	}
	ap := cfg.ListenCLI
	if !ap.IsValid() {
		return DefaultCLIAddr, nil
	}
	if ap.Addr().IsUnspecified() {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if ap.Addr().Is6() {
			lo = netip.IPv6Loopback()
		}
		ap = netip.AddrPortFrom(lo, ap.Port())
	}
	return ap.String(), nil
}

// Send sends one command line and returns everything the server wrote
// before it closed the connection.
func Send(addr, command string, timeout time.Duration) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", fmt.Errorf("cannot connect to relayd's CLI at %s: %w", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("send to %s: %w", addr, err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		return string(reply), fmt.Errorf("read from %s: %w", addr, err)
	}
	return string(reply), nil
}
