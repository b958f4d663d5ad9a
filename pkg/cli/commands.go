// SPDX-License-Identifier: Apache-2.0

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relayd/relayd/pkg/session"
)

// The incumbent's texts (rtpengine 10.5), kept verbatim where scripts may
// match on them.
const (
	moreParams = "More parameters required.\n"
	noSessions = "No sessions on this media relay.\n"
)

func unknown(word string) string { return "Unknown or incomplete command::" + word + "\n" }

// Execute runs one command line and returns the reply text.
func (s *Server) Execute(line string) string {
	args := strings.Fields(line)
	if len(args) == 0 {
		return moreParams
	}
	switch args[0] {
	case "list", "get":
		return s.list(args[1:])
	case "set":
		return s.set(args[1:])
	case "terminate":
		return s.terminate(args[1:])
	case "active":
		n := s.cfg.Sessions.TakeOverAll()
		s.log.Warn("this relay is active: every foreign call taken over by the operator", "calls", n)
		return fmt.Sprintf("Success: %d foreign calls are own now; this relay is active.\n", n)
	case "standby":
		n := s.cfg.Sessions.StandbyAll()
		s.log.Warn("this relay is standby: every own call made foreign by the operator", "calls", n)
		return fmt.Sprintf("Success: %d own calls are foreign now; this relay is standby.\n", n)
	case "help":
		return subcommands("list", "terminate", "set", "get", "active", "standby")
	}
	return unknown(args[0])
}

func subcommands(names ...string) string {
	var b strings.Builder
	b.WriteString("Available sub-commands at this level:\n")
	for _, n := range names {
		b.WriteString("\t" + n + "\n")
	}
	return b.String()
}

func (s *Server) list(args []string) string {
	if len(args) == 0 {
		return moreParams
	}
	lim := s.cfg.Sessions.Limits()
	switch args[0] {
	case "help":
		return subcommands("numsessions", "sessions", "totals", "counters", "maxopenfiles", "maxsessions",
			"timeout", "silenttimeout", "offertimeout", "finaltimeout", "loglevels", "loglevel",
			"controltos", "deletedelay", "interfaces", "jsonstats")
	case "numsessions":
		return s.numSessions()
	case "maxsessions":
		return fmt.Sprintf("Maximum sessions configured on rtpengine: %d\n", lim.MaxSessions)
	case "maxopenfiles":
		var rl syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return fmt.Sprintf("Fail getting open files limit: %v\n", err)
		}
		return fmt.Sprintf("Maximum open-files configured on rtpengine: %d; cat /proc/%d/limits\n", rl.Cur, os.Getpid())
	case "sessions":
		if len(args) < 2 {
			return moreParams
		}
		return s.sessions(args[1])
	case "totals":
		return s.totals()
	case "counters":
		return s.counters()
	case "timeout":
		return fmt.Sprintf("TIMEOUT=%d\n", secs(lim.Timeout))
	case "silenttimeout":
		return fmt.Sprintf("SILENT_TIMEOUT=%d\n", secs(lim.SilentTimeout))
	case "offertimeout":
		return fmt.Sprintf("OFFER_TIMEOUT=%d\n", secs(lim.OfferTimeout))
	case "finaltimeout":
		return fmt.Sprintf("FINAL_TIMEOUT=%d\n", secs(lim.FinalTimeout))
	case "deletedelay":
		return fmt.Sprintf("%d\n", secs(lim.DeleteDelay))
	case "controltos":
		return "0\n" // relayd leaves the ng replies' TOS at the system default
	case "loglevels":
		return "core - Everything (relayd has one log level for all of its parts)\n"
	case "loglevel":
		if s.cfg.LogLevel == nil {
			return unknown(args[0])
		}
		if len(args) > 1 {
			if args[1] != "core" {
				return "" // the incumbent prints nothing for an unknown subsystem
			}
			return fmt.Sprintf("%d\n", s.cfg.LogLevel.Level())
		}
		return fmt.Sprintf("core = %d\n", s.cfg.LogLevel.Level())
	case "interfaces":
		return s.interfaces()
	case "jsonstats":
		if s.cfg.JSONStats == nil {
			return unknown(args[0])
		}
		b, err := json.Marshal(s.cfg.JSONStats())
		if err != nil {
			return fmt.Sprintf("Fail encoding statistics: %v\n", err)
		}
		return string(b) + "\n"
	}
	return unknown(args[0])
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

