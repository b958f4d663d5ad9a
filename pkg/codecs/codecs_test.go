// SPDX-License-Identifier: Apache-2.0

package codecs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/relayd/relayd/pkg/sdp"
)

// canAll transcodes the codecs pkg/transcode has, as a build with libopus.
func canAll(f Format) error {
	switch strings.ToLower(f.Name) {
	case "pcmu", "pcma", "g722", "opus":
		return nil
	}
	return errors.New("not implemented")
}

// canNoOpus is a CGO_ENABLED=0 build.
func canNoOpus(f Format) error {
	if strings.EqualFold(f.Name, "opus") {
		return errors.New("opus needs libopus (this relayd was built without cgo)")
	}
	return canAll(f)
}

var (
	opus   = Format{PT: 111, Name: "opus", Rate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1"}
	red    = Format{PT: 63, Name: "red", Rate: 48000, Channels: 2, Fmtp: "111/111"}
	g722   = Format{PT: 9, Name: "G722", Rate: 8000, Channels: 1}
	pcmu   = Format{PT: 0, Name: "PCMU", Rate: 8000, Channels: 1}
	pcma   = Format{PT: 8, Name: "PCMA", Rate: 8000, Channels: 1}
	cn     = Format{PT: 13, Name: "CN", Rate: 8000, Channels: 1}
	te48   = Format{PT: 110, Name: "telephone-event", Rate: 48000, Channels: 1}
	te8    = Format{PT: 126, Name: "telephone-event", Rate: 8000, Channels: 1}
	te101  = Format{PT: 101, Name: "telephone-event", Rate: 8000, Channels: 1, Fmtp: "0-16"}
	g729   = Format{PT: 18, Name: "G729", Rate: 8000, Channels: 1, Fmtp: "annexb=no"}
	chrome = []Format{opus, red, g722, pcmu, pcma, cn, te48, te8}
)

func specs(t *testing.T, list ...string) []Spec {
	t.Helper()
	var out []Spec
	for _, s := range list {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sp)
	}
	return out
}

