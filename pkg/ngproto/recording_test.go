// SPDX-License-Identifier: Apache-2.0

package ngproto

import (
	"strings"
	"testing"
	"time"

	"github.com/relayd/relayd/pkg/recording"
	"github.com/relayd/relayd/pkg/session"
)

// recordingCommand is shaped like what Kamailio's start_recording() and
// stop_recording() send: the command with the dialogue's call-id and tags
// (pause recording is the incumbent's command, which Kamailio 5.6 cannot
// send; other clients send it the same way).
func recordingCommand(cmd string) dict {
	return dict{
		{"supports", []string{"load limit"}},
		{"call-id", "c81028bc8a@test"},
		{"received-from", []string{"IP4", "127.0.0.30"}},
		{"from-tag", "ff2e887"},
		{"to-tag", "8a7e2b1"},
		{"command", cmd},
	}
}

func TestControlRecording(t *testing.T) {
	rec, err := recording.New(recording.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rec.Close)
	r := newControlRig(t, func(c *session.Config) { c.Recorder = rec })
	// record-call in the offer: no warning, and the file in "recordings".
	off := r.do(with(kamailioOffer1(), "record-call", "yes"))
	files, _ := off["recordings"].([]any)
	if off["result"] != "ok" || off["warning"] != nil || len(files) != 1 ||
		!strings.Contains(files[0].(string), "/pcaps/c81028bc8a%40test-") {
		t.Fatalf("offer with record-call: %v", off)
	}
	r.do(kamailioAnswer())
	query := func() map[string]any {
		t.Helper()
		q := r.do(dict{{"command", "query"}, {"call-id", "c81028bc8a@test"}})
		rd, _ := q["recording"].(map[string]any)
		return rd
	}
	if rd := query(); rd["state"] != "recording" || rd["file"] != files[0] || rd["dropped"] == nil {
		t.Errorf("query recording: %v", rd)
	}
	for _, step := range []struct{ cmd, state string }{
		{"pause recording", "paused"},
		{"start recording", "recording"},
		{"stop recording", ""},
		{"start recording", "recording"},
	} {
		// Spelled with underscores, it is the same command.
		cmd := step.cmd
		if step.state == "paused" {
			cmd = strings.ReplaceAll(cmd, " ", "_")
		}
		if rep := r.do(recordingCommand(cmd)); rep["result"] != "ok" || rep["warning"] != nil {
			t.Fatalf("%s: %v", cmd, rep)
		}
		rd := query()
		if (rd == nil) != (step.state == "") || (rd != nil && rd["state"] != step.state) {
			t.Errorf("after %s: recording %v, want state %q", cmd, rd, step.state)
		}
	}
	// The writer finishes the stopped recording within a tick.
	var rs map[string]any
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		st := r.do(dict{{"command", "statistics"}})["statistics"].(map[string]any)
		rs, _ = st["recordingstatistics"].(map[string]any)
		if rs["finished"] == int64(1) || time.Now().After(deadline) {
			break
		}
	}
	if rs["started"] != int64(2) || rs["finished"] != int64(1) || rs["active"] != int64(1) {
		t.Errorf("recordingstatistics: %v", rs)
	}
	if rep := r.do(without(recordingCommand("stop recording"), "call-id")); rep["result"] != "error" {
		t.Errorf("stop recording without call-id: %v", rep)
	}
	if rep := r.do(with(recordingCommand("start recording"), "call-id", "nope")); rep["result"] != "error" ||
		rep["error-reason"] != ReasonUnknownCallID {
		t.Errorf("start recording of an unknown call: %v", rep)
	}
}

// Without recording-dir the commands succeed with a warning that says why
// nothing is recorded, and statistics has no recording section.
func TestControlRecordingOff(t *testing.T) {
	r := newControlRig(t, nil)
	off := r.do(with(kamailioOffer1(), "record-call", "yes"))
	if w, _ := off["warning"].(string); !strings.Contains(w, "record-call (recording-dir is not set)") || off["recordings"] != nil {
		t.Errorf("offer with record-call: %v", off)
	}
	r.do(kamailioAnswer())
	rep := r.do(recordingCommand("start recording"))
	if w, _ := rep["warning"].(string); rep["result"] != "ok" || !strings.Contains(w, "recording-dir is not set") {
		t.Errorf("start recording: %v", rep)
	}
	st := r.do(dict{{"command", "statistics"}})["statistics"].(map[string]any)
	if _, ok := st["recordingstatistics"]; ok {
		t.Error("statistics has a recording section with recording off")
	}
}

func TestParseRecordingKeys(t *testing.T) {
	req, err := ParseRequest(map[string]any{"command": "Start-Recording", "call-id": "c", "metadata": "customer=42",
		"flags": []any{"record-call", "discard-recording"}})
	if err != nil {
		t.Fatal(err)
	}
	if req.Command != "start recording" || req.Metadata != "customer=42" || !req.Flags.RecordCall ||
		!req.Flags.DiscardRecording || len(req.Ignored) > 0 {
		t.Errorf("parsed %+v", req)
	}
}
