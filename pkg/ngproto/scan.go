// SPDX-License-Identifier: Apache-2.0

package ngproto

import "fmt"

// scanBencode checks that b starts with one well-formed bencode value whose
// lists and dictionaries nest at most maxDepth deep, and returns its length
// and the number of list items and dictionary entries in it. It is
// iterative and allocation-light so that hostile input costs O(len(b)).
// Bytes after the value are not looked at, like the reference decoder.
func scanBencode(b []byte, maxDepth int) (n, items int, err error) {
	// stack holds one entry per open container: true for a dictionary whose
	// next item must be a key.
	type frame struct {
		dict    bool
		wantKey bool
	}
	stack := make([]frame, 0, 8)
	i := 0
	for {
		if i >= len(b) {
			return 0, 0, fmt.Errorf("%w: truncated at byte %d", ErrBadBencode, i)
		}
		c := b[i]
		if c == 'e' && len(stack) > 0 {
			top := stack[len(stack)-1]
			if top.dict && !top.wantKey {
				return 0, 0, fmt.Errorf("%w: dictionary key without value at byte %d", ErrBadBencode, i)
			}
			stack = stack[:len(stack)-1]
			i++
		} else {
			if n := len(stack); n > 0 && stack[n-1].dict && stack[n-1].wantKey && (c < '0' || c > '9') {
				return 0, 0, fmt.Errorf("%w: dictionary key is not a string at byte %d", ErrBadBencode, i)
			}
			switch {
			case c == 'l' || c == 'd':
				if len(stack) >= maxDepth {
					return 0, 0, fmt.Errorf("nesting exceeds %d at byte %d: %w", maxDepth, i, ErrTooDeep)
				}
				stack = append(stack, frame{dict: c == 'd', wantKey: true})
				i++
				continue // a container is not a complete value yet
			case c == 'i':
				j := i + 1
				if j < len(b) && b[j] == '-' {
					j++
				}
				start := j
				for j < len(b) && b[j] >= '0' && b[j] <= '9' {
					j++
				}
				if j == start || j >= len(b) || b[j] != 'e' {
					return 0, 0, fmt.Errorf("%w: bad integer at byte %d", ErrBadBencode, i)
				}
				i = j + 1
			case c >= '0' && c <= '9':
				j, n := i, 0
				for j < len(b) && b[j] >= '0' && b[j] <= '9' {
					n = n*10 + int(b[j]-'0')
					if n > len(b) {
						return 0, 0, fmt.Errorf("%w: string length exceeds input at byte %d", ErrBadBencode, i)
					}
					j++
				}
				if j >= len(b) || b[j] != ':' {
					return 0, 0, fmt.Errorf("%w: bad string length at byte %d", ErrBadBencode, i)
				}
				j++
				if n > len(b)-j {
					return 0, 0, fmt.Errorf("%w: string length exceeds input at byte %d", ErrBadBencode, i)
				}
				i = j + n
			default:
				return 0, 0, fmt.Errorf("%w: unexpected %q at byte %d", ErrBadBencode, c, i)
			}
		}
		// A value (scalar or closed container) is complete.
		if len(stack) == 0 {
			return i, items, nil
		}
		top := &stack[len(stack)-1]
		if !top.dict || !top.wantKey {
			items++
		}
		if top.dict {
			top.wantKey = !top.wantKey
		}
	}
}

// scanJSONDepth rejects JSON whose arrays and objects nest deeper than
// maxDepth, and returns a bound on the values its containers hold (commas
// and brackets outside strings). It only tracks strings and brackets;
// syntax is left to the decoder.
func scanJSONDepth(b []byte, maxDepth int) (items int, err error) {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case ',':
			items++
		case '{', '[':
			items++
			depth++
			if depth > maxDepth {
				return 0, fmt.Errorf("nesting exceeds %d at byte %d: %w", maxDepth, i, ErrTooDeep)
			}
		case '}', ']':
			depth--
			if depth == 0 {
				// The first document is complete; the decoder ignores the rest.
				return items, nil
			}
		}
	}
	return items, nil
}
