// SPDX-License-Identifier: Apache-2.0

package config

import "reflect"

// Changed lists, in usage order, the keys whose values differ between a and
// b (interface for the interface list). SIGHUP uses it to apply what can
// change at run time and name what needs a restart.
func Changed(a, b *Config) []string {
	var out []string
	for _, k := range keyDefs() {
		get, ok := fieldOf[k.name]
		if !ok {
			// A key without an entry is reported as changed, never
			// silently ignored; TestChangedKnowsEveryKey keeps the table
			// complete.
			out = append(out, k.name)
			continue
		}
		if !reflect.DeepEqual(get(a), get(b)) {
			out = append(out, k.name)
		}
	}
	return out
}

// fieldOf reads the field each key sets.
var fieldOf = map[string]func(*Config) any{
	keyInterface:         func(c *Config) any { return c.Interfaces },
	"listen-ng":          func(c *Config) any { return c.ListenNG },
	"ng-allow-from":      func(c *Config) any { return c.NGAllowFrom },
	keyPortMin:           func(c *Config) any { return c.PortMin },
	keyPortMax:           func(c *Config) any { return c.PortMax },
	"timeout":            func(c *Config) any { return c.Timeout },
	"silent-timeout":     func(c *Config) any { return c.SilentTimeout },
	"offer-timeout":      func(c *Config) any { return c.OfferTimeout },
	"final-timeout":      func(c *Config) any { return c.FinalTimeout },
	"delete-delay":       func(c *Config) any { return c.DeleteDelay },
	"tos":                func(c *Config) any { return c.TOS },
	"max-sessions":       func(c *Config) any { return c.MaxSessions },
	"log-level":          func(c *Config) any { return c.LogLevel },
	"pidfile":            func(c *Config) any { return c.PidFile },
	"foreground":         func(c *Config) any { return c.Foreground },
	"num-threads":        func(c *Config) any { return c.NumThreads },
	"codec-num-threads":  func(c *Config) any { return c.CodecThreads },
	"endpoint-learning":  func(c *Config) any { return c.EndpointLearning },
	"xdp":                func(c *Config) any { return c.XDP },
	"socket-sends":       func(c *Config) any { return c.SocketSends },
	"dtls-signature":     func(c *Config) any { return c.DTLSSignature },
	"listen-http":        func(c *Config) any { return c.ListenHTTP },
	"listen-cli":         func(c *Config) any { return c.ListenCLI },
	"b2b-url":            func(c *Config) any { return c.B2BURL },
	"xmlrpc-format":      func(c *Config) any { return c.XMLRPCFormat },
	"state-dir":          func(c *Config) any { return c.StateDir },
	"xdp-pin-path":       func(c *Config) any { return c.XDPPinPath },
	"recording-dir":      func(c *Config) any { return c.RecordingDir },
	"recording-method":   func(c *Config) any { return c.RecordingMethod },
	"recording-format":   func(c *Config) any { return c.RecordingFormat },
	"redis":              func(c *Config) any { return c.Redis },
	"redis-write":        func(c *Config) any { return c.RedisWrite },
	"redis-db":           func(c *Config) any { return c.RedisDB },
	"redis-expires":      func(c *Config) any { return c.RedisExpires },
	"redis-subscribe":    func(c *Config) any { return c.RedisSubscribe },
	"subscribe-keyspace": func(c *Config) any { return c.SubscribeKeyspace },
	"no-redis-required":  func(c *Config) any { return c.NoRedisRequired },
	"active-switchover":  func(c *Config) any { return c.ActiveSwitchover },
	"node-name":          func(c *Config) any { return c.NodeName },
}
