// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	"github.com/zeebo/bencode"
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

// maxEncodeDepth stops a self-referencing reply from recursing forever.
const maxEncodeDepth = 64

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
	l = l.withDefaults()
	if len(body) == 0 {
		return nil, FormatBencode, ErrNoPayload
	}
	switch body[0] {
	case 'd':
		m, err := decodeBencode(body, l)
		return m, FormatBencode, err
	case '{':
		m, err := decodeJSON(body, l)
		return m, FormatJSON, err
	default:
		return nil, FormatBencode, ErrBadFormat
	}
}

func decodeBencode(body []byte, l Limits) (map[string]any, error) {
	if len(body) > l.MaxSize {
		return nil, fmt.Errorf("bencode body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	// The pre-scan validates the whole structure, so the reflective decoder
	// below never sees a string length larger than the input (it would
	// allocate it up front) or nesting deep enough to exhaust the stack.
	n, err := scanBencode(body, l.MaxDepth)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := bencode.DecodeBytes(body[:n], &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBencode, err)
	}
	if m == nil {
		return nil, ErrNotDict
	}
	return m, nil
}

func decodeJSON(body []byte, l Limits) (map[string]any, error) {
	if len(body) > l.MaxSize {
		return nil, fmt.Errorf("JSON body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	if err := scanJSONDepth(body, l.MaxDepth); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ErrNotDict
	}
	normaliseJSONMap(m)
	return m, nil
}

// normaliseJSONMap turns json.Number into int64 (or float64 when not
// integral) in place. Depth is bounded by the pre-scan.
func normaliseJSONMap(m map[string]any) {
	for k, v := range m {
		m[k] = normaliseJSONValue(v)
	}
}

func normaliseJSONValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, err := x.Float64()
		if err != nil {
			// Out of float64 range: keep the literal rather than lose it.
			return x.String()
		}
		return f
	case map[string]any:
		normaliseJSONMap(x)
		return x
	case []any:
		for i := range x {
			x[i] = normaliseJSONValue(x[i])
		}
		return x
	default:
		return v
	}
}

// Encode renders a reply as "<cookie> <dictionary>" in format f.
func Encode(cookie string, f Format, reply Reply) ([]byte, error) {
	if cookie == "" || bytes.IndexByte([]byte(cookie), ' ') >= 0 {
		return nil, ErrNoCookie
	}
	norm, err := normaliseReply(reflect.ValueOf(map[string]any(reply)), f, 0)
	if err != nil {
		return nil, err
	}
	if norm == nil {
		norm = map[string]any{}
	}
	buf := bytes.NewBuffer(make([]byte, 0, 256))
	buf.WriteString(cookie)
	buf.WriteByte(' ')
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(buf)
		// SDP and reasons go out as they are; the reference does not
		// HTML-escape either.
		enc.SetEscapeHTML(false)
		if err := enc.Encode(norm); err != nil {
			return nil, fmt.Errorf("encode JSON reply: %w", err)
		}
		// json.Encoder terminates each value with a newline.
		return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
	case FormatBencode:
		if err := bencode.NewEncoder(buf).Encode(norm); err != nil {
			return nil, fmt.Errorf("encode bencode reply: %w", err)
		}
		return buf.Bytes(), nil
	default:
		return nil, fmt.Errorf("encode reply as %v: %w", f, ErrUnsupportedType)
	}
}

var textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()

// normaliseReply converts a reply value into the few types both encoders
// handle exactly the way the wire wants: string, int64, uint64, bool (JSON
// only), float64 (JSON only), []any and map[string]any. It returns nil for
// values to leave out (nil pointers, interfaces, maps and slices stay
// present as empty containers though). zeebo/bencode would otherwise fail on
// floats and write a key without a value for a nil pointer.
func normaliseReply(v reflect.Value, f Format, depth int) (any, error) {
	if depth > maxEncodeDepth {
		return nil, fmt.Errorf("reply nested deeper than %d: %w", maxEncodeDepth, ErrUnsupportedType)
	}
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return nil, nil
		}
		if v.Kind() == reflect.Pointer && v.Type().Implements(textMarshalerType) {
			break
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return nil, nil
	}
	if v.Type().Implements(textMarshalerType) && v.Kind() != reflect.String {
		t, err := v.Interface().(encoding.TextMarshaler).MarshalText()
		if err != nil {
			return nil, fmt.Errorf("marshal %s as text: %w", v.Type(), err)
		}
		return string(t), nil
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), nil
	case reflect.Bool:
		if f == FormatJSON {
			return v.Bool(), nil
		}
		if v.Bool() {
			return int64(1), nil
		}
		return int64(0), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint(), nil
	case reflect.Float32, reflect.Float64:
		return normaliseFloat(v.Float(), f), nil
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Kind() == reflect.Slice {
				return string(v.Bytes()), nil
			}
			b := make([]byte, v.Len())
			reflect.Copy(reflect.ValueOf(b), v)
			return string(b), nil
		}
		out := make([]any, 0, v.Len())
		for i := 0; i < v.Len(); i++ {
			e, err := normaliseReply(v.Index(i), f, depth+1)
			if err != nil {
				return nil, err
			}
			if e != nil {
				out = append(out, e)
			}
		}
		return out, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map with %s keys: %w", v.Type().Key(), ErrUnsupportedType)
		}
		out := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			e, err := normaliseReply(it.Value(), f, depth+1)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", it.Key().String(), err)
			}
			if e != nil {
				out[it.Key().String()] = e
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s: %w", v.Type(), ErrUnsupportedType)
	}
}

// normaliseFloat keeps floats in JSON; bencode has no floats, so integral
// values become integers and the rest decimal strings.
func normaliseFloat(x float64, f Format) any {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	if f == FormatJSON {
		return x
	}
	if x == math.Trunc(x) && x >= math.MinInt64 && x < math.MaxInt64 {
		return int64(x)
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}
