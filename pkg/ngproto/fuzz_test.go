// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"errors"
	"reflect"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/: the Kamailio requests of
// the reference (§1.7), JSON variants, and malformed and hostile variants.

// FuzzSplitDecode drives the framing and dictionary decoding with arbitrary
// datagrams. Whatever decodes must encode again, and bencode must survive a
// round trip unchanged; whatever fails must map onto a wire error reason.
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
		out, err := Encode(cookie, format, Reply(m))
		if err != nil {
			t.Fatalf("decoded %#v does not encode: %v", m, err)
		}
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
// never panic, and every error must be one the client can be told about.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(benc(kamailioOffer1())))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, _, err := Decode(body)
		if err != nil {
			return
		}
		req, err := ParseRequest(m)
		if req == nil {
			t.Fatal("ParseRequest returned a nil Request")
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
		if _, err := Encode("c", FormatBencode, Reply{
			"command": req.Command, "call-id": req.CallID, "ignored": req.Ignored,
			"direction": req.Direction, "codec": req.Codec, "tos": req.TOS,
			"received-from": req.ReceivedFrom,
		}); err != nil {
			t.Fatalf("cannot encode request fields: %v", err)
		}
	})
}
