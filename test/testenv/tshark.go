// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TSharkFields reads a capture file with tshark (Debian package tshark)
// and returns, for each packet in order, the values of fields (an empty
// string where a packet has none). opts go before the field list, e.g.
// "-o", "rtp.heuristic_rtp:TRUE". Without tshark the test is Unavailable.
func TSharkFields(t testing.TB, file string, opts []string, fields ...string) [][]string {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		Unavailable(t, "tshark not installed (Debian package tshark): %v", err)
	}
	args := append([]string{"-n", "-r", file}, opts...)
	args = append(args, "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f")
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		row := strings.Split(line, "\t")
		for len(row) < len(fields) {
			row = append(row, "")
		}
		rows = append(rows, row)
	}
	return rows
}
