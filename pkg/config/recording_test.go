// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

func TestRecordingKeys(t *testing.T) {
	c, warnings, err := loadFile(t, "[rtpengine]\nrecording-dir = /var/spool/rtpengine\nrecording-method = proc\nrecording-format = eth\n")
	if err != nil || len(warnings) > 0 {
		t.Fatalf("load: %v %q", err, warnings)
	}
	if c.RecordingDir != "/var/spool/rtpengine" || c.RecordingMethod != RecordingProc || c.RecordingFormat != "eth" {
		t.Errorf("got dir %q method %q format %q", c.RecordingDir, c.RecordingMethod, c.RecordingFormat)
	}
	if d := Default(); d.RecordingDir != "" {
		t.Error("recording is on by default")
	}
	for _, tc := range []struct{ key, value string }{
		{"recording-dir", "spool"},
		{"recording-method", "mixed"},
		{"recording-format", "pcapng"},
	} {
		_, _, err := testLoad(t, "--"+tc.key+"="+tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%s: error %v, want one naming the key and value", tc.key, tc.value, err)
		}
	}
	c, _, err = testLoad(t, "--recording-dir=/tmp/rec", "--recording-method=PCAP")
	if err != nil || c.RecordingDir != "/tmp/rec" || c.RecordingMethod != RecordingPcap {
		t.Errorf("flags: %+v %v", c, err)
	}
}
