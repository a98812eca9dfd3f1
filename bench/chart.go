package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

var (
	modeColors = map[Mode]color.RGBA{Remote: {R: 0x1f, G: 0x77, B: 0xb4, A: 255}, InProcess: {R: 0xd6, G: 0x27, B: 0x28, A: 255}}
	rawColors  = []color.RGBA{{R: 0x7f, G: 0x7f, B: 0x7f, A: 255}, {R: 0xbc, G: 0xbd, B: 0x22, A: 255}, {R: 0x17, G: 0xbe, B: 0xcf, A: 255}}
)

// writeChart draws, as SVG (or PNG, by the path's extension), two panels against M (log scale): deliveries/s of each mode
// beside the raw fan-out baselines, and p99 latency of each mode.
func writeChart(r *Results, path string) error {
	rate := plot.New()
	rate.Title.Text = "Fan-out: deliveries/s (each reading the current status)"
	rate.X.Label.Text = "subscribers (M)"
	rate.Y.Label.Text = "deliveries/s"
	rate.X.Scale, rate.Y.Scale = plot.LogScale{}, plot.LogScale{}
	rate.X.Tick.Marker, rate.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	rate.Legend.Top, rate.Legend.Left = true, true

	lat := plot.New()
	lat.Title.Text = "Latency p99: writer's ack to the handler's read (ms)"
	lat.X.Label.Text = "subscribers (M)"
	lat.Y.Label.Text = "p99 ms"
	lat.X.Scale = plot.LogScale{}
	lat.X.Tick.Marker = plot.LogTicks{Prec: -1}
	lat.Legend.Top, lat.Legend.Left = true, true

	for _, mode := range r.Workload.Modes {
		var rates, p99s plotter.XYs
		for _, f := range r.Fanout {
			if f.Mode != mode || f.Rate.Rate <= 0 {
				continue
			}
			rates = append(rates, plotter.XY{X: float64(f.M), Y: f.Rate.Rate})
			p99s = append(p99s, plotter.XY{X: float64(f.M), Y: f.Latency.P99 / 1000})
		}
		if len(rates) == 0 {
			continue
		}
		if err := addLine(rate, "engine, "+string(mode), rates, modeColors[mode], false); err != nil {
			return err
		}
		if err := addLine(lat, "engine, "+string(mode), p99s, modeColors[mode], false); err != nil {
			return err
		}
	}
	for i, raw := range []struct {
		name string
		by   map[int]float64
	}{{"raw: M ordered consumers", r.Baselines.FanoutOrdered}, {"raw: M core subscribers", r.Baselines.FanoutCore},
		{"raw floor: M ordered consumers with batched reads", r.Baselines.FanoutReadFloor}} {
		var xys plotter.XYs
		for m, v := range raw.by {
			if v > 0 {
				xys = append(xys, plotter.XY{X: float64(m), Y: v})
			}
		}
		if len(xys) == 0 {
			continue
		}
		sort.Slice(xys, func(a, b int) bool { return xys[a].X < xys[b].X })
		if err := addLine(rate, raw.name, xys, rawColors[i], true); err != nil {
			return err
		}
	}

	for _, a := range []*plot.Axis{&rate.X, &rate.Y, &lat.X} {
		spreadLog(a)
	}

	const width, height = 7 * vg.Inch, 8 * vg.Inch
	var canvas interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.HasSuffix(path, ".png") {
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))}
	} else {
		canvas = vgsvg.New(width, height)
	}
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	plots := [][]*plot.Plot{{rate}, {lat}}
	canvases := plot.Align(plots, tiles, draw.New(canvas))
	rate.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(out); err != nil {
		out.Close()
		return fmt.Errorf("write chart %s: %w", path, err)
	}
	return out.Close()
}

// spreadLog gives a log-scale axis a range it can show. The library pads an
// axis whose data are one value (a run of one M) by one either side, and one
// without data to -1..1: both reach zero, where a log scale has nothing (it
// panics).
func spreadLog(a *plot.Axis) {
	switch {
	case math.IsInf(a.Min, 0) || math.IsInf(a.Max, 0) || a.Max <= 0:
		a.Min, a.Max = 1, 10
	case a.Min == a.Max:
		a.Min, a.Max = a.Min/2, a.Max*2
	}
}

func addLine(p *plot.Plot, name string, xys plotter.XYs, c color.RGBA, dashed bool) error {
	line, points, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	line.Color, points.Color = c, c
	if dashed {
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(line, points)
	p.Legend.Add(name, line, points)
	return nil
}
