// SPDX-License-Identifier: Apache-2.0

package ngproto

// The codec as it was before the typed encoder and the direct decoder:
// a reflective walk normalising the reply, zeebo/bencode's reflective
// encoder and decoder. The fuzz targets hold the new codec to it byte for
// byte; it goes when the new one has proven itself.

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

// maxEncodeDepth stops a self-referencing reply from recursing forever.
const maxEncodeDepth = 64

// legacyDecode is Limits.Decode as it was.
func legacyDecode(l Limits, body []byte) (map[string]any, Format, error) {
	l = l.withDefaults()
	if len(body) == 0 {
		return nil, FormatBencode, ErrNoPayload
	}
	switch body[0] {
	case 'd':
		m, err := legacyDecodeBencode(body, l)
		return m, FormatBencode, err
	case '{':
		m, err := legacyDecodeJSON(body, l)
		return m, FormatJSON, err
	default:
		return nil, FormatBencode, ErrBadFormat
	}
}

func legacyScan(b []byte, maxDepth int) (int, error) {
	n, _, err := scanBencode(b, maxDepth)
	return n, err
}

func legacyDecodeBencode(body []byte, l Limits) (map[string]any, error) {
	if len(body) > l.MaxSize {
		return nil, fmt.Errorf("bencode body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	// The pre-scan validates the whole structure, so the reflective decoder
	// below never sees a string length larger than the input (it would
	// allocate it up front) or nesting deep enough to exhaust the stack.
	n, err := legacyScan(body, l.MaxDepth)
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

func legacyDecodeJSON(body []byte, l Limits) (map[string]any, error) {
	if len(body) > l.MaxSize {
		return nil, fmt.Errorf("JSON body of %d bytes exceeds %d: %w", len(body), l.MaxSize, ErrTooLarge)
	}
	if _, err := scanJSONDepth(body, l.MaxDepth); err != nil {
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
	legacyNormaliseJSONMap(m)
	return m, nil
}

// legacyNormaliseJSONMap turns json.Number into int64 (or float64 when not
// integral) in place. Depth is bounded by the pre-scan.
func legacyNormaliseJSONMap(m map[string]any) {
	for k, v := range m {
		m[k] = legacyNormaliseJSONValue(v)
	}
}

func legacyNormaliseJSONValue(v any) any {
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
		legacyNormaliseJSONMap(x)
		return x
	case []any:
		for i := range x {
			x[i] = legacyNormaliseJSONValue(x[i])
		}
		return x
	default:
		return v
	}
}

// legacyEncode renders a reply as "<cookie> <dictionary>" in format f.
func legacyEncode(cookie string, f Format, reply map[string]any) ([]byte, error) {
	if cookie == "" || bytes.IndexByte([]byte(cookie), ' ') >= 0 {
		return nil, ErrNoCookie
	}
	norm, err := legacyNormaliseReply(reflect.ValueOf(reply), f, 0)
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

// legacyNormaliseReply converts a reply value into the few types both encoders
// handle exactly the way the wire wants: string, int64, uint64, bool (JSON
// only), float64 (JSON only), []any and map[string]any. It returns nil for
// values to leave out (nil pointers, interfaces, maps and slices stay
// present as empty containers though). zeebo/bencode would otherwise fail on
// floats and write a key without a value for a nil pointer.
func legacyNormaliseReply(v reflect.Value, f Format, depth int) (any, error) {
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
		return legacyNormaliseFloat(v.Float(), f), nil
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
			e, err := legacyNormaliseReply(v.Index(i), f, depth+1)
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
			e, err := legacyNormaliseReply(it.Value(), f, depth+1)
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

// legacyNormaliseFloat keeps floats in JSON; bencode has no floats, so integral
// values become integers and the rest decimal strings.
func legacyNormaliseFloat(x float64, f Format) any {
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
