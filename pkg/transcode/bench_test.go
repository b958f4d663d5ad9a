// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"strconv"
	"testing"
)

// Benchmarks: one op is one 20 ms mono frame (or packet), so ns/op is the
// CPU cost of 20 ms of audio; µs/frame repeats it in the unit the docs use.

func reportFrame(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/frame")
}

func BenchmarkCodec(b *testing.B) {
	type codecCase struct {
		name string
		f    Format
		rate int
		fmtp string
	}
	cases := []codecCase{
		{"PCMU", fPCMU, 8000, ""},
		{"PCMA", fPCMA, 8000, ""},
		{"G722", fG722, 16000, ""},
		{"opus@8k", fOpus, 8000, ""},
		{"opus@16k", fOpus, 16000, ""},
		{"opus@48k", fOpus, 48000, ""},
	}
	for _, c := range cases {
		codec, err := NewRegistry().Lookup(c.f)
		if err != nil {
			b.Fatal(err)
		}
		if codec.Available() != nil {
			b.Logf("%s: %v", c.name, codec.Available())
			continue
		}
		frame := c.rate / 50
		pcm := speechLike(frame*50, c.rate)
		enc, _ := codec.NewEncoder(Params{}, c.rate, EncoderOptions{})
		dec, _ := codec.NewDecoder(Params{}, c.rate)
		payloads := make([][]byte, 50)
		for i := range payloads {
			p := make([]byte, 1500)
			n, err := enc.Encode(pcm[i*frame:(i+1)*frame], p)
			if err != nil {
				b.Fatal(err)
			}
			payloads[i] = p[:n]
		}
		out := make([]byte, 1500)
		b.Run(c.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				enc.Encode(pcm[i*frame:(i+1)*frame], out)
				i = (i + 1) % 50
			}
			reportFrame(b)
		})
		buf := make([]int16, frame)
		b.Run(c.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				dec.Decode(payloads[i], buf)
				i = (i + 1) % 50
			}
			reportFrame(b)
		})
	}
}

func BenchmarkResample(b *testing.B) {
	for _, rr := range [][2]int{{16000, 8000}, {8000, 16000}} {
		r, _ := NewResampler(rr[0], rr[1])
		in := speechLike(rr[0]/50, rr[0])
		out := make([]int16, r.OutLen(len(in)))
		b.Run(strconv.Itoa(rr[0])+"→"+strconv.Itoa(rr[1]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Process(out, in)
			}
			reportFrame(b)
		})
	}
}

// BenchmarkTranscode is one 20 ms packet through a stream direction:
// parse, decode, resample if needed, encode, write the RTP header.
func BenchmarkTranscode(b *testing.B) {
	pairs := [][2]Format{
		{fOpus, fPCMU}, {fPCMU, fOpus}, {fG722, fPCMU}, {fPCMU, fG722}, {fPCMU, fPCMA}, {fOpus, fG722},
	}
	for _, pr := range pairs {
		name := pr[0].Name + "→" + pr[1].Name
		if hasOpus(pr[0], pr[1]) && !opusBuilt {
			b.Logf("%s: opus unavailable in this build", name)
			continue
		}
		s := newSender(b, pr[0], "", 20, sourceRate(pr[0]))
		pkts := s.audio(speechLike(sourceRate(pr[0]), sourceRate(pr[0])))
		tr := newTranscoder(b, pairConfig(pr[0], pr[1]))
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			out := make([][]byte, 0, 4)
			i := 0
			for b.Loop() {
				p := pkts[i%len(pkts)]
				binary.BigEndian.PutUint16(p[2:], uint16(i))
				binary.BigEndian.PutUint32(p[4:], uint32(i*s.clock/50))
				out, _ = tr.Process(p, out[:0])
				i++
			}
			reportFrame(b)
		})
	}
}

func BenchmarkDTMFDetect(b *testing.B) {
	d, _ := NewDTMFDetector(8000)
	pcm := speechLike(8000, 8000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Feed(pcm[i*160 : (i+1)*160])
		i = (i + 1) % 50
	}
	reportFrame(b)
}
