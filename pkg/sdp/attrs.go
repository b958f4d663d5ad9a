// SPDX-License-Identifier: Apache-2.0

package sdp

// MediaAttributes returns the values of every a=<name> line of media i, in
// order (nil when there is none): what the session layer reads beyond the
// parsed view, such as a=crypto, a=fingerprint or a=setup.
func (d *Description) MediaAttributes(i int, name string) []string {
	if i < 0 || i >= len(d.sects) {
		return nil
	}
	return d.attributes(d.sects[i], name)
}

// SessionAttributes returns the values of every session-level a=<name> line.
func (d *Description) SessionAttributes(name string) []string {
	return d.attributes(d.sess, name)
}

func (d *Description) attributes(sec section, name string) []string {
	var out []string
	for j := sec.first; j <= sec.last && j < len(d.lines); j++ {
		if ln := &d.lines[j]; ln.typ == 'a' && ln.attr == name {
			out = append(out, ln.aval)
		}
	}
	return out
}
