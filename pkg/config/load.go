// SPDX-License-Identifier: Apache-2.0

package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// Load builds the configuration from args (os.Args[1:] style) and the config
// file they name.
//
// The file is --config-file (default DefaultConfigFile, read only if it
// exists when not given explicitly; "none" reads no file), section
// --config-section (default DefaultConfigSection). Flags override file values;
// --interface given on the command line replaces the file's interface list
// instead of extending it. Unknown file keys come back as warnings, one per
// key name; an unknown flag, an invalid value (*ValueError) or a broken file
// is an error. --help prints the usage text to standard output and returns
// ErrHelp.
func Load(args []string) (*Config, []string, error) {
	return loader{defaultFile: DefaultConfigFile, stdout: os.Stdout}.load(args)
}

// loader carries what tests need to replace: the implicit config file path
// (which may exist on the test machine) and where --help prints.
type loader struct {
	defaultFile string
	stdout      io.Writer
}

// assignment is one key = value from the file or the command line.
type assignment struct {
	key     keyDef
	value   string
	source  string // "FILE:LINE" or "command line"
	fromCLI bool
}

const sourceCLI = "command line"

// cliArgs is the parsed command line.
type cliArgs struct {
	assigns       []assignment
	configFile    *string
	configSection *string
	help          bool
}

func (l loader) load(args []string) (*Config, []string, error) {
	defs := keyDefs()
	cli, err := parseArgs(defs, args)
	if err != nil {
		return nil, nil, err
	}
	if cli.help {
		if _, err := io.WriteString(l.stdout, Usage()); err != nil {
			return nil, nil, fmt.Errorf("config: printing usage: %w", err)
		}
		return nil, nil, ErrHelp
	}

	c := Default()
	c.Interfaces = nil
	c.NumThreads = 0

	fileAssigns, warnings, err := l.readFile(defs, cli, c)
	if err != nil {
		return nil, nil, err
	}
	if err := apply(c, append(fileAssigns, cli.assigns...)); err != nil {
		return nil, nil, err
	}
	if len(c.Interfaces) == 0 {
		c.Interfaces = Default().Interfaces
	}
	if c.NumThreads == 0 {
		c.NumThreads = runtime.NumCPU()
	}
	return c, warnings, nil
}

// readFile reads the selected section of the config file, if any, records
// what was loaded in c and returns the section's known keys as assignments.
func (l loader) readFile(defs []keyDef, cli cliArgs, c *Config) ([]assignment, []string, error) {
	path, explicitPath := l.defaultFile, false
	if cli.configFile != nil {
		path, explicitPath = *cli.configFile, true
	}
	section, explicitSection := DefaultConfigSection, false
	if cli.configSection != nil {
		section, explicitSection = *cli.configSection, true
	}
	if path == "none" {
		return nil, nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicitPath && errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("config: reading config file: %w", err)
	}
	entries, found, err := parseINI(data, section)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %s:%w", path, err)
	}
	var warnings []string
	if !found {
		if explicitSection {
			return nil, nil, fmt.Errorf("config: %s: %w: [%s]", path, ErrSectionNotFound, section)
		}
		warnings = append(warnings, fmt.Sprintf("section [%s] not found in %s, using defaults", section, path))
	}
	c.ConfigFile, c.ConfigSection = path, section

	var assigns []assignment
	warned := make(map[string]bool)
	for _, e := range entries {
		def, ok := findKey(defs, e.key)
		if !ok {
			if !warned[e.key] {
				warned[e.key] = true
				warnings = append(warnings, fmt.Sprintf("unknown key %q ignored", e.key))
			}
			continue
		}
		assigns = append(assigns, assignment{
			key:    def,
			value:  e.value,
			source: fmt.Sprintf("%s:%d", path, e.line),
		})
	}
	return assigns, warnings, nil
}

// apply stores the assignments in order, so later ones (the command line)
// override earlier ones (the file), then checks the keys that constrain each
// other. Every assignment is validated, even one that a later one overrides:
// a broken file should be noticed before the flag that hides it is removed.
func apply(c *Config, assigns []assignment) error {
	names := make(map[string]bool)
	cliInterfaces := false
	last := make(map[string]assignment)
	for _, a := range assigns {
		valueErr := func(err error) error {
			v := a.value
			if a.key.secret {
				v = redact(v)
			}
			return &ValueError{Key: a.key.name, Value: v, Source: a.source, Err: err}
		}
		if a.key.name == keyInterface {
			if a.fromCLI && !cliInterfaces {
				cliInterfaces = true
				c.Interfaces = nil
				clear(names)
			}
			list, err := parseInterfaceList(a.value)
			if err != nil {
				return valueErr(err)
			}
			for _, ifa := range list {
				// One logical interface may hold one address per family
				// (dual stack); a second address of the same family is a mistake.
				fam := ifa.Name + "/4"
				if ifa.Addr.Is6() {
					fam = ifa.Name + "/6"
				}
				if names[fam] {
					return valueErr(fmt.Errorf("duplicate interface name %q for one address family", ifa.Name))
				}
				names[fam] = true
				c.Interfaces = append(c.Interfaces, ifa)
			}
			continue
		}
		if err := a.key.set(c, a.value); err != nil {
			return valueErr(err)
		}
		last[a.key.name] = a
	}
	if err := checkRedis(c, last); err != nil {
		return err
	}
	return checkPorts(c, last)
}