func pts(fs []Format) string {
	var b []string
	for _, f := range fs {
		b = append(b, fmt.Sprint(f.PT))
	}
	return strings.Join(b, " ")
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		bad  bool
	}{
		{in: "PCMU", want: Spec{Name: "PCMU", PT: -1}},
		{in: "opus/48000/2/32000", want: Spec{Name: "opus", PT: -1, Rate: 48000, Channels: 2, Bitrate: 32000}},
		{in: "iLBC/8000/1///mode=30", want: Spec{Name: "iLBC", PT: -1, Rate: 8000, Channels: 1, Fmtp: "mode=30"}},
		{in: "opus/48000/2////compression_level=2", want: Spec{Name: "opus", PT: -1, Rate: 48000, Channels: 2}},
		{in: "8", want: Spec{PT: 8}},
		{in: "all", want: Spec{PT: -1, All: true}},
		{in: "FULL", want: Spec{PT: -1, All: true, Full: true}},
		{in: "", bad: true},
		{in: "200", bad: true},
		{in: "opus/fast", bad: true},
	} {
		got, err := ParseSpec(tc.in)
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("ParseSpec(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestFromMedia(t *testing.T) {
	d, err := sdp.Parse([]byte("v=0\r\nm=audio 1 RTP/AVP 0 18 101 97 abc\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n" +
		"a=fmtp:18 annexb=no\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := FromMedia(d.Media[0])
	want := []Format{pcmu, g729, te101}
	if !slices.Equal(got, want) {
		t.Fatalf("FromMedia = %v, want %v (97 has no rtpmap, abc is no payload type)", got, want)
	}
}

// The offers the answerer gets, for the option sets Kamailio sends.
func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offered  []Format
		opt      Options
		can      Capability
		wantTo   string
		added    int
		warnings int
		reject   bool
	}{
		{name: "no options: unchanged", offered: chrome, wantTo: "111 63 9 0 8 13 110 126"},
		{name: "the incumbent's browser example: transcode PCMU adds it with a telephone-event at 8 kHz",
			offered: []Format{opus, te48}, opt: Options{Transcode: specs(t, "PCMU")}, wantTo: "111 0 96 110", added: 2},
		{name: "transcode of a listed codec adds nothing", offered: chrome,
			opt: Options{Transcode: specs(t, "PCMU")}, wantTo: "111 63 9 0 8 13 110 126"},
		{name: "mask opus + transcode PCMU: only the added codec goes out",
			offered: []Format{opus, te48}, opt: Options{Mask: specs(t, "opus"), Transcode: specs(t, "PCMU")},
			wantTo: "0 96", added: 2},
		{name: "transcode strips what the relay cannot transcode (red)",
			offered: []Format{opus, red, te48}, opt: Options{Transcode: specs(t, "PCMA")}, wantTo: "111 8 96 110", added: 2},
		{name: "strip all, offer PCMU: PCMU and its telephone-event",
			offered: []Format{pcma, pcmu, g729, te101}, opt: Options{Strip: specs(t, "all"), Offer: specs(t, "PCMU")},
			wantTo: "0 101"},
		{name: "offer reorders", offered: []Format{pcma, pcmu, te101}, opt: Options{Offer: specs(t, "PCMU", "PCMA")},
			wantTo: "0 8 101"},
		{name: "except keeps the original order", offered: []Format{pcma, g729, pcmu}, opt: Options{Except: specs(t, "PCMU", "PCMA")},
			wantTo: "8 0"},
		{name: "strip by payload type", offered: []Format{pcma, pcmu, te101}, opt: Options{Strip: specs(t, "8")},
			wantTo: "0 101"},
		{name: "strip everything keeps the original, warned", offered: []Format{pcmu}, opt: Options{Strip: specs(t, "all")},
			wantTo: "0", warnings: 1},
		{name: "strip everything with allow-no-codec-media rejects", offered: []Format{pcmu},
			opt: Options{Strip: specs(t, "all"), AllowNoCodec: true}, reject: true},
		{name: "transcode to opus without libopus: warned, not added", offered: []Format{pcmu, te101},
			opt: Options{Transcode: specs(t, "opus")}, can: canNoOpus, wantTo: "0 101", warnings: 1},
		{name: "transcode to opus: static-less codec gets a dynamic type and its 48 kHz telephone-event",
			offered: []Format{pcmu, te101}, opt: Options{Transcode: specs(t, "opus")}, wantTo: "0 96 97 101", added: 2},
		{name: "G.722 added keeps its static type", offered: []Format{pcmu}, opt: Options{Transcode: specs(t, "G722")},
			wantTo: "0 9", added: 1},
		{name: "an Opus-only browser without libopus: nothing to transcode from, warned",
			offered: []Format{opus, te48}, opt: Options{Transcode: specs(t, "PCMU")}, can: canNoOpus,
			wantTo: "111 110", warnings: 1},
		{name: "ignore: never offered, still passed on", offered: []Format{pcma, pcmu}, opt: Options{Ignore: specs(t, "PCMA")},
			wantTo: "0"},
		{name: "a transcode of a codec stripped by name is a new instance", offered: []Format{pcmu, pcma},
			opt: Options{Strip: specs(t, "PCMU"), Transcode: specs(t, "PCMU")}, wantTo: "8 96", added: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			can := tc.can
			if can == nil {
				can = canAll
			}
			o := Negotiate(tc.offered, tc.opt, true, can)
			if o.Reject != tc.reject {
				t.Fatalf("Reject = %v", o.Reject)
			}
			if tc.reject {
				return
			}
			if got := pts(o.To); got != tc.wantTo {
				t.Errorf("To = %q (%v), want %q", got, o.To, tc.wantTo)
			}
			if len(o.Added) != tc.added {
				t.Errorf("Added = %v, want %d", o.Added, tc.added)
			}
			if len(o.Warnings) != tc.warnings {
				t.Errorf("Warnings = %q, want %d", o.Warnings, tc.warnings)
			}
		})
	}
}

