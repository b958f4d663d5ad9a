// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxThreads bounds num-threads: a mistyped huge value would otherwise make
// the daemon try to start millions of workers.
const maxThreads = 1 << 16

// maxSeconds is the largest whole-second count a time.Duration can hold.
const maxSeconds = math.MaxInt64 / int64(time.Second)

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return 0, errors.New("not an integer")
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("must be between %d and %d", lo, hi)
	}
	return n, nil
}

func parseSeconds(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && n > maxSeconds:
		return 0, fmt.Errorf("must be at most %d seconds", maxSeconds)
	case err != nil:
		return 0, errors.New("not a whole number of seconds")
	case n < 0:
		return 0, errors.New("must not be negative")
	}
	return time.Duration(n) * time.Second, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off":
		return false, nil
	}
	return false, errors.New("not a boolean (true/false, yes/no, on/off, 1/0)")
}

func parseLearning(v string) (string, error) {
	switch s := strings.ToLower(v); s {
	case LearningOff, LearningImmediate, LearningDelayed, LearningHeuristic:
		return s, nil
	}
	return "", errors.New("must be one of off, immediate, delayed, heuristic")
}

// parseInterfaceList parses a file or flag value of the interface key: one or
// more specs separated by ';' (the incumbent's list syntax). Empty items, as
// left by a trailing ';', are skipped.
func parseInterfaceList(v string) ([]Interface, error) {
	var out []Interface
	for item := range strings.SplitSeq(v, ";") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		ifa, err := parseInterface(item)
		if err != nil {
			return nil, err
		}
		out = append(out, ifa)
	}
	if len(out) == 0 {
		return nil, errors.New("empty interface list")
	}
	return out, nil
}

// parseInterface parses "ADDR", "NAME/ADDR" or "NAME/ADDR!ADVERTISED" (also
// "ADDR!ADVERTISED"). Addresses are IPv4 or IPv6, the latter with or without
// brackets; the name ends at the first '/', so a bracketless IPv6 address
// needs no escaping.
func parseInterface(spec string) (Interface, error) {
	spec = strings.TrimSpace(spec)
	ifa := Interface{Name: DefaultInterfaceName}
	if name, rest, ok := strings.Cut(spec, "/"); ok {
		if err := checkInterfaceName(name); err != nil {
			return Interface{}, err
		}
		ifa.Name, spec = name, rest
	}
	addrPart, advPart, hasAdv := strings.Cut(spec, "!")
	addr, err := parseInterfaceAddr(addrPart)
	if err != nil {
		return Interface{}, err
	}
	ifa.Addr, ifa.Advertised = addr, addr
	if hasAdv {
		adv, err := parseInterfaceAddr(advPart)
		if err != nil {
			return Interface{}, fmt.Errorf("advertised: %w", err)
		}
		if adv.Is4() != addr.Is4() {
			return Interface{}, fmt.Errorf("advertised address %s is not of the same family as %s", adv, addr)
		}
		ifa.Advertised = adv
	}
	// A wildcard local address is fine for binding, but SDP must carry an
	// address the peer can send to.
	if ifa.Advertised.IsUnspecified() {
		return Interface{}, fmt.Errorf("unspecified address %s needs an !ADVERTISED address", ifa.Addr)
	}
	return ifa, nil
}

func checkInterfaceName(name string) error {
	if name == "" {
		return errors.New("empty interface name before \"/\"")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		// "10.0.0.1/24" would otherwise be read as interface "10.0.0.1".
		return fmt.Errorf("interface name %q is an address (prefix lengths are not supported; use NAME/ADDR)", name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '!' || r == ';' || r == '[' || r == ']' {
			return fmt.Errorf("interface name %q contains %q", name, r)
		}
	}
	return nil
}

func parseInterfaceAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if s == "" {
		return netip.Addr{}, errors.New("missing address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zoned IPv6 addresses are not supported", s)
	}
	if a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%s is a multicast address", a)
	}
	return a.Unmap(), nil
}

// parseListen parses the listen-ng value "[ADDR:]PORT". Like the incumbent, a
// bare port (or ":PORT") listens on all IPv4 addresses; "localhost" is
// accepted because the Debian default config uses it. Other host names are
// refused: resolving names at start-up makes the bound address depend on DNS.
func parseListen(v string) (netip.AddrPort, error) {
	v = strings.TrimSpace(v)
	host, portStr := "", v
	if strings.Contains(v, ":") {
		var err error
		host, portStr, err = net.SplitHostPort(v)
		if err != nil {
			return netip.AddrPort{}, errors.New("expected [ADDR:]PORT, with IPv6 addresses in brackets")
		}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q must be between 1 and 65535", portStr)
	}
	var addr netip.Addr
	switch host {
	case "":
		addr = netip.IPv4Unspecified()
	case "localhost":
		addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	default:
		addr, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", host)
		}
		addr = addr.Unmap()
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// setOptionalListen parses a listen address that may be left empty (off).
func setOptionalListen(dst *netip.AddrPort, v string) error {
	if strings.TrimSpace(v) == "" {
		*dst = netip.AddrPort{}
		return nil
	}
	ap, err := parseListen(v)
	if err != nil {
		return err
	}
	*dst = ap
	return nil
}

// parseB2BURL checks a teardown-notice URL: http or https with a host, where
// "%%" may stand for the proxy's address (the incumbent's syntax).
func parseB2BURL(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return "", errors.New("must be an http:// or https:// URL")
	}
	u, err := url.Parse(strings.ReplaceAll(v, "%%", "192.0.2.1"))
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Host == "" {
		return "", errors.New("has no host")
	}
	return v, nil
}

// parsePrefixList reads "ADDR[/LEN]" entries separated by ';', ',' or white
// space; a bare address is a host prefix. IPv4-mapped IPv6 entries are
// taken as the IPv4 addresses they hold.
func parsePrefixList(v string) ([]netip.Prefix, error) {
	fields := strings.FieldsFunc(v, func(r rune) bool {
		return r == ';' || r == ',' || r == ' ' || r == '\t'
	})
	out := make([]netip.Prefix, 0, len(fields))
	for _, f := range fields {
		var p netip.Prefix
		if strings.Contains(f, "/") {
			var err error
			if p, err = netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("%q is not an address or ADDR/LEN prefix", f)
			}
		} else {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an address or ADDR/LEN prefix", f)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("%q: zones are not supported", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("%q: an IPv4-mapped prefix needs at least /96", f)
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
