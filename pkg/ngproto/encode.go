// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The encoders append straight into one byte slice: no reflection, no fmt,
// no intermediate copies. Dictionaries are already sorted (Dict keeps them
// so), which is the key order both encodings have always written: sorted
// byte-wise, as zeebo/bencode and encoding/json sort map keys.

// Encode renders a reply as "<cookie> <dictionary>" in format f. It fails
// only for a cookie that is empty or holds a space, or an unknown format.
func Encode(cookie string, f Format, r Reply) ([]byte, error) {
	if cookie == "" || strings.IndexByte(cookie, ' ') >= 0 {
		return nil, ErrNoCookie
	}
	v := r.v
	if v.kind != KindDict {
		v = Value{kind: KindDict}
	}
	switch f {
	case FormatBencode:
		b := make([]byte, 0, len(cookie)+1+bencodeLen(v))
		b = append(b, cookie...)
		b = append(b, ' ')
		return appendBencode(b, v), nil
	case FormatJSON:
		// JSON adds quotes, commas and escapes; a quarter more than the
		// bencode size covers a typical reply without growing.
		n := bencodeLen(v)
		b := make([]byte, 0, len(cookie)+1+n+n/4+16)
		b = append(b, cookie...)
		b = append(b, ' ')
		return appendJSON(b, v), nil
	default:
		return nil, fmt.Errorf("encode reply as %v: %w", f, ErrUnsupportedType)
	}
}

// AppendValue appends v encoded in format f (a JSON or bencode document
// without cookie).
func AppendValue(b []byte, f Format, v Value) []byte {
	if f == FormatJSON {
		return appendJSON(b, v)
	}
	return appendBencode(b, v)
}

// bencodeFloat is how bencode, which has neither floats nor booleans,
// carries a float: an integer when it is integral, else a decimal string.
func bencodeFloat(x float64) (n int64, s string, isInt bool) {
	switch {
	case math.IsNaN(x) || math.IsInf(x, 0):
		return 0, strconv.FormatFloat(x, 'g', -1, 64), false
	case x == math.Trunc(x) && x >= math.MinInt64 && x < math.MaxInt64:
		return int64(x), "", true
	}
	return 0, strconv.FormatFloat(x, 'f', -1, 64), false
}

func appendBencode(b []byte, v Value) []byte {
	switch v.kind {
	case KindString:
		return appendBencodeString(b, v.str)
	case KindInt:
		b = append(b, 'i')
		b = strconv.AppendInt(b, int64(v.num), 10)
		return append(b, 'e')
	case KindUint:
		b = append(b, 'i')
		b = strconv.AppendUint(b, v.num, 10)
		return append(b, 'e')
	case KindBool:
		if v.num != 0 {
			return append(b, "i1e"...)
		}
		return append(b, "i0e"...)
	case KindFloat:
		n, s, isInt := bencodeFloat(math.Float64frombits(v.num))
		if isInt {
			return appendBencode(b, Int(n))
		}
		return appendBencodeString(b, s)
	case KindList:
		b = append(b, 'l')
		for i := range v.items {
			if it := &v.items[i].Value; it.kind != KindNull {
				b = appendBencode(b, *it)
			}
		}
		return append(b, 'e')
	case KindDict:
		b = append(b, 'd')
		for i := range v.items {
			f := &v.items[i]
			if f.Value.kind == KindNull {
				continue
			}
			b = appendBencodeString(b, f.Key)
			b = appendBencode(b, f.Value)
		}
		return append(b, 'e')
	}
	return b
}

func appendBencodeString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

// bencodeLen is the exact length appendBencode writes for v, so that a
// reply is written into one allocation of the right size.
func bencodeLen(v Value) int {
	switch v.kind {
	case KindString:
		return decimalLen(uint64(len(v.str))) + 1 + len(v.str)
	case KindInt:
		n := int64(v.num)
		if n < 0 {
			return 3 + decimalLen(-uint64(n))
		}
		return 2 + decimalLen(uint64(n))
	case KindUint:
		return 2 + decimalLen(v.num)
	case KindBool:
		return 3
	case KindFloat:
		n, s, isInt := bencodeFloat(math.Float64frombits(v.num))
		if isInt {
			return bencodeLen(Int(n))
		}
		return bencodeLen(Str(s))
	case KindList, KindDict:
		n := 2
		for i := range v.items {
			f := &v.items[i]
			if f.Value.kind == KindNull {
				continue
			}
			if v.kind == KindDict {
				n += decimalLen(uint64(len(f.Key))) + 1 + len(f.Key)
			}
			n += bencodeLen(f.Value)
		}
		return n
	}
	return 0
}

func decimalLen(n uint64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

func appendJSON(b []byte, v Value) []byte {
	switch v.kind {
	case KindString:
		return appendJSONString(b, v.str)
	case KindInt:
		return strconv.AppendInt(b, int64(v.num), 10)
	case KindUint:
		return strconv.AppendUint(b, v.num, 10)
	case KindBool:
		if v.num != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case KindFloat:
		return appendJSONFloat(b, math.Float64frombits(v.num))
	case KindList:
		b = append(b, '[')
		first := true
		for i := range v.items {
			it := &v.items[i].Value
			if it.kind == KindNull {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSON(b, *it)
		}
		return append(b, ']')
	case KindDict:
		b = append(b, '{')
		first := true
		for i := range v.items {
			f := &v.items[i]
			if f.Value.kind == KindNull {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, f.Key)
			b = append(b, ':')
			b = appendJSON(b, f.Value)
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

// appendJSONFloat writes a float the way encoding/json does (ES6 number
// formatting); NaN and infinities, which JSON cannot hold, become strings.
func appendJSONFloat(b []byte, x float64) []byte {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return appendJSONString(b, strconv.FormatFloat(x, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(x); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, x, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7, as in encoding/json.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s exactly as encoding/json does without HTML
// escaping: control characters, quote and backslash escaped, invalid UTF-8
// replaced by U+FFFD, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