// Answers mapped back: passthrough when the answerer took a codec the
// offerer listed, transcoding when it took one only the relay added.
func TestAnswer(t *testing.T) {
	browser := []Format{opus, te48}
	for _, tc := range []struct {
		name      string
		offered   []Format
		opt       Options
		answered  []Format
		wantBack  string
		offerer   string // the transcoder's offerer-side codec, "" for none
		answerer  string
		dtmf      [2]int // telephone-event clock rates: offerer, answerer (0 none)
		wantError bool
	}{
		{name: "the incumbent's example: SIP answers PCMU, the browser gets Opus and its telephone-event",
			offered: browser, opt: Options{Transcode: specs(t, "PCMU")},
			answered: []Format{pcmu, {PT: 96, Name: "telephone-event", Rate: 8000, Channels: 1, Fmtp: "0-15"}},
			wantBack: "111 110", offerer: "opus", answerer: "PCMU", dtmf: [2]int{48000, 8000}},
		{name: "SIP answers Opus: passthrough, no transcoding",
			offered: browser, opt: Options{Transcode: specs(t, "PCMU")}, answered: []Format{opus, te48},
			wantBack: "111 110"},
		{name: "answerer renumbers the added PCMU telephone-event and keeps PCMU only",
			offered: browser, opt: Options{Transcode: specs(t, "PCMU")}, answered: []Format{pcmu},
			wantBack: "111 110", offerer: "opus", answerer: "PCMU", dtmf: [2]int{48000, 0}},
		{name: "always-transcode with a shared codec: passthrough",
			offered: []Format{pcmu, pcma}, opt: Options{AlwaysTranscode: true}, answered: []Format{pcmu},
			wantBack: "0"},
		{name: "always-transcode, answerer picks the offerer's second codec: held to the first",
			offered: []Format{pcma, pcmu}, opt: Options{AlwaysTranscode: true}, answered: []Format{pcmu},
			wantBack: "8", offerer: "PCMA", answerer: "PCMU"},
		{name: "consume PCMA: answered PCMU, the offerer keeps PCMA",
			offered: []Format{pcma, pcmu}, opt: Options{Consume: specs(t, "PCMA")}, answered: []Format{pcmu},
			wantBack: "8", offerer: "PCMA", answerer: "PCMU"},
		{name: "accept G722: the answerer rejects it, the offerer keeps it",
			offered: []Format{g722, pcmu}, opt: Options{Accept: specs(t, "G722")}, answered: []Format{pcmu},
			wantBack: "9", offerer: "G722", answerer: "PCMU"},
		{name: "accept G722: the answerer takes it, passthrough",
			offered: []Format{g722, pcmu}, opt: Options{Accept: specs(t, "G722")}, answered: []Format{g722},
			wantBack: "9"},
		{name: "nothing of the offerer's to transcode from: PCMU never offered, the answer passes as it is",
			offered: []Format{g729}, opt: Options{Transcode: specs(t, "PCMU")}, answered: []Format{pcmu},
			wantBack: "0"},
		{name: "single codec", offered: []Format{pcmu, pcma, te101}, opt: Options{SingleCodec: true},
			answered: []Format{pcmu, pcma, te101}, wantBack: "0 101"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Negotiate(tc.offered, tc.opt, true, canAll)
			a, err := o.Answer(tc.answered, 20, 20, tc.opt)
			if tc.wantError {
				if !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("Answer = %v, want ErrNoCommonCodec", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := pts(a.ToOfferer); got != tc.wantBack {
				t.Errorf("ToOfferer = %q (%v), want %q", got, a.ToOfferer, tc.wantBack)
			}
			tcd := a.Transcoding
			if tc.offerer == "" {
				if tcd != nil {
					t.Fatalf("transcoding %+v, want passthrough", tcd)
				}
				return
			}
			if tcd == nil {
				t.Fatal("passthrough, want transcoding")
			}
			if tcd.Offerer.Audio.Name != tc.offerer || tcd.Answerer.Audio.Name != tc.answerer {
				t.Errorf("transcoding %s ↔ %s, want %s ↔ %s", tcd.Offerer.Audio, tcd.Answerer.Audio, tc.offerer, tc.answerer)
			}
			rate := func(f *Format) int {
				if f == nil {
					return 0
				}
				return f.Rate
			}
			if got := [2]int{rate(tcd.Offerer.DTMF), rate(tcd.Answerer.DTMF)}; got != tc.dtmf {
				t.Errorf("telephone-events at %v, want %v", got, tc.dtmf)
			}
		})
	}
}

// An answerer that renumbers the relay's telephone-event is sent events
// under its own number.
func TestAnswerKeepsAnswerersPayloadTypes(t *testing.T) {
	o := Negotiate([]Format{opus, te48}, Options{Transcode: specs(t, "PCMU")}, true, canAll)
	a, err := o.Answer([]Format{pcmu, te101}, 20, 20, Options{})
	if err != nil || a.Transcoding == nil {
		t.Fatalf("Answer = %+v, %v", a, err)
	}
	if d := a.Transcoding.Answerer.DTMF; d == nil || d.PT != 101 {
		t.Errorf("answerer's telephone-event %+v, want its own PT 101 (the relay offered 96)", d)
	}
}

func TestVideoIgnoresTranscoding(t *testing.T) {
	h264 := Format{PT: 96, Name: "H264", Rate: 90000, Channels: 1}
	o := Negotiate([]Format{h264}, Options{Transcode: specs(t, "PCMU")}, false, canAll)
	if pts(o.To) != "96" || len(o.Warnings) != 1 {
		t.Fatalf("To = %v, warnings %q", o.To, o.Warnings)
	}
}
