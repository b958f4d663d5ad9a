// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"fmt"
	"strings"
)

// MaxReplyDatagram is the largest UDP payload IPv4 can carry (65,535 minus
// the IP and UDP headers): a reply larger than this cannot be sent at all.
const MaxReplyDatagram = 65_507

// A reply that does not fit one datagram is never dropped: the proxy would
// retry and then mark the relay down, although the command (a delete, say)
// was done. The steps below take out its bulkiest optional parts, in order,
// until it fits; each names what it left out for the reply's warning. They
// know the shape of the call statistics tree of query and delete (callReply)
// and of list, and leave any other reply alone.
var shedSteps = []struct {
	what  string
	apply func(Value) Value
}{
	// The relay's own per-SSRC counters; the MOS dictionaries the parties
	// reported stay, as Kamailio reads them.
	{"per-SSRC statistics", func(r Value) Value {
		r = mapKey(r, "SSRC", func(v Value) Value {
			return mapValues(v, func(s Value) Value {
				return withoutKeys(s, "duplicates", "jitter", "packets", "packets lost", "relay MOS", "reordered")
			})
		})
		return mapStreams(r, func(st Value) Value { return withoutKeys(st, "SSRC") })
	}},
	{"per-SSRC MOS", func(r Value) Value { return withoutKeys(r, "SSRC") }},
	// Each stream keeps where it is: its local port and endpoint.
	{"per-stream statistics", func(r Value) Value {
		return mapStreams(r, func(st Value) Value { return onlyKeys(st, "endpoint", "local port") })
	}},
	{"streams", func(r Value) Value {
		return mapMedias(r, func(m Value) Value { return withoutKeys(m, "streams", "security") })
	}},
	{"medias", func(r Value) Value {
		return mapKey(r, "tags", func(v Value) Value {
			return mapValues(v, func(t Value) Value { return onlyKeys(t, "created", "label", "tag") })
		})
	}},
	{"tags", func(r Value) Value { return withoutKeys(r, "tags") }},
}

// shedReply returns the encoding of the first shed form of r that fits max
// bytes, with a warning naming what was left out, and how many parts went.
// When nothing optional is left it halves a list reply's call-ids, and at
// worst answers an error saying the reply was too large: never nothing.
func shedReply(cookie string, f Format, r Reply, size, max int) ([]byte, []string) {
	v := r.v
	var left []string
	for _, step := range shedSteps {
		next := step.apply(v)
		if bencodeLen(next) == bencodeLen(v) {
			continue // nothing of this kind in the reply
		}
		v = next
		left = append(left, step.what)
		if b, ok := encodeWithin(cookie, f, v, left, size, max); ok {
			return b, left
		}
	}
	if calls := v.Get("calls"); calls.kind == KindList {
		for n := len(calls.items) / 2; n > 0; n /= 2 {
			cut := Value{kind: KindList, items: calls.items[:n]}
			w := append(left[:len(left):len(left)], fmt.Sprintf("all but the first %d of %d call-ids", n, len(calls.items)))
			if b, ok := encodeWithin(cookie, f, withKey(v, "calls", cut), w, size, max); ok {
				return b, w
			}
		}
	}
	b, _ := Encode(cookie, f, ErrorReply(fmt.Sprintf("%s: a reply of %d bytes does not fit one datagram of %d", ReasonTooLarge, size, max)))
	return b, append(left, "everything")
}

func encodeWithin(cookie string, f Format, v Value, left []string, size, max int) ([]byte, bool) {
	w := fmt.Sprintf("reply of %d bytes too large for one datagram: left out %s", size, strings.Join(left, ", "))
	if old := v.Get("warning"); old.kind == KindString && old.str != "" {
		w = old.str + "; " + w
	}
	b, err := Encode(cookie, f, Reply{v: withKey(v, "warning", Str(w))})
	return b, err == nil && len(b) <= max
}

// withKey returns dictionary d with key set to x.
func withKey(d Value, key string, x Value) Value {
	fields := make([]Field, len(d.items), len(d.items)+1)
	copy(fields, d.items)
	return Dict(append(fields, F(key, x))...)
}

// withoutKeys returns dictionary d without keys (d itself when none is
// there or d is no dictionary). Empty values stay: leaving them out would
// save nothing worth a warning.
func withoutKeys(d Value, keys ...string) Value {
	if d.kind != KindDict {
		return d
	}
	var out []Field
	for i, f := range d.items {
		drop := false
		for _, k := range keys {
			if f.Key == k {
				drop = !isEmpty(f.Value)
				break
			}
		}
		if drop && out == nil {
			out = append(make([]Field, 0, len(d.items)), d.items[:i]...)
		} else if !drop && out != nil {
			out = append(out, f)
		}
	}
	if out == nil {
		return d
	}
	return Value{kind: KindDict, items: out}
}

// onlyKeys returns dictionary d with nothing but keys.
func onlyKeys(d Value, keys ...string) Value {
	if d.kind != KindDict {
		return d
	}
	out := make([]Field, 0, len(keys))
	for _, f := range d.items {
		for _, k := range keys {
			if f.Key == k {
				out = append(out, f)
				break
			}
		}
	}
	return Value{kind: KindDict, items: out}
}

// mapKey applies fn to the value of key in dictionary d.
func mapKey(d Value, key string, fn func(Value) Value) Value {
	if d.kind != KindDict {
		return d
	}
	for i, f := range d.items {
		if f.Key == key {
			out := make([]Field, len(d.items))
			copy(out, d.items)
			out[i].Value = fn(f.Value)
			return Value{kind: KindDict, items: out}
		}
	}
	return d
}

// mapValues applies fn to every value of a dictionary or item of a list.
func mapValues(c Value, fn func(Value) Value) Value {
	if c.kind != KindDict && c.kind != KindList {
		return c
	}
	out := make([]Field, len(c.items))
	for i, f := range c.items {
		out[i] = Field{Key: f.Key, Value: fn(f.Value)}
	}
	return Value{kind: c.kind, items: out}
}

// mapMedias applies fn to every media of every party of a call tree.
func mapMedias(r Value, fn func(Value) Value) Value {
	return mapKey(r, "tags", func(tags Value) Value {
		return mapValues(tags, func(t Value) Value {
			return mapKey(t, "medias", func(ms Value) Value { return mapValues(ms, fn) })
		})
	})
}

// mapStreams applies fn to every stream of a call tree.
func mapStreams(r Value, fn func(Value) Value) Value {
	return mapMedias(r, func(m Value) Value {
		return mapKey(m, "streams", func(ss Value) Value { return mapValues(ss, fn) })
	})
}

func isEmpty(v Value) bool {
	return v.kind == KindNull || (v.kind == KindDict || v.kind == KindList) && len(v.items) == 0
}
