// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"fmt"
	"log/slog"

	"github.com/relayd/relayd/pkg/config"
	"github.com/relayd/relayd/pkg/metrics"
	"github.com/relayd/relayd/pkg/recording"
)

// newRecorder makes the call recorder when recording-dir is set; nil
// (recording off) otherwise.
func newRecorder(cfg *config.Config, log *slog.Logger) (*recording.Recorder, error) {
	if cfg.RecordingDir == "" {
		if cfg.RecordingMethod != "" || cfg.RecordingFormat != "" {
			log.Info("recording-method/recording-format set without recording-dir: call recording is off")
		}
		return nil, nil
	}
	if m := cfg.RecordingMethod; m == config.RecordingProc || m == config.RecordingAll {
		log.Warn("recording-method = "+m+": relayd writes pcap files only (no /proc interface for a "+
			"recording daemon); recorded calls go to pcap files under recording-dir",
			"recording-dir", cfg.RecordingDir)
	}
	format, err := recording.ParseFormat(cfg.RecordingFormat)
	if err != nil {
		return nil, fmt.Errorf("recording-format: %w", err)
	}
	r, err := recording.New(recording.Config{Dir: cfg.RecordingDir, Format: format, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("recording-dir %s: %w", cfg.RecordingDir, err)
	}
	log.Info("call recording available", "recording-dir", cfg.RecordingDir, "recording-format", format.String())
	return r, nil
}

// registerRecordingMetrics exports the recorder's counters, read at scrape
// time.
func registerRecordingMetrics(reg *metrics.Registry, r *recording.Recorder) error {
	if err := reg.CounterFuncs("relayd_recording_packets_total",
		"Copies of packets of recorded calls by what became of them: written to the pcap file, dropped "+
			"(the recording's queue was full; forwarding is not affected), failed (the file could not be written)",
		"result", func() map[string]uint64 {
			s := r.Stats()
			return map[string]uint64{"written": s.Packets, "dropped": s.Dropped, "failed": s.Failed}
		}); err != nil {
		return err
	}
	return reg.CounterFuncs("relayd_recordings_total", "Call recordings by event: started, finished",
		"event", func() map[string]uint64 {
			s := r.Stats()
			return map[string]uint64{"started": s.Started, "finished": s.Finished}
		})
}
