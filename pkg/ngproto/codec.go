// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
	if err := scanJSONDepth(body, l.MaxDepth); err != nil {
		return Value{}, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return Value{}, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Value{}, ErrNotDict
	}
	return jsonValue(m), nil
}

// jsonValue converts what encoding/json decoded, turning json.Number into
// an integer (or float when not integral). Depth is bounded by the
// pre-scan.
func jsonValue(v any) Value {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return Int(i)
		}
		f, err := x.Float64()
		if err != nil {
			// Out of float64 range: keep the literal rather than lose it.
			return Str(x.String())
		}
		return Float(f)
	case string:
		return Str(x)
	case bool:
		return Bool(x)
	case []any:
		fs := make([]Field, len(x))
		for i, e := range x {
			fs[i].Value = jsonValue(e)
		}
		return Value{kind: KindList, items: fs}
	case map[string]any:
		fs := make([]Field, 0, len(x))
		for k, e := range x {
			fs = append(fs, Field{Key: k, Value: jsonValue(e)})
		}
		return Dict(fs...)
	}
	return Value{}
}
