// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Format is the dictionary encoding of a message; a reply uses the request's.
type Format int

const (
	// FormatBencode is the native ng encoding (first byte 'd').
	FormatBencode Format = iota
	// FormatJSON is the alternative encoding (first byte '{').
	FormatJSON
)

func (f Format) String() string {
	switch f {
	case FormatBencode:
		return "bencode"
	case FormatJSON:
		return "JSON"
	default:
		return "Format(" + strconv.Itoa(int(f)) + ")"
	}
}

// Default decoding limits. 64 KiB is the largest UDP datagram anyway; no
// legitimate request nests deeper than 3 (codec dict of lists).
const (
	DefaultMaxMessage = 64 << 10
	DefaultMaxDepth   = 32
)

// SplitMessage splits a datagram at the first space into cookie and body.
// A datagram without a space, or starting with one, has no cookie.
func SplitMessage(b []byte) (cookie string, body []byte, err error) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return "", nil, ErrNoCookie
	}
	return string(b[:i]), b[i+1:], nil
}

// Limits bound what Decode accepts; zero fields take the defaults.
type Limits struct {
	// MaxSize is the largest accepted body in bytes.
	MaxSize int
	// MaxDepth is the deepest accepted nesting of lists and dictionaries,
	// counting the top-level dictionary as 1.
	MaxDepth int
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxMessage
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	return l
}

// Decode decodes a message body with the default Limits.
func Decode(body []byte) (map[string]any, Format, error) {
	return Limits{}.Decode(body)
}

// Decode decodes a message body: a bencode dictionary (first byte 'd') or a
// JSON object (first byte '{'). Values come out as string, int64, []any and
// map[string]any; JSON may also yield float64 (non-integral numbers), bool and
// nil. The returned Format is meaningful even on error, so that the error reply
// can use it. Errors match the sentinels of this package; Reason maps them to
// the reply text.
func (l Limits) Decode(body []byte) (map[string]any, Format, error) {
	v, f, err := l.DecodeValue(body)
	if err != nil {
		return nil, f, err
	}
	return v.Interface().(map[string]any), f, nil
}

// DecodeValue is Decode into a Value: a dictionary whose fields are sorted
// by key with the last of duplicate keys kept, as a map would hold them.
func (l Limits) DecodeValue(body []byte) (Value, Format, error) {
	l = l.withDefaults()
	if len(body) == 0 {
		return Value{}, FormatBencode, ErrNoPayload
	}
	switch body[0] {
	case 'd':
		v, err := decodeBencode(body, l)
		return v, FormatBencode, err
	case '{':
		v, err := decodeJSON(body, l)
		return v, FormatJSON, err
	default:
		return Value{}, FormatBencode, ErrBadFormat
	}
}

