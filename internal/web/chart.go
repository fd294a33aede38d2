package web

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/series"
)

// The charts' size in SVG user units, and the points a series is
// downsampled to (one per horizontal unit of the plot area).
const (
	chartWidth  = 800
	chartHeight = 300
	chartLeft   = 64
	chartRight  = 12
	chartTop    = 12
	chartBottom = 32
	chartPoints = chartWidth - chartLeft - chartRight
)

// chartPalette colours the series, in order (SVG presentation
// attributes: the CSP forbids style attributes, not these).
var chartPalette = []string{"#1f6feb", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#0969da", "#bf3989", "#57606a"}

// chartSeries is one line of a chart: X in unix milliseconds.
type chartSeries struct {
	Name   string
	Points []series.Point
}

// chartSVG renders the series as an inline SVG line chart over
// [from, to) with time and value axes, the value axis labelled unit. It
// returns "" when no series has a point.
func chartSVG(ss []chartSeries, from, to time.Time, unit string) template.HTML {
	lo, hi := math.Inf(1), math.Inf(-1)
	x0, x1 := float64(from.UnixMilli()), float64(to.UnixMilli())
	any := false
	for _, s := range ss {
		for _, p := range s.Points {
			lo, hi = min(lo, p.Y), max(hi, p.Y)
			if from.IsZero() || to.IsZero() {
				if !any {
					x0, x1 = p.X, p.X
				}
				x0, x1 = min(x0, p.X), max(x1, p.X)
			}
			any = true
		}
	}
	if !any {
		return ""
	}
	if x1 <= x0 {
		x1 = x0 + 1000
	}
	if hi <= lo {
		lo, hi = lo-1, hi+1
	}
	yt := niceTicks(lo, hi, 5)
	lo, hi = min(lo, yt[0]), max(hi, yt[len(yt)-1])
	pw, ph := float64(chartWidth-chartLeft-chartRight), float64(chartHeight-chartTop-chartBottom)
	px := func(x float64) float64 { return chartLeft + (x-x0)/(x1-x0)*pw }
	py := func(y float64) float64 { return chartTop + (hi-y)/(hi-lo)*ph }
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="chart">`, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<rect class="plot" x="%d" y="%d" width="%s" height="%s" fill="none" stroke="#d0d7de"/>`, chartLeft, chartTop, f(pw), f(ph))
	for _, t := range yt {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%s" y2="%s" stroke="#eaeef2"/>`, chartLeft, chartWidth-chartRight, f(y), f(y))
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%s" text-anchor="end" dominant-baseline="middle" font-size="11" fill="#57606a">%s</text>`,
			chartLeft-6, f(y), template.HTMLEscapeString(strconv.FormatFloat(t, 'g', 6, 64)))
	}
	if unit != "" {
		fmt.Fprintf(&b, `<text class="unit" x="4" y="%d" font-size="11" fill="#57606a">%s</text>`, chartTop+4, template.HTMLEscapeString(unit))
	}
	span := time.Duration(x1-x0) * time.Millisecond
	layout := "15:04"
	switch {
	case span > 3*24*time.Hour:
		layout = "01-02"
	case span > 20*time.Hour:
		layout = "01-02 15:04"
	}
	for i := range 6 {
		x := x0 + (x1-x0)*float64(i)/5
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 5:
			anchor = "end"
		}
		fmt.Fprintf(&b, `<text class="tick" x="%s" y="%d" text-anchor="%s" font-size="11" fill="#57606a">%s</text>`,
			f(px(x)), chartHeight-10, anchor, time.UnixMilli(int64(x)).UTC().Format(layout))
	}
	for i, s := range ss {
		if len(s.Points) == 0 {
			continue
		}
		colour := chartPalette[i%len(chartPalette)]
		fmt.Fprintf(&b, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="1.5" points="`,
			template.HTMLEscapeString(s.Name), colour)
		for j, p := range s.Points {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(f(px(p.X)))
			b.WriteByte(',')
			b.WriteString(f(py(p.Y)))
		}
		b.WriteString(`"/>`)
		if len(s.Points) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.5" fill="%s"/>`, f(px(s.Points[0].X)), f(py(s.Points[0].Y)), colour)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built above, every text escaped
}

// niceTicks returns about n round values spanning [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			step = m * mag
			break
		}
	}
	start := math.Floor(lo/step) * step
	var out []float64
	for v := start; v <= hi+step/2 && len(out) < 4*n; v += step {
		out = append(out, math.Round(v/step)*step)
	}
	if out[len(out)-1] < hi {
		out = append(out, out[len(out)-1]+step)
	}
	return out
}

// legendItem is one series of a chart's legend: Class ("s0".."s7") names
// its colour in app.css, the same as chartPalette's.
type legendItem struct {
	Name   string
	Class  string
	Points int
}

func chartLegend(ss []chartSeries) []legendItem {
	out := make([]legendItem, len(ss))
	for i, s := range ss {
		out[i] = legendItem{Name: s.Name, Class: "s" + strconv.Itoa(i%len(chartPalette)), Points: len(s.Points)}
	}
	return out
}
