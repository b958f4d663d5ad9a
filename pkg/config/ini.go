// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// entry is one "key = value" line of the selected section.
type entry struct {
	key, value string
	line       int
}

// parseINI returns the entries of section in file order and whether the
// section's header appears at all. Every line of the file is checked for
// syntax, not just the selected section's, so a broken file is noticed even
// if the broken line would have been ignored.
//
// The dialect is the one rtpengine.conf files are written in: "[section]"
// headers (a section may appear more than once; its entries accumulate),
// "key = value", full-line comments starting with '#' or ';', an inline
// comment starting at a '#' preceded by whitespace, optional single or double
// quotes around a value. ';' is not an inline comment marker because it
// separates list items (interface = a/1.2.3.4;b/5.6.7.8).
func parseINI(data []byte, section string) (entries []entry, found bool, err error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	current := ""
	inSection := false
	for i, raw := range strings.Split(string(data), "\n") {
		lineNo := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		switch {
		case line == "", line[0] == '#', line[0] == ';':
			continue
		case line[0] == '[':
			name, err := parseSectionHeader(line)
			if err != nil {
				return nil, false, fmt.Errorf("%d: %w: %w", lineNo, ErrSyntax, err)
			}
			current = name
			inSection = current == section
			found = found || inSection
			continue
		}
		key, rawValue, ok := strings.Cut(line, "=")
		if !ok {
			return nil, false, fmt.Errorf("%d: %w: expected \"key = value\", got %q", lineNo, ErrSyntax, truncate(line))
		}
		key = strings.TrimSpace(key)
		if key == "" {
			return nil, false, fmt.Errorf("%d: %w: missing key before \"=\"", lineNo, ErrSyntax)
		}
		value, err := parseValue(rawValue)
		if err != nil {
			return nil, false, fmt.Errorf("%d: %w: key %q: %w", lineNo, ErrSyntax, key, err)
		}
		if inSection {
			entries = append(entries, entry{key: key, value: value, line: lineNo})
		}
	}
	return entries, found, nil
}

func parseSectionHeader(line string) (string, error) {
	line = strings.TrimSpace(stripComment(line))
	if !strings.HasSuffix(line, "]") {
		return "", fmt.Errorf("unterminated section header %q", truncate(line))
	}
	name := strings.TrimSpace(line[1 : len(line)-1])
	switch {
	case name == "":
		return "", errors.New("empty section name")
	case strings.ContainsAny(name, "[]"):
		return "", fmt.Errorf("bad section name %q", truncate(name))
	}
	return name, nil
}

// parseValue removes surrounding whitespace, an inline comment and one level
// of quotes. Inside quotes a '#' is literal.
func parseValue(raw string) (string, error) {
	v := strings.TrimLeft(raw, " \t")
	if v != "" && (v[0] == '"' || v[0] == '\'') {
		end := strings.IndexByte(v[1:], v[0])
		if end < 0 {
			return "", errors.New("unterminated quote")
		}
		inner, rest := v[1:1+end], v[2+end:]
		if strings.TrimSpace(stripComment(rest)) != "" {
			return "", fmt.Errorf("text after closing quote: %q", truncate(rest))
		}
		return inner, nil
	}
	return strings.TrimSpace(stripComment(v)), nil
}

// stripComment cuts s at the first '#' that starts s or follows whitespace,
// so that "a#b" stays a value but "60 # seconds" becomes "60 ".
func stripComment(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return s[:i]
		}
	}
	return s
}

// truncate keeps error messages about garbage input to a readable length.
func truncate(s string) string {
	const maxLen = 64
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}