func decodeBencode(body []byte, l Limits) (Value, error) {
	if len(body) > l.MaxSize {
		return Value{}, fmt.Errorf("bencode body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	// The pre-scan validates the whole structure and counts the values in
	// containers, so the decoder below needs no checks but integer range,
	// recurses no deeper than the limit and allocates every container's
	// fields from one block.
	n, items, err := scanBencode(body, l.MaxDepth)
	if err != nil {
		return Value{}, err
	}
	// One string holds every key and string value: a single copy of the
	// datagram instead of one per string.
	d := bdecoder{s: string(body[:n])}
	block := make([]Field, 2*items)
	d.arena, d.stack = block[:0:items], block[items:items]
	v, err := d.value()
	if err != nil {
		return Value{}, err
	}
	if v.kind != KindDict {
		return Value{}, ErrNotDict
	}
	return v, nil
}

// bdecoder decodes bencode that scanBencode has validated.
type bdecoder struct {
	s     string
	pos   int
	arena []Field // the finished containers' fields
	stack []Field // fields of the containers still open
}

func (d *bdecoder) value() (Value, error) {
	switch c := d.s[d.pos]; c {
	case 'i':
		end := d.pos + 1 + strings.IndexByte(d.s[d.pos+1:], 'e')
		n, err := strconv.ParseInt(d.s[d.pos+1:end], 10, 64)
		if err != nil {
			return Value{}, fmt.Errorf("%w: integer out of range at byte %d", ErrBadBencode, d.pos)
		}
		d.pos = end + 1
		return Int(n), nil
	case 'l', 'd':
		d.pos++
		base := len(d.stack)
		for d.s[d.pos] != 'e' {
			var key string
			if c == 'd' {
				key = d.str()
			}
			v, err := d.value()
			if err != nil {
				return Value{}, err
			}
			d.stack = append(d.stack, Field{Key: key, Value: v})
		}
		d.pos++
		start := len(d.arena)
		if c == 'l' {
			d.arena = append(d.arena, d.stack[base:]...)
		} else {
			d.arena = appendSorted(d.arena, d.stack[base:])
		}
		fields := d.arena[start:len(d.arena):len(d.arena)]
		clear(d.stack[base:])
		d.stack = d.stack[:base]
		if c == 'l' {
			if len(fields) == 0 {
				fields = nil // Interface yields a nil []any, as before
			}
			return Value{kind: KindList, items: fields}, nil
		}
		return Value{kind: KindDict, items: fields}, nil
	default:
		return Str(d.str()), nil
	}
}

// str reads a string; the scan has checked its length.
func (d *bdecoder) str() string {
	n, i := 0, d.pos
	for ; d.s[i] != ':'; i++ {
		n = n*10 + int(d.s[i]-'0')
	}
	i++
	d.pos = i + n
	return d.s[i : i+n]
}

func decodeJSON(body []byte, l Limits) (Value, error) {
	if len(body) > l.MaxSize {
		return Value{}, fmt.Errorf("JSON body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	// Every value in a container but the first follows a comma, so the
	// scan's count bounds the fields: one block serves the decoder's stack
	// and the containers.
	n, err := scanJSONDepth(body, l.MaxDepth)
	if err != nil {
		return Value{}, err
	}
	d := jdecoder{s: string(body)}
	block := make([]Field, 2*n)
	d.stack, d.a.block = block[:0:n], block[n:n]
	v, err := d.value()
	if err != nil {
		return Value{}, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	if v.kind != KindDict {
		return Value{}, ErrNotDict
	}
	return v, nil
}

// jdecoder decodes the first JSON value of s the way encoding/json's
// Decoder (with UseNumber) did before it: the same grammar, strings
// unescaped with invalid UTF-8 and lone surrogates as U+FFFD, integers as
// KindInt, other numbers as KindFloat (or, beyond float64, the literal as a
// string), and whatever follows the value ignored. Depth is bounded by
// scanJSONDepth.
type jdecoder struct {
	s     string
	pos   int
	a     arena
	stack []Field
}

var errJSONSyntax = errors.New("invalid JSON syntax")

func (d *jdecoder) ws() {
	for d.pos < len(d.s) {
		switch d.s[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *jdecoder) value() (Value, error) {
	d.ws()
	if d.pos >= len(d.s) {
		return Value{}, errJSONSyntax
	}
	switch c := d.s[d.pos]; {
	case c == '{' || c == '[':
		return d.container(c)
	case c == '"':
		s, err := d.str()
		return Str(s), err
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case strings.HasPrefix(d.s[d.pos:], "true"):
		d.pos += 4
		return Bool(true), nil
	case strings.HasPrefix(d.s[d.pos:], "false"):
		d.pos += 5
		return Bool(false), nil
	case strings.HasPrefix(d.s[d.pos:], "null"):
		d.pos += 4
		return Value{}, nil
	}
	return Value{}, errJSONSyntax
}

func (d *jdecoder) container(open byte) (Value, error) {
	d.pos++
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	base := len(d.stack)
	d.ws()
	if d.pos < len(d.s) && d.s[d.pos] == closing {
		d.pos++
	} else {
		for {
			var key string
			if open == '{' {
				d.ws()
				if d.pos >= len(d.s) || d.s[d.pos] != '"' {
					return Value{}, errJSONSyntax
				}
				var err error
				if key, err = d.str(); err != nil {
					return Value{}, err
				}
				d.ws()
				if d.pos >= len(d.s) || d.s[d.pos] != ':' {
					return Value{}, errJSONSyntax
				}
				d.pos++
			}
			v, err := d.value()
			if err != nil {
				return Value{}, err
			}
			d.stack = append(d.stack, Field{Key: key, Value: v})
			d.ws()
			if d.pos >= len(d.s) {
				return Value{}, errJSONSyntax
			}
			if c := d.s[d.pos]; c == ',' {
				d.pos++
				continue
			} else if c == closing {
				d.pos++
				break
			}
			return Value{}, errJSONSyntax
		}
	}
	items := d.stack[base:]
	fields := d.a.reserve(len(items))
	if open == '{' {
		fields = appendSorted(fields[:0], items)
	} else {
		copy(fields, items)
	}
	clear(items)
	d.stack = d.stack[:base]
	if open == '{' {
		return Value{kind: KindDict, items: fields}, nil
	}
	if fields == nil {
		// encoding/json gave an empty, not a nil, slice for [].
		fields = []Field{}
	}
	return Value{kind: KindList, items: fields}, nil
}

// number reads a number literal with JSON's grammar.
func (d *jdecoder) number() (Value, error) {
	start, i, s := d.pos, d.pos, d.s
	digits := func() bool {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i > j
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return Value{}, errJSONSyntax
	}
	integral := true
	if i < len(s) && s[i] == '.' {
		i++
		integral = false
		if !digits() {
			return Value{}, errJSONSyntax
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		integral = false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return Value{}, errJSONSyntax
		}
	}
	d.pos = i
	lit := s[start:i]
	if integral {
		if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return Int(n), nil
		}
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Out of float64 range: keep the literal rather than lose it.
		return Str(lit), nil
	}
	return Float(f), nil
}

// str reads a string literal; one without escapes or invalid UTF-8 is a
// substring of the body, like bencode strings.
func (d *jdecoder) str() (string, error) {
	d.pos++ // the opening quote
	start := d.pos
	for i := start; i < len(d.s); {
		c := d.s[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return d.s[start:i], nil
		case c == '\\' || c < ' ':
			return d.unquote(start)
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[i:])
			if r == utf8.RuneError && size == 1 {
				return d.unquote(start)
			}
			i += size
		}
	}
	return "", errJSONSyntax
}

// unquote decodes the string literal starting at start (after its quote)
// into new memory.
func (d *jdecoder) unquote(start int) (string, error) {
	s := d.s
	// Escapes only shrink the text (but for invalid UTF-8, which grows to
	// U+FFFD), so the literal's length is the right size.
	end := start
	for end < len(s) && s[end] != '"' {
		if s[end] == '\\' {
			end++
		}
		end++
	}
	b := make([]byte, 0, end-start)
	for i := start; i < len(s); {
		c := s[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return string(b), nil
		case c < ' ':
			return "", errJSONSyntax
		case c == '\\':
			if i+1 >= len(s) {
				return "", errJSONSyntax
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := hex4(s[i+2:])
				if !ok {
					return "", errJSONSyntax
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A valid pair takes the next escape too; anything
					// else leaves it and stands for U+FFFD.
					if r2, ok := hex4(s[min(i+2, len(s)):]); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							i += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return "", errJSONSyntax
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			b = utf8.AppendRune(b, r)
			i += size
		}
	}
	return "", errJSONSyntax
}

// hex4 reads four hex digits.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
