// SPDX-License-Identifier: Apache-2.0

package report

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotSpec is one figure: a metric of the point summaries against the
// offered load, one line per relay.
type plotSpec struct {
	file, title, ylabel string
	y                   func(PointSummary) float64
	// legendBelow puts the legend at the bottom, where CPU-per-packet
	// lines far above zero leave room for one legend entry per line.
	legendBelow bool
}

// Plots writes the PNG figures into dir and returns their file names.
func Plots(dir string, s Summary, relays []string) ([]string, error) {
	specs := []plotSpec{
		{"loss.png", "Loss against offered load", "loss (%)", func(p PointSummary) float64 { return p.LossPct }, false},
		{"cpu_per_packet.png", "Relay CPU per delivered packet", "CPU ns per packet", func(p PointSummary) float64 { return p.NsPerPacket }, false},
		{"latency_p99.png", "One-way latency through the relay, p99", "latency p99 (µs)", func(p PointSummary) float64 { return p.LatP99Us }, false},
	}
	var files []string
	for _, sp := range specs {
		if len(s.Points) == 0 {
			break // a run without plain fixed loads (the srtp mode alone)
		}
		if err := linePlot(filepath.Join(dir, sp.file), sp, s.Points, relays); err != nil {
			return files, fmt.Errorf("plot %s: %w", sp.file, err)
		}
		files = append(files, sp.file)
	}
	if len(s.SRTP) > 0 {
		// One line per relay and suite.
		var ps []PointSummary
		var names []string
		for _, p := range s.SRTP {
			p.Relay += " " + p.Suite
			if !slices.Contains(names, p.Relay) {
				names = append(names, p.Relay)
			}
			ps = append(ps, p)
		}
		sp := plotSpec{"srtp_cpu_per_packet.png", "Relay CPU per delivered packet, SRTP on the callers' leg", "CPU ns per packet",
			func(p PointSummary) float64 { return p.NsPerPacket }, true}
		if err := linePlot(filepath.Join(dir, sp.file), sp, ps, names); err != nil {
			return files, fmt.Errorf("plot %s: %w", sp.file, err)
		}
		files = append(files, sp.file)
	}
	if len(s.Transcode) > 0 {
		// One line per relay and pair.
		var ps []PointSummary
		var names []string
		for _, p := range s.Transcode {
			// The plot's font has no "⇄": the legend would read "OpusPCMU".
			p.Relay += " " + strings.ReplaceAll(PairLabel(p.Transcode), "⇄", "/")
			if !slices.Contains(names, p.Relay) {
				names = append(names, p.Relay)
			}
			ps = append(ps, p)
		}
		sp := plotSpec{"transcode_cpu_per_packet.png", "Relay CPU per delivered packet, transcoded calls", "CPU ns per packet",
			func(p PointSummary) float64 { return p.NsPerPacket }, true}
		if err := linePlot(filepath.Join(dir, sp.file), sp, ps, names); err != nil {
			return files, fmt.Errorf("plot %s: %w", sp.file, err)
		}
		files = append(files, sp.file)
	}
	return files, nil
}

func linePlot(path string, sp plotSpec, ps []PointSummary, relays []string) error {
	p := plot.New()
	p.Title.Text = sp.title
	p.X.Label.Text = "offered load (packets/s)"
	p.Y.Label.Text = sp.ylabel
	p.Y.Min = 0
	p.Legend.Top = !sp.legendBelow
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	lines := 0
	for i, r := range relays {
		var xys plotter.XYs
		var bound plotter.XYs
		for _, q := range ps {
			if q.Relay != r {
				continue
			}
			y := sp.y(q)
			if math.IsNaN(y) || math.IsInf(y, 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: q.OfferedPPS, Y: y})
			if q.GenBound {
				bound = append(bound, plotter.XY{X: q.OfferedPPS, Y: y})
			}
		}
		if len(xys) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return err
		}
		c := plotutil.Color(i)
		l.Color, s.Color = c, c
		l.Width = vg.Points(1.5)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(r, l, s)
		lines++
		if len(bound) > 0 {
			// Points the generator limited: a hollow ring around them.
			g, err := plotter.NewScatter(bound)
			if err != nil {
				return err
			}
			g.Shape = draw.CircleGlyph{}
			g.Radius = vg.Points(6)
			g.Color = color.Gray{Y: 120}
			p.Add(g)
		}
	}
	if lines == 0 {
		p.Title.Text += " (no data)"
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
