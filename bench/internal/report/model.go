// SPDX-License-Identifier: Apache-2.0

package report

import (
	"time"

	"github.com/relayd/relayd/bench/internal/calls"
	"github.com/relayd/relayd/bench/internal/sysinfo"
)

// Point is one measured window: one relay, one repetition, one load.
type Point struct {
	Relay string `json:"relay"`
	Rep   int    `json:"rep"`
	Mode  string `json:"mode"` // fixed, ramp, soak, srtp, transcode, transcode-ramp
	Calls int    `json:"calls"`
	// SRTPSuite is the SDES suite of the callers' legs in the srtp mode
	// ("" for plain RTP on both legs).
	SRTPSuite string `json:"srtp_suite,omitempty"`
	// Transcode is the pair of transcoded calls ("opus-pcmu"; "" for
	// calls whose parties share a codec).
	Transcode string `json:"transcode,omitempty"`

	WindowSec    float64 `json:"window_s"`
	TargetPPS    float64 `json:"target_pps"`    // calls x 2 streams x rate
	OfferedPPS   float64 `json:"offered_pps"`   // what the generator really sent
	DeliveredPPS float64 `json:"delivered_pps"` // what came back through the relay
	Sent         uint64  `json:"sent"`
	Received     uint64  `json:"received"`
	LossPct      float64 `json:"loss_pct"`
	Duplicates   uint64  `json:"duplicates"`
	Reordered    uint64  `json:"reordered"`
	// One-way latency through the relay: send syscall to the kernel's
	// receive timestamp at the far endpoint (two veth hops and the relay).
	LatP50Us     float64 `json:"lat_p50_us"`
	LatP99Us     float64 `json:"lat_p99_us"`
	LatP999Us    float64 `json:"lat_p999_us"`
	LatMaxUs     float64 `json:"lat_max_us"`
	JitterUs     float64 `json:"jitter_us"`
	Streams      int     `json:"streams"`
	DeadStreams  int     `json:"dead_streams"`
	Stray        uint64  `json:"stray,omitempty"`
	SendErrors   uint64  `json:"send_errors,omitempty"`
	Skipped      uint64  `json:"skipped,omitempty"`
	MaxLagMs     float64 `json:"max_lag_ms"`
	RelayCPUPct  float64 `json:"relay_cpu_pct"` // of the relay's CPUs
	RelayCPUSec  float64 `json:"relay_cpu_s"`   // process + softirq (see metrics.Usage)
	RelayProcSec float64 `json:"relay_proc_s"`
	RelaySoftSec float64 `json:"relay_softirq_s"`
	NsPerPacket  float64 `json:"cpu_ns_per_packet"` // relay CPU per delivered packet
	RSSBytes     uint64  `json:"rss_bytes"`
	MemPerCallKB float64 `json:"mem_per_call_kib"` // RSS growth since start / calls
	GenCPUPct    float64 `json:"gen_cpu_pct"`
	// ForeignCPUPct is busy time on the relay's CPUs that neither the
	// relay nor softirq explains (other programs on a shared machine), in
	// percent of those CPUs: a noise indicator.
	ForeignCPUPct float64 `json:"foreign_cpu_pct"`
	// Where packets were lost, when the kernel says: the relay's socket
	// buffers, the relay's or the generator's input backlog, the endpoint
	// sockets.
	RelayRcvbufErrors  uint64 `json:"relay_rcvbuf_errors"`
	RelayBacklogDrops  uint64 `json:"relay_backlog_drops"`
	GenBacklogDrops    uint64 `json:"gen_backlog_drops"`
	EndpointRcvbufErrs uint64 `json:"endpoint_rcvbuf_errors"`
	// VethDropsToRelay are packets the veths dropped on their way into the
	// relay's namespace (its NAPI ring full: the relay host's CPU did not
	// keep up), VethDropsToEndpoints on their way out (the endpoints').
	VethDropsToRelay     uint64 `json:"veth_drops_to_relay"`
	VethDropsToEndpoints uint64 `json:"veth_drops_to_endpoints"`
	// RelayRelayed is the relay's own relayedpackets counter over the
	// window (statistics), KernelRelayed its kernel share.
	RelayRelayed  int64 `json:"relay_relayed"`
	KernelRelayed int64 `json:"kernel_relayed"`
	// ProgNsPerRun is the time per run of the XDP program forwarding for
	// this relay (relayd's, or the ceiling's bounce program) from the
	// kernel's BPF run-time accounting: the program itself, without the
	// kernel's receive and send work around it. NaN for userspace relays.
	ProgNsPerRun float64 `json:"xdp_prog_ns_per_run"`
	// GenBound says the generator, not the relay, limited this point: the
	// relay's throughput is then not reported.
	GenBound    bool     `json:"generator_bound"`
	GenReasons  []string `json:"generator_reasons,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	ModeChecked bool     `json:"mode_checked,omitempty"`
	// SRTP legs (srtp mode), from the window's start to its drain: packets
	// the callers encrypted, packets to them that decrypted and
	// authenticated with the relay's announced key, and packets that
	// failed (not authenticated, in the clear where SRTP was due, or a
	// payload damaged across decryption).
	SRTPEncrypted uint64 `json:"srtp_encrypted,omitempty"`
	SRTPDecrypted uint64 `json:"srtp_decrypted,omitempty"`
	SRTPFailed    uint64 `json:"srtp_failed,omitempty"`
	// Transcoded calls (transcode mode). Concealed are packets the relay
	// says it lost before its decoder and filled in with packets of its
	// own (which reach the far end like the lost ones would have): they
	// count as lost in LossPct, and ConcealedPct is their share. The
	// window's relay queries cover it and the drain. QueueFull are the
	// relay's drops for lack of transcoding capacity among them;
	// TCReported says the relay reports such figures at all.
	Concealed    int64   `json:"concealed,omitempty"`
	ConcealedPct float64 `json:"concealed_pct,omitempty"`
	QueueFull    int64   `json:"transcode_queue_full,omitempty"`
	TCReported   bool    `json:"relay_reports_concealment,omitempty"`
	// What the far ends found: packets in a payload type the relay did
	// not announce to them (not counted as received), packets not tied
	// to a sent one, and decoded content checks passed and failed.
	TCWrongPT      uint64 `json:"transcode_wrong_pt,omitempty"`
	TCUnmatched    uint64 `json:"transcode_unmatched,omitempty"`
	TCChecksPassed uint64 `json:"transcode_checks_passed,omitempty"`
	TCChecksFailed uint64 `json:"transcode_checks_failed,omitempty"`
}

// Ramp is the outcome of searching the highest load with loss under the
// target.
type Ramp struct {
	Relay string `json:"relay"`
	Rep   int    `json:"rep"`
	// Transcode is the pair of a ramp of transcoded calls.
	Transcode string  `json:"transcode,omitempty"`
	MaxCalls  int     `json:"max_calls"` // highest load that met the target
	MaxPPS    float64 `json:"max_pps"`   // its delivered packets/s
	// Bound is what stopped the search: "relay" (loss above the target
	// at the next load), "generator" (the generator could not go
	// higher), "ceiling" (--ramp-max-calls) or "none" (no load met it).
	Bound  string  `json:"bound"`
	Probes []Point `json:"probes"`
	// Recovery is a window at half the good load on the relay that was
	// just overloaded, not restarted (first repetition only); Recovered
	// says whether its loss met the target.
	Recovery  *Point `json:"recovery,omitempty"`
	Recovered *bool  `json:"recovered,omitempty"`
}

// Control is one relay's control-plane runs in one repetition.
type Control struct {
	Relay   string                `json:"relay"`
	Rep     int                   `json:"rep"`
	Results []calls.ControlResult `json:"results"`
}

// Soak is a bounded churn run.
type Soak struct {
	Relay        string  `json:"relay"`
	Rep          int     `json:"rep"`
	DurationSec  float64 `json:"duration_s"`
	Calls        int     `json:"calls"`
	ChurnPerSec  float64 `json:"churn_per_s"`
	Created      int     `json:"calls_created"`
	Deleted      int     `json:"calls_deleted"`
	SetupErrors  int     `json:"setup_errors"`
	DeleteErrors int     `json:"delete_errors"`
	SilentCalls  int     `json:"silent_calls"` // deleted calls that received nothing in a direction
	Media        Point   `json:"media"`
	RSSStart     uint64  `json:"rss_start_bytes"`
	RSSEnd       uint64  `json:"rss_end_bytes"`
	RSSMax       uint64  `json:"rss_max_bytes"`
	FDsStart     int     `json:"fds_start"`
	FDsEnd       int     `json:"fds_end"`
	SessionsEnd  int64   `json:"sessions_end"`
}

// Check is one consistency check between what the bench saw and what the
// relay reports.
type Check struct {
	Relay  string `json:"relay"`
	Rep    int    `json:"rep"`
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Profile is a CPU profile of a relay under load.
type Profile struct {
	Relay string   `json:"relay"`
	What  string   `json:"what"`
	Tool  string   `json:"tool"`
	Top   []string `json:"top"`
	ByDSO []string `json:"by_dso"`
	// Inclusive lists the relay binary's functions with the time of
	// everything they call (perf report --children).
	Inclusive []string `json:"inclusive,omitempty"`
	// SRTPSuite is set for a profile of SRTP calls (srtp mode), Transcode
	// for one of transcoded calls.
	SRTPSuite string `json:"srtp_suite,omitempty"`
	Transcode string `json:"transcode,omitempty"`
}

// Unsupported is a transcoding pair a relay would not transcode.
type Unsupported struct {
	Relay     string `json:"relay"`
	Transcode string `json:"transcode"`
	Reason    string `json:"reason"`
}

// ScalingPoint is one window of the installed-streams mode: the fast path
// carrying a fixed load while its rule table holds Installed rules (the
// calls' own plus fillers for addresses no packet is sent to).
type ScalingPoint struct {
	Point
	// Asked is the table size the window was for; Installed what the
	// table held (the calls' own rules move by the odd one as streams
	// re-latch).
	Asked     int `json:"asked_rules"`
	Installed int `json:"installed_rules"`
	// InstallMs is how long adding the fillers took (one batch of
	// Installed minus the calls' own rules); NaN when none were added.
	InstallMs float64 `json:"filler_install_ms"`
	Fillers   int     `json:"fillers"`
}

// Run is everything one bench invocation measured.
type Run struct {
	Command     string            `json:"command"`
	Started     time.Time         `json:"started"`
	DurationSec float64           `json:"duration_s"`
	Machine     sysinfo.Machine   `json:"machine"`
	Setup       Setup             `json:"setup"`
	Relays      []string          `json:"relays"`
	Points      []Point           `json:"points"`
	Ramps       []Ramp            `json:"ramps,omitempty"`
	Controls    []Control         `json:"controls,omitempty"`
	Soaks       []Soak            `json:"soaks,omitempty"`
	Scaling     []ScalingPoint    `json:"scaling,omitempty"`
	Restarts    []Restart         `json:"restarts,omitempty"`
	Checks      []Check           `json:"checks"`
	Profiles    []Profile         `json:"profiles,omitempty"`
	Unsupported []Unsupported     `json:"unsupported,omitempty"`
	Warnings    []string          `json:"warnings,omitempty"`
	RelayArgs   map[string]string `json:"relay_args"`
}

// Setup is how the run was configured.
type Setup struct {
	Topology      string   `json:"topology"`
	TopologyNotes []string `json:"topology_notes"`
	RelayCPUs     []int    `json:"relay_cpus"`
	GenCPUs       []int    `json:"gen_cpus"`
	PPSPerStream  float64  `json:"pps_per_stream"`
	PayloadBytes  int      `json:"payload_bytes"`
	WindowSec     float64  `json:"window_s"`
	WarmupSec     float64  `json:"warmup_s"`
	Reps          int      `json:"reps"`
	LossTargetPct float64  `json:"loss_target_pct"`
	Modes         []string `json:"modes"`
	Calls         []int    `json:"calls"`
	Quick         bool     `json:"quick"`
	SRTPSuites    []string `json:"srtp_suites,omitempty"`
	SRTPCalls     []int    `json:"srtp_calls,omitempty"`
	// The transcode mode's pairs and loads.
	TranscodePairs []string `json:"transcode_pairs,omitempty"`
	TranscodeCalls []int    `json:"transcode_calls,omitempty"`
}