func (s *Server) numSessions() string {
	list := s.cfg.Sessions.Sessions()
	var v4, v6, mixed, foreign int
	for _, c := range list {
		if c.Foreign {
			foreign++
		}
		switch {
		case c.IPv4 && c.IPv6:
			mixed++
		case c.IPv4:
			v4++
		case c.IPv6:
			v6++
		}
	}
	return fmt.Sprintf("Current sessions own: %d\n"+
		"Current sessions foreign: %d\n"+
		"Current sessions total: %d\n"+
		"Current transcoded media: 0\n"+
		"Current sessions ipv4 only media: %d\n"+
		"Current sessions ipv6 only media: %d\n"+
		"Current sessions ip mixed  media: %d\n", len(list)-foreign, foreign, len(list), v4, v6, mixed)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func origin(c session.SessionSummary) string {
	if !c.Origin.IsValid() {
		return "unknown"
	}
	return c.Origin.String()
}

func (s *Server) sessions(which string) string {
	switch which {
	case "all", "own", "foreign":
		var b strings.Builder
		for _, c := range s.cfg.Sessions.Sessions() {
			if (which == "own" && c.Foreign) || (which == "foreign" && !c.Foreign) {
				continue
			}
			fmt.Fprintf(&b, "callid: %60s | deletionmark: %3s | created: %11d | proxy:%s | redis_keyspace:0 | foreign:%s\n",
				c.CallID, yesNo(c.Deleting), c.Created.Unix(), origin(c), yesNo(c.Foreign))
		}
		switch {
		case b.Len() > 0:
			return b.String()
		case which == "foreign":
			return "No foreign sessions on this media relay.\n"
		case which == "own":
			return "No own sessions on this media relay.\n"
		}
		return noSessions
	}
	c, err := s.cfg.Sessions.Session(which)
	if err != nil {
		return fmt.Sprintf("\nCall ID not found (%s).\n\n", which)
	}
	return s.sessionDetail(c)
}

func (s *Server) sessionDetail(c session.SessionSummary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncallid: %s\ndeletionmark: %s\ncreated: %d\nproxy: %s\ntos: %d\nlast_signal: %d\nredis_keyspace: 0\nforeign: %s\n\n",
		c.CallID, yesNo(c.Deleting), c.Created.Unix(), origin(c), c.TOS, c.LastSignal.Unix(), yesNo(c.Foreign))
	now := s.cfg.Now()
	for i, t := range c.Info.Tags {
		typ := "FROM_TAG"
		if i > 0 {
			typ = "TO_TAG"
		}
		fmt.Fprintf(&b, "--- Tag '%s', type: %s, label '%s', branch '%s', callduration %.6f\n",
			t.Tag, typ, t.Label, t.ViaBranch, now.Sub(t.Created).Seconds())
		if t.InDialogueWith != "" {
			fmt.Fprintf(&b, "---     subscribed to '%s'\n---     subscription of '%s'\n", t.InDialogueWith, t.InDialogueWith)
		}
		for _, md := range t.Medias {
			// relayd does not track the negotiated codec per media.
			fmt.Fprintf(&b, "------ Media #%d (%s over %s) using unknown codec\n", md.Index, md.Type, md.Protocol)
			for _, st := range md.Streams {
				rtcp := ""
				if st.RTCP {
					rtcp = " (RTCP)"
				}
				var ssrc uint32
				if len(st.SSRCs) > 0 {
					ssrc = st.SSRCs[0].SSRC
				}
				last := st.LastPacket
				if last.IsZero() {
					last = t.Created
				}
				fmt.Fprintf(&b, "-------- Port %15s:%-5d <> %15s:%-5d%s, SSRC %x, %d p, %d b, %d e, %d ts\n",
					st.Local.Addr(), st.Local.Port(), endpointAddr(st), st.Endpoint.Port(), rtcp, ssrc,
					st.In.Packets, st.In.Bytes, st.In.Errors, last.Unix())
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

func endpointAddr(st session.StreamInfo) string {
	if !st.Endpoint.IsValid() {
		return "0.0.0.0"
	}
	return st.Endpoint.Addr().String()
}

// row is one " label : value" line of totals and counters.
func row(b *strings.Builder, label string, value any) {
	fmt.Fprintf(b, " %-48s:%v\n", label, value)
}

func (s *Server) counters() string {
	st := s.cfg.Sessions.Statistics()
	var b strings.Builder
	b.WriteString("\nCurrent per-second counters:\n\n")
	// relayd measures its rates over all relayed media, not per path.
	row(&b, "Packets per second (total)", st.PacketRate)
	row(&b, "Bytes per second (total)", st.ByteRate)
	row(&b, "Errors per second (total)", st.ErrorRate)
	return b.String()
}

func (s *Server) totals() string {
	st := s.cfg.Sessions.Statistics()
	total, sq, n := s.cfg.Sessions.DurationStats()
	var b strings.Builder
	b.WriteString("\nStatistics over currently running sessions:\n\n")
	row(&b, "Owned sessions", st.SessionsOwn)
	row(&b, "Foreign sessions", st.SessionsForeign)
	row(&b, "Total sessions", st.SessionsOwn+st.SessionsForeign)
	row(&b, "Transcoded media", 0)
	row(&b, "Packets per second (total)", st.PacketRate)
	row(&b, "Bytes per second (total)", st.ByteRate)
	row(&b, "Errors per second (total)", st.ErrorRate)
	row(&b, "Userspace-only media streams", st.MediaUserspace)
	row(&b, "Kernel-only media streams", st.MediaKernel)
	row(&b, "Mixed kernel/userspace media streams", 0)
	// Unlike the incumbent's, relayd's packet totals include running calls.
	b.WriteString("\nTotal statistics (packet counts include current running sessions):\n\n")
	row(&b, "Uptime of rtpengine", fmt.Sprintf("%d seconds", secs(st.Uptime)))
	row(&b, "Total managed sessions", st.Managed)
	row(&b, "Total rejected sessions", st.Rejected)
	row(&b, "Total timed-out sessions via TIMEOUT", st.Timeout)
	row(&b, "Total timed-out sessions via SILENT_TIMEOUT", st.SilentTimeout)
	row(&b, "Total timed-out sessions via FINAL_TIMEOUT", st.FinalTimeout)
	row(&b, "Total timed-out sessions via OFFER_TIMEOUT", st.OfferTimeout)
	row(&b, "Total regular terminated sessions", st.RegularTerminated)
	row(&b, "Total forced terminated sessions", st.ForcedTerminated)
	row(&b, "Total relayed packets (userspace)", st.RelayedPackets-st.RelayedPacketsKernel)
	row(&b, "Total relayed packet errors (userspace)", st.RelayedErrors)
	row(&b, "Total relayed bytes (userspace)", st.RelayedBytes-st.RelayedBytesKernel)
	row(&b, "Total relayed packets (kernel)", st.RelayedPacketsKernel)
	row(&b, "Total relayed packet errors (kernel)", 0)
	row(&b, "Total relayed bytes (kernel)", st.RelayedBytesKernel)
	row(&b, "Total relayed packets", st.RelayedPackets)
	row(&b, "Total relayed packet errors", st.RelayedErrors)
	row(&b, "Total relayed bytes", st.RelayedBytes)
	row(&b, "Total number of streams with no relayed packets", st.ZeroWayStreams)
	row(&b, "Total number of 1-way streams", st.OneWayStreams)
	row(&b, "Average call duration", fmt.Sprintf("%.6f seconds", st.AvgCallDuration.Seconds()))
	row(&b, "Total calls duration", fmt.Sprintf("%.6f seconds", total.Seconds()))
	row(&b, "Total calls duration squared", fmt.Sprintf("%.6f seconds squared", sq))
	row(&b, "Total calls duration standard deviation", fmt.Sprintf("%.6f seconds", session.StdDev(total, sq, n)))
	b.WriteString("\n")
	return b.String()
}

func (s *Server) interfaces() string {
	var b strings.Builder
	for _, in := range s.cfg.Sessions.Statistics().Interfaces {
		fam := "IPv4"
		if !in.Address.Unmap().Is4() {
			fam = "IPv6"
		}
		// Statistics count RTP/RTCP slots; the incumbent counts ports.
		used, total := 2*in.PortsUsed, 2*in.PortsTotal
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(used) / float64(total)
		}
		fmt.Fprintf(&b, "Interface '%s' address '%s' (%s)\n Port range: %d - %d\n Ports used: %5d / %5d (%5.1f%%)\n",
			in.Name, in.Address, fam, in.PortMin, in.PortMax, used, total, pct)
	}
	return b.String()
}

// errNoDigits and errNegative are the incumbent's reasons for a bad number.
var (
	errNoDigits = errors.New("no digists found") // sic: the incumbent's wording
	errNegative = errors.New("must not be negative")
)

func parseNumber(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("errno=%d", syscall.ERANGE)
	case err != nil:
		return 0, errNoDigits
	}
	return n, nil
}

func (s *Server) set(args []string) string {
	if len(args) == 0 {
		return moreParams
	}
	if args[0] == "help" {
		return subcommands("maxsessions", "timeout", "silenttimeout", "offertimeout", "finaltimeout", "loglevel", "deletedelay")
	}
	if len(args) < 2 {
		return moreParams
	}
	key, v := args[0], args[1]
	lim := s.cfg.Sessions.Limits()
	switch key {
	case "maxsessions":
		n, err := parseNumber(v)
		if err != nil {
			return fmt.Sprintf("Fail setting maxsessions to %s; %v\n", v, err)
		}
		if n < -1 || n > int64(^uint32(0)>>1) {
			return fmt.Sprintf("Fail setting maxsessions to %d; either positive or -1 values allowed\n", n)
		}
		lim.MaxSessions = int(n)
		s.cfg.Sessions.SetLimits(lim)
		s.log.Info("max-sessions set by the operator", "max-sessions", n)
		if n == -1 {
			return "Success setting maxsessions to -1; disable feature\n"
		}
		return fmt.Sprintf("Success setting maxsessions to %d\n", n)
	case "timeout", "silenttimeout", "offertimeout", "finaltimeout", "deletedelay":
		n, err := parseNumber(v)
		if err == nil && n < 0 {
			err = errNegative
		}
		if err == nil && n > int64(time.Duration(1<<63-1)/time.Second) {
			err = fmt.Errorf("errno=%d", syscall.ERANGE)
		}
		name := map[string]string{"deletedelay": "delete-delay"}[key]
		if name == "" {
			name = key
		}
		if err != nil {
			return fmt.Sprintf("Fail setting %s to %s; %v\n", name, v, err)
		}
		d := time.Duration(n) * time.Second
		switch key {
		case "timeout":
			lim.Timeout = d
		case "silenttimeout":
			lim.SilentTimeout = d
		case "offertimeout":
			lim.OfferTimeout = d
		case "finaltimeout":
			lim.FinalTimeout = d
		case "deletedelay":
			lim.DeleteDelay = d
		}
		s.cfg.Sessions.SetLimits(lim)
		s.log.Info(name+" set by the operator", "seconds", n)
		return fmt.Sprintf("Success setting %s to %d\n", name, n)
	case "loglevel":
		if s.cfg.LogLevel == nil {
			return unknown(key)
		}
		if len(args) > 2 {
			// "set loglevel <subsystem> N": relayd has one level for all.
			v = args[2]
		}
		n, err := parseNumber(v)
		if err != nil {
			if len(args) == 2 {
				return moreParams // the incumbent reads a word here as a subsystem
			}
			return fmt.Sprintf("Fail setting loglevel to %s; %v\n", v, err)
		}
		if n < 0 || n > 7 {
			return fmt.Sprintf("Fail setting loglevel to %d; must be 0-7 (syslog levels)\n", n)
		}
		s.cfg.LogLevel.SetLevel(int(n))
		s.log.Info("log-level set by the operator", "log-level", n)
		return fmt.Sprintf("Success setting loglevel to %d\n", n)
	}
	return unknown(key)
}

func (s *Server) terminate(args []string) string {
	if len(args) == 0 {
		return moreParams
	}
	switch args[0] {
	case "all":
		n := s.cfg.Sessions.TerminateAll()
		s.log.Info("all calls terminated by the operator", "calls", n)
		return "All calls terminated by operator.\n"
	case "own":
		n := s.cfg.Sessions.TerminateOwn()
		s.log.Info("all own calls terminated by the operator", "calls", n)
		return "All own calls terminated by operator.\n"
	case "foreign":
		// Dropped here only: their owner keeps them (and its next record
		// of one brings that one back).
		n := s.cfg.Sessions.TerminateForeign()
		s.log.Info("all foreign calls dropped by the operator", "calls", n)
		return "All foreign calls terminated by operator.\n"
	}
	id := args[0]
	if err := s.cfg.Sessions.Terminate(id); err != nil {
		return fmt.Sprintf("\nCall Id not found (%s).\n\n", id)
	}
	s.log.Info("call terminated by the operator", "call-id", id)
	return fmt.Sprintf("\nCall Id (%s) successfully terminated by operator.\n\n", id)
}
