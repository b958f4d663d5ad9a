// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"unsafe"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/: the Kamailio requests of
// the reference (§1.7), JSON variants, and malformed and hostile variants.

// FuzzSplitDecode drives the framing and dictionary decoding with arbitrary
// datagrams. Whatever decodes must encode again, and bencode must survive a
// round trip unchanged; whatever fails must map onto a wire error reason.
// The decoder and both encoders are held to the codec they replaced
// (legacy_test.go): the same dictionary or the same error reason, and the
// same bytes.
func FuzzSplitDecode(f *testing.F) {
	f.Add([]byte("0_1_1 d7:command4:pinge"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cookie, body, err := SplitMessage(data)
		if err != nil {
			if !errors.Is(err, ErrNoCookie) {
				t.Fatalf("SplitMessage error %v is not ErrNoCookie", err)
			}
			return
		}
		m, format, err := Decode(body)
		lm, lformat, lerr := legacyDecode(Limits{}, body)
		if Reason(err) != Reason(lerr) || format != lformat {
			t.Fatalf("Decode = %v, %v; the old decoder said %v, %v", format, err, lformat, lerr)
		}
		if err != nil {
			reason := Reason(err)
			if reason == "" || reason == ReasonInternal {
				t.Fatalf("Decode error %v has no wire reason", err)
			}
			if _, err := Encode(cookie, format, ErrorReply(reason)); err != nil {
				t.Fatalf("cannot encode the error reply: %v", err)
			}
			return
		}
		if !reflect.DeepEqual(m, lm) {
			t.Fatalf("Decode\n got %#v\nthe old decoder %#v", m, lm)
		}
		r, err := ReplyOf(m)
		if err != nil {
			t.Fatalf("decoded %#v does not convert: %v", m, err)
		}
		v, _, err := Limits{}.DecodeValue(body)
		if err != nil {
			t.Fatalf("DecodeValue: %v", err)
		}
		for _, f := range []Format{FormatBencode, FormatJSON} {
			out, err := Encode(cookie, f, r)
			if err != nil {
				t.Fatalf("decoded %#v does not encode: %v", m, err)
			}
			old, err := legacyEncode(cookie, f, m)
			if err != nil {
				t.Fatalf("the old encoder failed on %#v: %v", m, err)
			}
			if !bytes.Equal(out, old) {
				t.Fatalf("%v encoding\n got %q\nthe old encoder %q", f, out, old)
			}
			if direct := AppendValue([]byte(cookie+" "), f, v); !bytes.Equal(direct, out) {
				t.Fatalf("%v encoding of the decoded Value\n got %q\nwant %q", f, direct, out)
			}
		}
		out, _ := Encode(cookie, format, r)
		cookie2, body2, err := SplitMessage(out)
		if err != nil || cookie2 != cookie {
			t.Fatalf("encoded message %q splits as %q, %v", out, cookie2, err)
		}
		// JSON re-encoding may grow (escapes), so only depth is bounded here.
		m2, format2, err := Limits{MaxSize: 1 << 30}.Decode(body2)
		if err != nil || format2 != format {
			t.Fatalf("re-decoding %q: %v, format %v want %v", body2, err, format2, format)
		}
		if format == FormatBencode && !reflect.DeepEqual(m, m2) {
			t.Fatalf("bencode round trip changed the dictionary\n got %#v\nwant %#v", m2, m)
		}
	})
}

// FuzzParseRequest drives the request decoder with arbitrary bodies: it must
// never panic, every error must be one the client can be told about, the
// server's path (DecodeValue, parseRequest) must agree with ParseRequest on
// the generic dictionary, and nothing the Request keeps may share memory
// with the datagram.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(benc(kamailioOffer1())))
	f.Fuzz(func(t *testing.T, body []byte) {
		v, format, err := Limits{}.DecodeValue(body)
		if err != nil {
			return
		}
		req, err := parseRequest(v)
		if req == nil {
			t.Fatal("parseRequest returned a nil Request")
		}
		m, _, _ := Decode(body)
		req2, err2 := ParseRequest(m)
		if !reflect.DeepEqual(req, req2) || Reason(err) != Reason(err2) {
			t.Fatalf("server path %+v, %v\nParseRequest %+v, %v", req, err, req2, err2)
		}
		if format == FormatBencode {
			// Bencode strings share one copy of the datagram (JSON ones are
			// allocated one by one, and their span would cover other data).
			lo, hi := stringSpan(v)
			checkNoAlias(t, reflect.ValueOf(req).Elem(), "Request", lo, hi)
		}
		if err != nil {
			if !errors.Is(err, ErrNoCommand) && !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if r := Reason(err); r == "" || r == ReasonInternal {
				t.Fatalf("error %v has no wire reason", err)
			}
			return
		}
		if req.Command != CanonicalCommand(req.Command) {
			t.Fatalf("command %q is not canonical", req.Command)
		}
		// Everything decoded must be reportable back in a reply.
		fields := []Field{F("command", Str(req.Command)), F("call-id", Str(req.CallID)),
			F("ignored", Strings(req.Ignored)), F("direction", Strings(req.Direction)),
			F("received-from", Str(req.ReceivedFrom.String()))}
		if req.TOS != nil {
			fields = append(fields, F("tos", Int(int64(*req.TOS))))
		}
		for _, sp := range req.Codec.Strip {
			fields = append(fields, F("strip", Str(sp.String())))
		}
		if _, err := Encode("c", FormatBencode, NewReply(fields...)); err != nil {
			t.Fatalf("cannot encode request fields: %v", err)
		}
	})
}

// stringSpan returns the memory range the strings of a decoded Value
// occupy: the decoder's one copy of the datagram.
func stringSpan(v Value) (lo, hi uintptr) {
	lo = ^uintptr(0)
	var walk func(Value)
	note := func(s string) {
		if len(s) == 0 {
			return
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		lo, hi = min(lo, p), max(hi, p+uintptr(len(s)))
	}
	walk = func(v Value) {
		note(v.str)
		for _, f := range v.items {
			note(f.Key)
			walk(f.Value)
		}
	}
	walk(v)
	return lo, hi
}

// checkNoAlias fails if a string reachable from v lies in [lo, hi).
func checkNoAlias(t *testing.T, v reflect.Value, path string, lo, hi uintptr) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); len(s) > 0 {
			if p := uintptr(unsafe.Pointer(unsafe.StringData(s))); p >= lo && p < hi {
				t.Fatalf("%s = %q shares the datagram's memory", path, s)
			}
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Len() > 0 {
				if p := v.Pointer(); p >= lo && p < hi {
					t.Fatalf("%s shares the datagram's memory", path)
				}
			}
			return
		}
		for i := range v.Len() {
			checkNoAlias(t, v.Index(i), path, lo, hi)
		}
	case reflect.Pointer:
		if !v.IsNil() {
			checkNoAlias(t, v.Elem(), path, lo, hi)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			checkNoAlias(t, v.Field(i), path+"."+v.Type().Field(i).Name, lo, hi)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			checkNoAlias(t, it.Key(), path+"[key]", lo, hi)
			checkNoAlias(t, it.Value(), path+"["+it.Key().String()+"]", lo, hi)
		}
	}
}
