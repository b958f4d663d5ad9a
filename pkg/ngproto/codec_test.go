// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/zeebo/bencode"
)

func TestSplitMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantCookie string
		wantBody   string
		wantErr    error
	}{
		{"bencode", "0_123_1 d7:command4:pinge", "0_123_1", "d7:command4:pinge", nil},
		{"first space splits", "c d1:a1: be", "c", "d1:a1: be", nil},
		{"empty body", "c ", "c", "", nil},
		{"two spaces", "c  d", "c", " d", nil},
		{"no space", "cookie", "", "", ErrNoCookie},
		{"leading space", " d7:command4:pinge", "", "", ErrNoCookie},
		{"empty", "", "", "", ErrNoCookie},
		{"only space", " ", "", "", ErrNoCookie},
		{"binary cookie", "\x00\xff d", "\x00\xff", "d", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cookie, body, err := SplitMessage([]byte(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("SplitMessage(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if cookie != tc.wantCookie || string(body) != tc.wantBody {
				t.Errorf("SplitMessage(%q) = %q, %q; want %q, %q", tc.in, cookie, body, tc.wantCookie, tc.wantBody)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		want       map[string]any
		wantFormat Format
		wantReason string
	}{
		{
			name:       "bencode ping",
			in:         "d7:command4:pinge",
			want:       map[string]any{"command": "ping"},
			wantFormat: FormatBencode,
		},
		{
			name: "bencode nested values",
			in:   "d4:listl1:ai-3ee1:dd1:xi0ee1:ni42e1:s0:e",
			want: map[string]any{
				"list": []any{"a", int64(-3)},
				"d":    map[string]any{"x": int64(0)},
				"n":    int64(42),
				"s":    "",
			},
			wantFormat: FormatBencode,
		},
		{
			name:       "bencode unsorted keys accepted",
			in:         "d7:command4:ping4:abcd1:xe",
			want:       map[string]any{"command": "ping", "abcd": "x"},
			wantFormat: FormatBencode,
		},
		{
			name:       "bencode empty dict",
			in:         "de",
			want:       map[string]any{},
			wantFormat: FormatBencode,
		},
		{
			name:       "bencode trailing bytes ignored",
			in:         "d7:command4:pinge\n",
			want:       map[string]any{"command": "ping"},
			wantFormat: FormatBencode,
		},
		{
			name:       "binary string",
			in:         "d1:b3:\x00\xff e",
			want:       map[string]any{"b": "\x00\xff "},
			wantFormat: FormatBencode,
		},
		{
			name: "JSON",
			in:   `{"command":"offer","TOS":184,"ratio":0.5,"flag":true,"nothing":null,"l":["a",1],"d":{"k":"v"}}`,
			want: map[string]any{
				"command": "offer", "TOS": int64(184), "ratio": 0.5, "flag": true, "nothing": nil,
				"l": []any{"a", int64(1)}, "d": map[string]any{"k": "v"},
			},
			wantFormat: FormatJSON,
		},
		{
			name:       "JSON huge integer becomes float",
			in:         `{"n":100000000000000000000}`,
			want:       map[string]any{"n": 1e20},
			wantFormat: FormatJSON,
		},
		{"empty", "", nil, FormatBencode, ReasonNoPayload},
		{"unknown format", "x", nil, FormatBencode, ReasonBadFormat},
		{"list is not a format", "le", nil, FormatBencode, ReasonBadFormat},
		{"truncated bencode", "d7:command4:pin", nil, FormatBencode, ReasonBadBencode},
		{"unterminated dict", "d7:command4:ping", nil, FormatBencode, ReasonBadBencode},
		{"key without value", "d7:commande", nil, FormatBencode, ReasonBadBencode},
		{"integer key", "di1e1:ae", nil, FormatBencode, ReasonBadBencode},
		{"bad integer", "d1:ai1x2ee", nil, FormatBencode, ReasonBadBencode},
		{"empty integer", "d1:aiee", nil, FormatBencode, ReasonBadBencode},
		{"integer overflow", "d1:ai99999999999999999999999ee", nil, FormatBencode, ReasonBadBencode},
		{"string longer than input", "d1:a999999999:xe", nil, FormatBencode, ReasonBadBencode},
		{"huge string length", "d1:a99999999999999999999999999:xe", nil, FormatBencode, ReasonBadBencode},
		{"missing colon", "d1:a3xyze", nil, FormatBencode, ReasonBadBencode},
		{"garbage in dict", "d1:a1:b?e", nil, FormatBencode, ReasonBadBencode},
		{"broken JSON", `{"command":`, nil, FormatJSON, ReasonBadJSON},
		{"JSON trailing comma", `{"a":1,}`, nil, FormatJSON, ReasonBadJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, f, err := Decode([]byte(tc.in))
			if f != tc.wantFormat {
				t.Errorf("format = %v, want %v", f, tc.wantFormat)
			}
			if tc.wantReason != "" {
				if err == nil {
					t.Fatalf("Decode(%q) = %v, want error %q", tc.in, got, tc.wantReason)
				}
				if r := Reason(err); r != tc.wantReason {
					t.Errorf("Reason = %q, want %q (error %v)", r, tc.wantReason, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q) error: %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode(%q)\n got %#v\nwant %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	nest := func(open, close string, n int) string {
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	// d + (depth-1) lists inside one key.
	bencDepth := func(depth int) string {
		return "d1:a" + nest("l", "e", depth-1) + "e"
	}
	jsonDepth := func(depth int) string {
		return `{"a":` + nest("[", "]", depth-1) + "}"
	}
	tests := []struct {
		name       string
		limits     Limits
		in         string
		wantReason string
	}{
		{"bencode at depth limit", Limits{MaxDepth: 32}, bencDepth(32), ""},
		{"bencode over depth limit", Limits{MaxDepth: 32}, bencDepth(33), ReasonTooDeep},
		{"bencode very deep", Limits{}, bencDepth(20000), ReasonTooDeep},
		{"bencode deep but truncated", Limits{}, "d1:a" + strings.Repeat("l", 60000), ReasonTooDeep},
		{"JSON at depth limit", Limits{MaxDepth: 32}, jsonDepth(32), ""},
		{"JSON over depth limit", Limits{MaxDepth: 32}, jsonDepth(33), ReasonTooDeep},
		{"JSON brackets in strings do not count", Limits{MaxDepth: 2}, `{"a":"[[[[\"{{{{","b":[1]}`, ""},
		{"bencode size at limit", Limits{MaxSize: 20}, "d1:a12:" + strings.Repeat("x", 12) + "e", ""},
		{"bencode over size", Limits{MaxSize: 20}, "d1:a13:" + strings.Repeat("x", 13) + "e", ReasonTooLarge},
		{"JSON over size", Limits{MaxSize: 10}, `{"a":"12345"}`, ReasonTooLarge},
		{"default size", Limits{}, "d1:a70000:" + strings.Repeat("x", 70000) + "e", ReasonTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.limits.Decode([]byte(tc.in))
			if got := Reason(err); got != tc.wantReason {
				t.Errorf("Reason = %q, want %q (error %v)", got, tc.wantReason, err)
			}
		})
	}
}

func TestScanBencodeLength(t *testing.T) {
	tests := []struct {
		in          string
		want, items int
	}{
		{"de", 2, 0},
		{"d1:ai1ee", 8, 1},
		{"d1:ali1ei2eee", 13, 3},
		{"d1:ad1:bdeee", 12, 2},
		{"d1:a0:e rest", 7, 1},
	}
	for _, tc := range tests {
		n, items, err := scanBencode([]byte(tc.in), 32)
		if err != nil || n != tc.want || items != tc.items {
			t.Errorf("scanBencode(%q) = %d, %d, %v; want %d, %d, nil", tc.in, n, items, err, tc.want, tc.items)
		}
	}
}

func TestEncodeBencode(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	generic := func(m map[string]any) Reply {
		r, err := ReplyOf(m)
		if err != nil {
			t.Fatalf("ReplyOf(%v): %v", m, err)
		}
		return r
	}
	tests := []struct {
		name  string
		reply Reply
		want  string
	}{
		{"ok", OK(), "c d6:result2:oke"},
		{"ok with fields", OK(F("sdp", Str("v=0")), F("a", Int(1))), "c d1:ai1e6:result2:ok3:sdp3:v=0e"},
		{"pong", Pong(), "c d6:result4:ponge"},
		{"error", ErrorReply(ReasonOutOfPorts), "c d12:error-reason16:Ran out of ports6:result5:errore"},
		{"warning", OK().WithWarning(WarningCallNotFound), "c d6:result2:ok7:warning38:Call-ID not found or tags didn't matche"},
		{"zero reply warning", Reply{}.WithWarning("w"), "c d6:result2:ok7:warning1:we"},
		{"warning replaces", OK().WithWarning("a").WithWarning("b"), "c d6:result2:ok7:warning1:be"},
		{"load limit", LoadLimit("busy"), "c d7:message4:busy6:result10:load limite"},
		{"load limit without message", LoadLimit(""), "c d6:result10:load limite"},
		{"empty", NewReply(), "c de"},
		{"zero reply", Reply{}, "c de"},
		{"last duplicate wins", NewReply(F("k", Int(1)), F("a", Int(2)), F("k", Int(3))), "c d1:ai2e1:ki3ee"},
		{"bools as ints", NewReply(F("t", Bool(true)), F("f", Bool(false))), "c d1:fi0e1:ti1ee"},
		{"integers", NewReply(F("a", Int(1)), F("b", Int(-2)), F("c", Uint(math.MaxInt64)), F("d", Int(math.MinInt64))),
			"c d1:ai1e1:bi-2e1:ci9223372036854775807e1:di-9223372036854775808ee"},
		{"floats", NewReply(F("i", Float(2)), F("f", Float(4.25)), F("n", Float(math.NaN())), F("inf", Float(math.Inf(-1)))),
			"c d1:f4:4.251:ii2e3:inf4:-Inf1:n3:NaNe"},
		{"bytes", NewReply(F("b", Bytes([]byte("x y")))), "c d1:b3:x ye"},
		{"string list", NewReply(F("l", Strings([]string{"a", "bc"}))), "c d1:ll1:a2:bcee"},
		{"empty list", NewReply(F("l", List()), F("m", Strings(nil))), "c d1:lle1:mlee"},
		{"nested", NewReply(F("r", Dict(F("x", Dict(F("y", List(Int(1), Str("z")))))))), "c d1:rd1:xd1:yli1e1:zeeee"},
		{"nulls left out", NewReply(F("a", Value{}), F("l", List(Value{}, Str("x"))), F("d", Dict(F("n", Value{})))), "c d1:dde1:ll1:xee"},
		{"binary", NewReply(F("\x00\xff", Str("\xff\x00"))), "c d2:\x00\xff2:\xff\x00e"},
		{"generic", generic(map[string]any{"i": 1, "u": uint16(4), "f": 2.5, "b": true, "n": nil, "s": []string{"a"},
			"l": []any{"x", int64(7), nil}, "m": map[string]string{"k": "v"}, "bytes": []byte("q"),
			"addr": addr, "ap": netip.MustParseAddrPort("[2001:db8::1]:5"), "v": Int(3), "r": OK()}),
			"c d4:addr9:192.0.2.12:ap15:[2001:db8::1]:51:bi1e5:bytes1:q1:f3:2.51:ii1e1:ll1:xi7ee1:md1:k1:ve1:rd6:result2:oke1:sl1:ae1:ui4e1:vi3ee"},
	}
	if got, _ := Encode("c", FormatBencode, NewReply(F("u", Uint(math.MaxUint64)))); string(got) != "c d1:ui18446744073709551615ee" {
		t.Errorf("largest unsigned: %q", got)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Encode("c", FormatBencode, tc.reply)
			if err != nil {
				t.Fatalf("Encode error: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Encode\n got %q\nwant %q", got, tc.want)
			}
			if cap(got) != len(got) {
				t.Errorf("bencode reply allocated %d bytes for %d", cap(got), len(got))
			}
			// Every output must be valid bencode our own decoder accepts.
			_, body, _ := SplitMessage(got)
			if _, _, err := Decode(body); err != nil {
				t.Errorf("output does not decode: %v", err)
			}
		})
	}
}

func TestEncodeJSON(t *testing.T) {
	r, err := ReplyOf(map[string]any{
		"result": "ok",
		"sdp":    "v=0\r\na=x:<&>\r\n",
		"b":      true,
		"n":      int64(5),
		"f":      1.5,
		"raw":    []byte("bytes"),
		"l":      []string{"x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Encode("abc", FormatJSON, r)
	if err != nil {
		t.Fatal(err)
	}
	want := `abc {"b":true,"f":1.5,"l":["x"],"n":5,"raw":"bytes","result":"ok","sdp":"v=0\r\na=x:<&>\r\n"}`
	if string(got) != want {
		t.Errorf("JSON reply\n got %s\nwant %s", got, want)
	}
}

// TestEncodeJSONLikeEncodingJSON holds the JSON encoder to encoding/json
// (without HTML escaping), which wrote every JSON reply before.
func TestEncodeJSONLikeEncodingJSON(t *testing.T) {
	strs := []string{"", "plain", "quote\" back\\slash", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<&>",
		"caf\u00e9", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate", "emoji \U0001F600"}
	floats := []float64{0, 1, -1, 0.5, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, -2.5e-10, math.MaxFloat64, math.SmallestNonzeroFloat64}
	for _, s := range strs {
		want, _ := json.Marshal(s)
		want = bytes.ReplaceAll(bytes.ReplaceAll(bytes.ReplaceAll(want, []byte(`\u003c`), []byte("<")), []byte(`\u003e`), []byte(">")), []byte(`\u0026`), []byte("&"))
		if got := appendJSON(nil, Str(s)); !bytes.Equal(got, want) {
			t.Errorf("string %q: got %s, want %s", s, got, want)
		}
	}
	for _, f := range floats {
		want, _ := json.Marshal(f)
		if got := appendJSON(nil, Float(f)); !bytes.Equal(got, want) {
			t.Errorf("float %v: got %s, want %s", f, got, want)
		}
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, cookie := range []string{"", "a b"} {
		for _, f := range []Format{FormatBencode, FormatJSON} {
			if _, err := Encode(cookie, f, OK()); !errors.Is(err, ErrNoCookie) {
				t.Errorf("Encode(%q, %v) error = %v, want ErrNoCookie", cookie, f, err)
			}
		}
	}
	if _, err := Encode("c", Format(7), OK()); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("unknown format: error = %v", err)
	}
	self := map[string]any{}
	self["self"] = self
	for name, m := range map[string]map[string]any{
		"struct":   {"s": struct{}{}},
		"int keys": {"m": map[int]string{1: "a"}},
		"channel":  {"ch": make(chan int)},
		"pointer":  {"p": new(int)},
		"cycle":    {"m": self},
	} {
		if _, err := ReplyOf(m); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("ReplyOf(%s) error = %v, want ErrUnsupportedType", name, err)
		}
	}
}

// TestRoundTrip checks that what Decode yields, Encode writes back the same.
func TestRoundTrip(t *testing.T) {
	in := benc(kamailioOffer2())
	m, f, err := Decode([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReplyOf(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []Format{FormatBencode, FormatJSON} {
		out, err := Encode("x", format, r)
		if err != nil {
			t.Fatalf("Encode(%v): %v", format, err)
		}
		_, body, _ := SplitMessage(out)
		m2, f2, err := Decode(body)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", format, err)
		}
		if f2 != format {
			t.Errorf("format %v came back as %v", format, f2)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Errorf("%v round trip\n got %#v\nwant %#v", format, m2, m)
		}
	}
	if f != FormatBencode {
		t.Errorf("format = %v", f)
	}
	// zeebo/bencode sorts keys; the byte form of the sorted dictionary is
	// what a second encoding must produce exactly.
	sorted, err := bencode.EncodeString(m)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Encode("x", FormatBencode, r)
	if string(out) != "x "+sorted {
		t.Errorf("bencode re-encoding differs:\n got %q\nwant %q", out, "x "+sorted)
	}
	// The Value the server decodes into encodes the same.
	v, _, err := Limits{}.DecodeValue([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendValue(nil, FormatBencode, v); string(got) != sorted {
		t.Errorf("decoded Value re-encodes as %q, want %q", got, sorted)
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrNoCommand, ReasonNoCommand},
		{&InvalidValueError{Key: "TOS"}, `invalid value for key "TOS"`},
		{errors.New("whatever"), ReasonInternal},
	}
	for _, tc := range tests {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if ReasonNoCommand != `Dictionary contains no key "command"` {
		t.Errorf("ReasonNoCommand = %q", ReasonNoCommand)
	}
}
