// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"cmp"
	"encoding"
	"fmt"
	"math"
	"slices"
)

// Kind is the type of a Value.
type Kind uint8

const (
	// KindNull is the zero Value: absent. Dictionaries and lists leave it
	// out when encoded; a JSON null decodes to it.
	KindNull Kind = iota
	KindString
	KindInt
	KindUint
	// KindBool encodes as true/false in JSON and as i1e/i0e in bencode,
	// which has no booleans.
	KindBool
	// KindFloat encodes as a number in JSON; in bencode, which has no
	// floats, an integral value becomes an integer and any other a decimal
	// string. NaN and infinities are strings in both.
	KindFloat
	KindList
	KindDict
)

// Value is one node of an ng dictionary, typed: replies are built from
// Values and encoded straight into bytes, and requests decode into them.
// A Value is immutable once built, so it may be encoded concurrently.
type Value struct {
	kind  Kind
	str   string  // KindString
	num   uint64  // KindInt (two's complement), KindUint, KindBool (0 or 1), KindFloat (IEEE bits)
	items []Field // KindList (keys empty), KindDict (sorted by key, keys unique)
}

// Field is one key and value of a dictionary.
type Field struct {
	Key   string
	Value Value
}

// F returns the Field key: v.
func F(key string, v Value) Field { return Field{Key: key, Value: v} }

// Str returns a string Value.
func Str(s string) Value { return Value{kind: KindString, str: s} }

// Bytes returns a string Value holding a copy of b.
func Bytes(b []byte) Value { return Value{kind: KindString, str: string(b)} }

// Int returns an integer Value.
func Int(n int64) Value { return Value{kind: KindInt, num: uint64(n)} }

// Uint returns an unsigned integer Value.
func Uint(n uint64) Value { return Value{kind: KindUint, num: n} }

// Bool returns a boolean Value.
func Bool(b bool) Value {
	if b {
		return Value{kind: KindBool, num: 1}
	}
	return Value{kind: KindBool}
}

// Float returns a floating-point Value.
func Float(f float64) Value { return Value{kind: KindFloat, num: math.Float64bits(f)} }

// List returns a list of items; Null items are left out when encoded.
func List(items ...Value) Value {
	fs := make([]Field, len(items))
	for i, v := range items {
		fs[i].Value = v
	}
	return Value{kind: KindList, items: fs}
}

// Strings returns a list of strings.
func Strings(ss []string) Value {
	fs := make([]Field, len(ss))
	for i, s := range ss {
		fs[i].Value = Str(s)
	}
	return Value{kind: KindList, items: fs}
}

// Dict returns a dictionary of fields, which it takes over: they are sorted
// by key in place (the order both encodings write), and of several fields
// with one key the last wins. Fields with a Null value are left out when
// encoded.
func Dict(fields ...Field) Value {
	return Value{kind: KindDict, items: sortFields(fields)}
}

// sortFields sorts fields by key and drops all but the last of each key,
// as assigning them to a map one by one would.
func sortFields(fields []Field) []Field {
	sorted := true
	for i := 1; i < len(fields); i++ {
		if fields[i-1].Key >= fields[i].Key {
			sorted = false
			break
		}
	}
	if sorted {
		return fields
	}
	slices.SortStableFunc(fields, func(a, b Field) int { return cmp.Compare(a.Key, b.Key) })
	out := fields[:0]
	for i, f := range fields {
		if i+1 < len(fields) && fields[i+1].Key == f.Key {
			continue
		}
		out = append(out, f)
	}
	return out
}

// appendSorted appends src to dst sorted by key, keeping only the last of
// fields with one key, as sortFields does in place. It sorts indices rather
// than the fields themselves: a request's dictionary arrives unsorted, and
// moving 72-byte fields around cost more than decoding them.
func appendSorted(dst, src []Field) []Field {
	var buf [64]int32
	idx := buf[:0]
	if len(src) > len(buf) {
		idx = make([]int32, 0, len(src))
	}
	for i := range src {
		idx = append(idx, int32(i))
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(src[a].Key, src[b].Key) })
	for k, i := range idx {
		if k+1 < len(idx) && src[idx[k+1]].Key == src[i].Key {
			continue
		}
		dst = append(dst, src[i])
	}
	return dst
}

// Kind returns the type of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull tells whether v is absent.
func (v Value) IsNull() bool { return v.kind == KindNull }

// Get returns the value of key in a dictionary (Null if absent or v is not
// a dictionary).
func (v Value) Get(key string) Value {
	if v.kind != KindDict {
		return Value{}
	}
	i, ok := slices.BinarySearchFunc(v.items, key, func(f Field, k string) int { return cmp.Compare(f.Key, k) })
	if !ok {
		return Value{}
	}
	return v.items[i].Value
}

