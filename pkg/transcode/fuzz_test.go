// SPDX-License-Identifier: Apache-2.0

package transcode

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtcp"
)

// Fuzz targets for every decoder's packet entry point and for the
// transcoder's, which reads packets straight from the network. Seed corpora
// live in testdata/fuzz/<target>; `make fuzz` runs each for FUZZTIME.

func FuzzG711Decode(f *testing.F) {
	f.Add(make([]byte, 160))
	f.Add([]byte{0xff, 0x7f, 0x00, 0x80})
	r := NewRegistry()
	var decs []Decoder
	for _, name := range []string{"PCMU", "PCMA"} {
		c, _ := r.Lookup(Format{Name: name, ClockRate: 8000})
		d, err := c.NewDecoder(Params{}, 0)
		if err != nil {
			f.Fatal(err)
		}
		decs = append(decs, d)
	}
	pcm := make([]int16, 960)
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, d := range decs {
			n, err := d.Decode(payload, pcm)
			switch {
			case len(payload) == 0 || len(payload) > len(pcm):
				if err == nil {
					t.Fatalf("%d bytes accepted", len(payload))
				}
			case err != nil || n != len(payload):
				t.Fatalf("%d bytes: %d samples, %v", len(payload), n, err)
			}
			if _, err := d.(Concealer).Conceal(pcm[:160]); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzG722Decode(f *testing.F) {
	f.Add(make([]byte, 160))
	d := newG722Decoder()
	pcm := make([]int16, 1920)
	f.Fuzz(func(t *testing.T, payload []byte) {
		n, err := d.Decode(payload, pcm)
		switch {
		case len(payload) == 0 || 2*len(payload) > len(pcm):
			if err == nil {
				t.Fatalf("%d bytes accepted", len(payload))
			}
		case err != nil || n != 2*len(payload):
			t.Fatalf("%d bytes: %d samples, %v", len(payload), n, err)
		}
		if _, err := d.Conceal(pcm[:320]); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzOpusDecode(f *testing.F) {
	f.Add([]byte{0x08})
	f.Add([]byte{0xfb, 0xff, 0xff, 0xff})
	needOpus(f)
	c, _ := NewRegistry().Lookup(fOpus)
	var decs []Decoder
	for _, rate := range []int{8000, 48000} {
		d, err := c.NewDecoder(Params{}, rate)
		if err != nil {
			f.Fatal(err)
		}
		decs = append(decs, d)
	}
	pcm := make([]int16, 48000*maxPacketMs/1000)
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, d := range decs {
			n, err := d.Decode(payload, pcm)
			if err == nil && (n <= 0 || n > len(pcm)) {
				t.Fatalf("%d samples", n)
			}
			if len(payload) > 0 {
				d.(FECDecoder).DecodeFEC(payload, pcm[:d.SampleRate()/50])
			}
			d.(Concealer).Conceal(pcm[:d.SampleRate()/50])
		}
	})
}

// fuzzConfigs are the stream directions FuzzTranscode drives, chosen by the
// input's first byte.
func fuzzConfigs() []Config {
	ev := func(pt uint8) *EventFormat { return &EventFormat{PT: pt} }
	cn := &CNFormat{PT: 13}
	cfgs := []Config{
		{In: Leg{Format: fPCMU, PT: 0, Events: ev(101), CN: cn}, Out: Leg{Format: fG722, PT: 9, PTime: 30}},
		{In: Leg{Format: fG722, PT: 9, Events: ev(101)}, Out: Leg{Format: fPCMA, PT: 8, Events: ev(100), CN: cn}, DetectDTMF: true},
		{In: Leg{Format: fPCMA, PT: 8, CN: cn}, Out: Leg{Format: fPCMU, PT: 0, PTime: 10, CN: cn}},
	}
	if opusBuilt {
		cfgs = append(cfgs,
			Config{In: Leg{Format: fOpus, PT: 111, Events: ev(110)}, Out: Leg{Format: fPCMU, PT: 0, Events: ev(101), CN: cn}},
			Config{In: Leg{Format: fPCMU, PT: 0, Events: ev(101), CN: cn}, Out: Leg{Format: fOpus, PT: 111, PTime: 60}},
		)
	}
	for i := range cfgs {
		cfgs[i].SSRC, cfgs[i].Seq, cfgs[i].TS = 0x1234, 65500, 1<<32-1000
	}
	return cfgs
}

// FuzzTranscode feeds a sequence of datagrams (each prefixed with its 2-byte
// length) through one transcoder and checks that whatever comes out is one
// well-formed RTP stream and every refusal is counted.
func FuzzTranscode(f *testing.F) {
	f.Add([]byte{0, 0, 3, 0x80, 0, 0})
	cfgs := fuzzConfigs()
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := cfgs[int(data[0])%len(cfgs)]
		tr, err := NewTranscoder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		data = data[1:]
		var out [][]byte
		var errs uint64
		seq := cfg.Seq
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			n = min(n, len(data))
			pkt := data[:n]
			data = data[n:]
			out, err = tr.Process(pkt, out[:0])
			if err != nil {
				errs++
			}
			for _, b := range out {
				h, ok := parseRTP(b)
				if !ok || h.ssrc != cfg.SSRC || h.seq != seq {
					t.Fatalf("bad output packet % x (want seq %d)", b, seq)
				}
				seq++
				switch {
				case h.pt == cfg.Out.PT:
				case cfg.Out.Events != nil && h.pt == cfg.Out.Events.PT:
					if len(h.payload) != EventLen {
						t.Fatalf("event payload % x", h.payload)
					}
				case cfg.Out.CN != nil && h.pt == cfg.Out.CN.PT:
				default:
					t.Fatalf("payload type %d on the output", h.pt)
				}
			}
		}
		if st := tr.Stats(); st.Errors() != errs || st.Overflows != 0 || st.EncodeErrors != 0 {
			t.Fatalf("%d errors returned, stats %+v", errs, st)
		}
	})
}