// checkRedis gives the Redis addresses that named no database redis-db's,
// and needs a server for subscribe-keyspace to follow.
func checkRedis(c *Config, last map[string]assignment) error {
	for _, r := range []*RedisAddr{&c.Redis, &c.RedisWrite, &c.RedisSubscribe} {
		if r.IsSet() && r.DB < 0 {
			r.DB = c.RedisDB
		}
	}
	if len(c.SubscribeKeyspace) > 0 && !c.Redis.IsSet() && !c.RedisSubscribe.IsSet() {
		a := last[keySubscribeKeyspace]
		return &ValueError{Key: a.key.name, Value: a.value, Source: a.source,
			Err: errors.New("needs redis or redis-subscribe: the server whose databases are followed")}
	}
	return nil
}

// checkPorts needs the whole range: media sockets come in RTP/RTCP pairs on an
// even port and the next odd one.
func checkPorts(c *Config, last map[string]assignment) error {
	var reason error
	firstEven := c.PortMin + c.PortMin%2
	switch {
	case c.PortMin > c.PortMax:
		reason = fmt.Errorf("port-min %d is greater than port-max %d", c.PortMin, c.PortMax)
	case firstEven+1 > c.PortMax:
		reason = fmt.Errorf("port range %d-%d holds no even/odd port pair", c.PortMin, c.PortMax)
	default:
		return nil
	}
	// Blame the key the user set; the defaults alone are a valid range.
	blame, ok := last[keyPortMax]
	if !ok {
		blame = last[keyPortMin]
	}
	return &ValueError{Key: blame.key.name, Value: blame.value, Source: blame.source, Err: reason}
}

// parseArgs accepts --key=value, --key value, -k value, -kvalue, and for
// boolean keys --key, --key=BOOL and -k. "--" ends the flags.
func parseArgs(defs []keyDef, args []string) (cliArgs, error) {
	var cli cliArgs
	for i := 0; i < len(args); i++ {
		arg := args[i]
		var (
			def            keyDef
			value          string
			hasValue, ok   bool
			name, shownArg = "", arg
		)
		switch {
		case arg == "--":
			if i+1 < len(args) {
				return cliArgs{}, fmt.Errorf("config: %w %q", ErrUnexpectedArgument, args[i+1])
			}
			return cli, nil
		case strings.HasPrefix(arg, "--"):
			name, value, hasValue = strings.Cut(arg[2:], "=")
			shownArg = "--" + name
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			if arg[1] == 'h' && len(arg) == 2 {
				name = flagHelp
				break
			}
			def, ok = findShort(defs, arg[1])
			if !ok || (def.isBool && len(arg) > 2) {
				return cliArgs{}, fmt.Errorf("config: %w %q", ErrUnknownFlag, arg)
			}
			name, shownArg = def.name, arg[:2]
			if len(arg) > 2 {
				value, hasValue = arg[2:], true
			}
		default:
			return cliArgs{}, fmt.Errorf("config: %w %q", ErrUnexpectedArgument, arg)
		}

		if name == flagHelp {
			cli.help = true
			return cli, nil
		}
		def, ok = findKey(defs, name)
		isBool := ok && def.isBool
		if !ok && name != flagConfigFile && name != flagConfigSection {
			return cliArgs{}, fmt.Errorf("config: %w %q", ErrUnknownFlag, shownArg)
		}
		if !hasValue {
			if isBool {
				value = "true"
			} else {
				if i+1 >= len(args) {
					return cliArgs{}, fmt.Errorf("config: %q: %w", shownArg, ErrMissingValue)
				}
				i++
				value = args[i]
			}
		}

		switch name {
		case flagConfigFile:
			if value == "" {
				return cliArgs{}, &ValueError{Key: name, Value: value, Source: sourceCLI,
					Err: errors.New(`must not be empty (use "none" for no file)`)}
			}
			cli.configFile = &value
		case flagConfigSection:
			if strings.TrimSpace(value) == "" || strings.ContainsAny(value, "[]") {
				return cliArgs{}, &ValueError{Key: name, Value: value, Source: sourceCLI,
					Err: errors.New("must be a non-empty section name without brackets")}
			}
			value = strings.TrimSpace(value)
			cli.configSection = &value
		default:
			cli.assigns = append(cli.assigns, assignment{key: def, value: value, source: sourceCLI, fromCLI: true})
		}
	}
	return cli, nil
}
