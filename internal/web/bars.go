package web

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// chart is one bar chart of the overview, rendered on the server as
// inline SVG: no script, no style attribute (app.css colours it by class).
type chart struct {
	ID, Title string
	Total     int64
	SVG       template.HTML
}

// The bar chart's geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH                       = 720, 220
	padLeft, padRight, padTop, padBottom = 56, 8, 12, 40
)

// barChart draws bs as bars, one per bucket of width, with a labelled
// y axis (0, half and the top of the scale) and x axis (every labelEvery
// buckets' start, formatted with layout, UTC). Every text in it is
// escaped.
func barChart(title string, bs []store.Bucket, width time.Duration, labelEvery int, layout string) chart {
	c := chart{Title: title}
	var top int64
	for _, b := range bs {
		c.Total += b.Count
		top = max(top, b.Count)
	}
	top = niceCeil(top)
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBottom)
	esc := template.HTMLEscapeString
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s">`, chartW, chartH, esc(title))
	// y axis: grid lines and labels at 0, top/2, top.
	for _, v := range []int64{0, top / 2, top} {
		y := float64(padTop) + plotH - plotH*float64(v)/float64(top)
		fmt.Fprintf(&sb, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padLeft, y, chartW-padRight, y)
		fmt.Fprintf(&sb, `<text class="tick" x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`,
			padLeft-6, y, esc(shortCount(v)))
	}
	fmt.Fprintf(&sb, `<text class="axis" x="12" y="%.1f" text-anchor="middle" transform="rotate(-90 12 %.1f)">values</text>`,
		float64(padTop)+plotH/2, float64(padTop)+plotH/2)
	n := max(len(bs), 1)
	bw := plotW / float64(n)
	for i, b := range bs {
		x := float64(padLeft) + bw*float64(i)
		h := plotH * float64(b.Count) / float64(top)
		fmt.Fprintf(&sb, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f"><title>%s: %s values</title></rect>`,
			x+bw*0.1, float64(padTop)+plotH-h, bw*0.8, h,
			esc(b.Start.UTC().Format("2006-01-02 15:04")+"–"+b.Start.Add(width).UTC().Format("15:04")+" UTC"),
			esc(strconv.FormatInt(b.Count, 10)))
		if labelEvery > 0 && i%labelEvery == 0 {
			fmt.Fprintf(&sb, `<line class="axisline" x1="%.2f" y1="%.1f" x2="%.2f" y2="%.1f"/>`,
				x, float64(padTop)+plotH, x, float64(padTop)+plotH+4)
			fmt.Fprintf(&sb, `<text class="tick" x="%.2f" y="%.1f" text-anchor="start">%s</text>`,
				x, float64(padTop)+plotH+16, esc(b.Start.UTC().Format(layout)))
		}
	}
	fmt.Fprintf(&sb, `<line class="axisline" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`,
		padLeft, float64(padTop)+plotH, chartW-padRight, float64(padTop)+plotH)
	fmt.Fprintf(&sb, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">time (UTC)</text>`,
		float64(padLeft)+plotW/2, chartH-4)
	sb.WriteString(`</svg>`)
	c.SVG = template.HTML(sb.String()) // every text above is escaped
	return c
}

// niceCeil returns the least 1, 2 or 5 times a power of ten at or above
// n (at least 2, so that the half-way tick is a whole number).
func niceCeil(n int64) int64 {
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if v := m * p; v >= n && v >= 2 {
				return v
			}
		}
	}
}

// shortCount writes n compactly: 950, 12k, 3.5M.
func shortCount(n int64) string {
	switch {
	case n >= 1_000_000:
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64), ".0") + "M"
	case n >= 10_000:
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}