func FuzzParseFmtp(f *testing.F) {
	f.Add("opus", "minptime=10;useinbandfec=1")
	f.Add("telephone-event", "0-15,66")
	f.Fuzz(func(t *testing.T, name, fmtp string) {
		p, err := ParseFmtp(name, fmtp)
		if err != nil {
			return
		}
		if p.MaxAverageBitrate != 0 && (p.MaxAverageBitrate < 6000 || p.MaxAverageBitrate > 510000) {
			t.Fatalf("bitrate %d", p.MaxAverageBitrate)
		}
	})
}

// FuzzParseRTCP reads what a party sends the bridge as RTCP. Whatever
// pion/rtcp can read, parseRTCP must read too, and find the same SR and the
// same report block about the relay's source.
func FuzzParseRTCP(f *testing.F) {
	const ours = 0x5eed
	for _, pkts := range [][]rtcp.Packet{
		{&rtcp.SenderReport{SSRC: 1, NTPTime: 1 << 40, Reports: []rtcp.ReceptionReport{{SSRC: ours, Jitter: 5}}}},
		{&rtcp.ReceiverReport{SSRC: 2, Reports: []rtcp.ReceptionReport{{SSRC: 9}, {SSRC: ours, TotalLost: 0xffffff}}},
			&rtcp.Goodbye{Sources: []uint32{2}}},
	} {
		b, err := rtcp.Marshal(pkts)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, ok := parseRTCP(b, ours)
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		if !ok {
			t.Fatalf("pion reads %v, parseRTCP refuses", pkts)
		}
		var want rtcpIn
		block := func(rs []rtcp.ReceptionReport) {
			for _, r := range rs {
				if r.SSRC == ours {
					want.report, want.fraction, want.jitter = true, r.FractionLost, r.Jitter
					want.cumLost = int32(r.TotalLost<<8) >> 8
					want.lsr, want.dlsr = r.LastSenderReport, r.Delay
				}
			}
		}
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.SenderReport:
				want.sr, want.srSSRC, want.ntpMid = true, p.SSRC, uint32(p.NTPTime>>16)
				block(p.Reports)
			case *rtcp.ReceiverReport:
				block(p.Reports)
			}
		}
		if in != want {
			t.Fatalf("parseRTCP %+v, pion says %+v", in, want)
		}
	})
}

// FuzzRTCPReport drives a side's receive statistics with arbitrary RTP
// headers and arrival times (each 14 bytes: seq, timestamp, SSRC, arrival
// step, flags) and checks the report the relay then sends is well-formed
// RTCP that pion/rtcp reads back.
func FuzzRTCPReport(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 0, 160, 0, 0, 0, 1, 0, 20, 1, 0})
	buf := make([]byte, rtcpMaxLen)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rx rxStats
		tx := txStats{ssrc: 7, clock: 48000}
		var sr partySR
		now := int64(1e18)
		for len(data) >= 14 {
			h := rtpHeader{seq: binary.BigEndian.Uint16(data), ts: binary.BigEndian.Uint32(data[2:]),
				ssrc: binary.BigEndian.Uint32(data[6:])}
			now += int64(binary.BigEndian.Uint16(data[10:])) * 1e5
			flags := data[12]
			rx.update(h, now, 8000, flags&1 != 0)
			if flags&2 != 0 {
				pkt := make([]byte, 12+int(data[13]))
				putRTP(pkt, false, 0, h.seq, h.ts, 7)
				tx.sent(pkt, now, flags&4 != 0)
			}
			if flags&8 != 0 {
				sr = partySR{ssrc: h.ssrc, mid: h.ts, at: now - int64(data[13])*1e7}
			}
			data = data[14:]
		}
		n := rtcpReport(buf, &tx, &rx, &sr, "cname", now)
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil || len(pkts) != 2 {
			t.Fatalf("report % x: %v", buf[:n], err)
		}
	})
}