// Interface returns v as the generic types Decode yields: string, int64,
// uint64, bool, float64, []any, map[string]any, or nil for Null.
func (v Value) Interface() any {
	switch v.kind {
	case KindString:
		return v.str
	case KindInt:
		return int64(v.num)
	case KindUint:
		return v.num
	case KindBool:
		return v.num != 0
	case KindFloat:
		return math.Float64frombits(v.num)
	case KindList:
		if v.items == nil {
			// An empty bencode list, which zeebo/bencode decoded as nil.
			return []any(nil)
		}
		out := make([]any, len(v.items))
		for i, f := range v.items {
			out[i] = f.Value.Interface()
		}
		return out
	case KindDict:
		out := make(map[string]any, len(v.items))
		for _, f := range v.items {
			out[f.Key] = f.Value.Interface()
		}
		return out
	}
	return nil
}

// maxValueDepth stops a self-referencing map from recursing forever in ValueOf.
const maxValueDepth = 64

// ValueOf converts generic data — what Decode returns, or a request a
// client builds — into a Value: nil, string, []byte, bool, the integer and
// float types, []any, []string, map[string]any, map[string]string, Value,
// Reply and encoding.TextMarshaler (netip.Addr, for instance, which becomes
// a string). Other types yield ErrUnsupportedType.
func ValueOf(x any) (Value, error) { return valueOf(x, 0) }

func valueOf(x any, depth int) (Value, error) {
	if depth > maxValueDepth {
		return Value{}, fmt.Errorf("value nested deeper than %d: %w", maxValueDepth, ErrUnsupportedType)
	}
	switch x := x.(type) {
	case nil:
		return Value{}, nil
	case Value:
		return x, nil
	case Reply:
		return x.v, nil
	case string:
		return Str(x), nil
	case []byte:
		return Bytes(x), nil
	case bool:
		return Bool(x), nil
	case int:
		return Int(int64(x)), nil
	case int8:
		return Int(int64(x)), nil
	case int16:
		return Int(int64(x)), nil
	case int32:
		return Int(int64(x)), nil
	case int64:
		return Int(x), nil
	case uint:
		return Uint(uint64(x)), nil
	case uint8:
		return Uint(uint64(x)), nil
	case uint16:
		return Uint(uint64(x)), nil
	case uint32:
		return Uint(uint64(x)), nil
	case uint64:
		return Uint(x), nil
	case uintptr:
		return Uint(uint64(x)), nil
	case float32:
		return Float(float64(x)), nil
	case float64:
		return Float(x), nil
	case []string:
		return Strings(x), nil
	case []any:
		fs := make([]Field, len(x))
		for i, e := range x {
			v, err := valueOf(e, depth+1)
			if err != nil {
				return Value{}, err
			}
			fs[i].Value = v
		}
		return Value{kind: KindList, items: fs}, nil
	case map[string]any:
		fs := make([]Field, 0, len(x))
		for k, e := range x {
			v, err := valueOf(e, depth+1)
			if err != nil {
				return Value{}, fmt.Errorf("key %q: %w", k, err)
			}
			fs = append(fs, Field{Key: k, Value: v})
		}
		return Dict(fs...), nil
	case map[string]string:
		fs := make([]Field, 0, len(x))
		for k, s := range x {
			fs = append(fs, Field{Key: k, Value: Str(s)})
		}
		return Dict(fs...), nil
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return Value{}, fmt.Errorf("marshal %T as text: %w", x, err)
		}
		return Str(string(t)), nil
	}
	return Value{}, fmt.Errorf("%T: %w", x, ErrUnsupportedType)
}

// arena hands out the fields of the Values one reply is built from, so that
// a reply costs a few allocations rather than one per dictionary and list.
// Values built from it stay valid after the arena moves on to a new block.
type arena struct {
	block []Field // len: fields handed out from the current block
}

// reserve returns n zeroed fields of the current block, starting a new
// block when it is full.
func (a *arena) reserve(n int) []Field {
	if n > cap(a.block)-len(a.block) {
		a.block = make([]Field, 0, max(n, 2*cap(a.block), 32))
	}
	start := len(a.block)
	a.block = a.block[:start+n]
	return a.block[start : start+n : start+n]
}

// dict is Dict with the fields copied into the arena.
func (a *arena) dict(fields ...Field) Value {
	fs := a.reserve(len(fields))
	copy(fs, fields)
	return Value{kind: KindDict, items: sortFields(fs)}
}

// strings is Strings from the arena.
func (a *arena) strings(ss []string) Value {
	fs := a.reserve(len(ss))
	for i, s := range ss {
		fs[i].Value = Str(s)
	}
	return Value{kind: KindList, items: fs}
}
