// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseINI(f *testing.F) {
	seed, err := os.ReadFile("testdata/rtpengine.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "rtpengine")
	f.Add([]byte("[a]\nx = \"q # r\" # c\n"), "a")
	f.Fuzz(func(t *testing.T, data []byte, section string) {
		entries, found, err := parseINI(data, section)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not match ErrSyntax", err)
			}
			return
		}
		if len(entries) > 0 && !found {
			t.Fatalf("entries %+v returned for a section that was not found", entries)
		}
		for _, e := range entries {
			if e.key == "" || strings.ContainsAny(e.key, "=\n") || strings.Contains(e.value, "\n") || e.line < 1 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func FuzzParseInterface(f *testing.F) {
	for _, s := range []string{
		"10.0.0.1", "internal/10.0.1.20", "external/10.0.1.20!203.0.113.20",
		"internal/2001:db8::1!2001:db8::2", "v6/[::1]", "a/0.0.0.0!1.2.3.4", "a/b/c!d!e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ifa, err := parseInterface(spec)
		if err != nil {
			return
		}
		if ifa.Name == "" || !ifa.Addr.IsValid() || !ifa.Advertised.IsValid() ||
			ifa.Advertised.IsUnspecified() || ifa.Addr.Is4() != ifa.Advertised.Is4() {
			t.Fatalf("parseInterface(%q) = %+v, accepted an unusable interface", spec, ifa)
		}
	})
}

// FuzzLoad drives the whole loader: file bytes plus a NUL-separated command line.
func FuzzLoad(f *testing.F) {
	seed, err := os.ReadFile("testdata/rtpengine.conf")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed, "")
	f.Add(seed, "-i\x00a/::1\x00--port-min=30000\x00-f")
	f.Add([]byte("[rtpengine]\ninterface = a/1.2.3.4;b/1.2.3.4!5.6.7.8\n"), "--config-section\x00rtpengine")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, argLine string) {
		path := filepath.Join(dir, "fuzz.conf")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--config-file", path}
		if argLine != "" {
			args = append(args, strings.Split(argLine, "\x00")...)
		}
		l := loader{defaultFile: filepath.Join(dir, "absent.conf"), stdout: &bytes.Buffer{}}
		c, _, err := l.load(args)
		if err != nil {
			if c != nil {
				t.Fatalf("load returned both a config and error %v", err)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q lacks the config: prefix", err)
			}
			return
		}
		checkInvariants(t, c)
	})
}

func checkInvariants(t *testing.T, c *Config) {
	t.Helper()
	if len(c.Interfaces) == 0 {
		t.Fatal("no interfaces")
	}
	names := make(map[string]bool)
	for _, ifa := range c.Interfaces {
		if names[ifa.Name] || !ifa.Advertised.IsValid() || ifa.Advertised.IsUnspecified() {
			t.Fatalf("bad interface %+v in %+v", ifa, c.Interfaces)
		}
		names[ifa.Name] = true
	}
	switch {
	case c.PortMin < 1024, c.PortMax > 65535, c.PortMin+c.PortMin%2+1 > c.PortMax:
		t.Fatalf("bad port range %d-%d", c.PortMin, c.PortMax)
	case c.TOS < 0, c.TOS > 255, c.LogLevel < 0, c.LogLevel > 7, c.MaxSessions < -1, c.NumThreads < 1:
		t.Fatalf("out-of-range value in %+v", c)
	case c.Timeout < 0, c.SilentTimeout < 0, c.OfferTimeout < 0, c.FinalTimeout < 0, c.DeleteDelay < 0:
		t.Fatalf("negative duration in %+v", c)
	case !c.ListenNG.IsValid() || c.ListenNG.Port() == 0:
		t.Fatalf("bad listen-ng %v", c.ListenNG)
	}
	if _, err := parseLearning(c.EndpointLearning); err != nil || c.EndpointLearning != strings.ToLower(c.EndpointLearning) {
		t.Fatalf("bad endpoint-learning %q", c.EndpointLearning)
	}
}
