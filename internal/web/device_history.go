package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/series"
	"github.com/flownexus/flownexus/internal/store"
)

// HistoryPageSize is how many values one page of a history table lists.
const HistoryPageSize = 50

// timeRanges are the named ranges of the data pages, ending now.
var timeRanges = []struct {
	Name string
	D    time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

// timeRange is the range a data page shows: Range a named one, or
// "custom" with From and To as given.
type timeRange struct {
	Range    string
	From, To time.Time
	// FromText and ToText are the custom ends as the form shows them.
	FromText, ToText string
}

// timeForm is the layout of a datetime-local input (UTC); timeText, with
// seconds, is how a page writes a custom range's ends back (into its
// inputs and links), so that a range given to the second stays the same.
const (
	timeForm = "2006-01-02T15:04"
	timeText = "2006-01-02T15:04:05"
)

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, timeForm, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want YYYY-MM-DDTHH:MM (UTC) or RFC 3339", s)
}

// parseRange reads range (1h, 6h, 24h, 7d, 30d; default def), or from and
// to when range is custom or absent (either may be empty: then the
// range's other end is 24 hours away, or now). A named range ignores
// from and to, so that a form switched back from custom to a named range
// gets it.
func parseRange(q url.Values, now time.Time, def string) (timeRange, error) {
	tr := timeRange{Range: q.Get("range"), FromText: q.Get("from"), ToText: q.Get("to")}
	if tr.Range == "custom" || tr.Range == "" && (tr.FromText != "" || tr.ToText != "") {
		tr.Range = "custom"
		tr.To = now
		var err error
		if tr.ToText != "" {
			if tr.To, err = parseTime(tr.ToText); err != nil {
				return tr, badRequest("to: " + err.Error())
			}
		}
		tr.From = tr.To.Add(-24 * time.Hour)
		if tr.FromText != "" {
			if tr.From, err = parseTime(tr.FromText); err != nil {
				return tr, badRequest("from: " + err.Error())
			}
		}
		if !tr.From.Before(tr.To) {
			return tr, badRequest("from must be before to")
		}
		tr.FromText, tr.ToText = tr.From.Format(timeText), tr.To.Format(timeText)
		return tr, nil
	}
	if tr.Range == "" {
		tr.Range = def
	}
	for _, r := range timeRanges {
		if r.Name == tr.Range {
			// The end is a whole second after now, so a value received this
			// second is in.
			tr.To = now.Truncate(time.Second).Add(time.Second)
			tr.From = tr.To.Add(-r.D)
			tr.FromText, tr.ToText = "", ""
			return tr, nil
		}
	}
	return tr, badRequest("range: want 1h, 6h, 24h, 7d, 30d or custom")
}

// values adds the range to v, as the page's links repeat it.
func (tr timeRange) values(v url.Values) {
	if tr.Range == "custom" {
		v.Set("from", tr.FromText)
		v.Set("to", tr.ToText)
	} else {
		v.Set("range", tr.Range)
	}
}

// parseCursor reads a table's ?after= cursor: "<endpoint id>.<received ms>.<id>.<path>".
func parseCursor(s string) (*store.ValueCursor, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.SplitN(s, ".", 4)
	if len(parts) != 4 {
		return nil, badRequest("after: not a cursor of this page")
	}
	var c store.ValueCursor
	var err1, err2, err3 error
	c.EndpointID, err1 = strconv.ParseInt(parts[0], 10, 64)
	c.ReceivedAt, err2 = strconv.ParseInt(parts[1], 10, 64)
	c.ID, err3 = strconv.ParseInt(parts[2], 10, 64)
	c.Path = parts[3]
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, badRequest("after: not a cursor of this page")
	}
	return &c, nil
}

func formatCursor(c store.ValueCursor) string {
	return fmt.Sprintf("%d.%d.%d.%s", c.EndpointID, c.ReceivedAt, c.ID, c.Path)
}

type historyData struct {
	Endpoint store.Endpoint
	Path     string
	Name     string
	Unit     string
	Ranges   []string
	timeRange
	Count  int
	Shown  int // points in the chart
	Chart  any // template.HTML; "" without points
	Legend []legendItem
	Rows   []render.Value
	Next   string
	First  string
}

// history is GET /devices/{endpoint}/history?path=&range=|from=&to=&after=:
// a chart of a numeric resource's values over the range, downsampled on
// the server (LTTB, series.Downsampler), and a table of the values, by
// keyset pages.
//
// The chart's points are streamed from the database into the
// downsampler after one count of the range (the bucket sizes need it):
// memory holds two LTTB buckets, never the range's rows, and the rows are
// read once, in the history index's order. A min/max-per-bucket SQL pass
// would read fewer rows into Go but pick each bucket's extremes rather
// than the points that keep the line's shape, and costs a GROUP BY over
// the same index range.
func (w *Web) history(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	ep, err := w.endpoint(ctx, s, auth.ViewData, r.PathValue("endpoint"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	p, err := lwm2m.ParsePath(q.Get("path"))
	if err != nil || p.Depth() < 3 {
		return badRequest("path: want a resource path such as /3303/0/5700")
	}
	tr, err := parseRange(q, w.cfg.Now(), "24h")
	if err != nil {
		return err
	}
	after, err := parseCursor(q.Get("after"))
	if err != nil {
		return err
	}
	d := historyData{Endpoint: ep, Path: p.String(), timeRange: tr, Name: render.ResourceName(w.cfg.Objects, p)}
	for _, r := range timeRanges {
		d.Ranges = append(d.Ranges, r.Name)
	}
	if w.cfg.Objects != nil {
		if rd, ok := w.cfg.Objects.Resource(p.Object(), p.Resource()); ok {
			d.Unit = rd.Units
		}
	}
	pts, n, err := w.points(ctx, ep.ID, d.Path, tr.From, tr.To)
	if err != nil {
		return err
	}
	d.Count, d.Shown = n, len(pts)
	ss := []chartSeries{{Name: ep.Name + " " + d.Path, Points: pts}}
	if c := chartSVG(ss, tr.From, tr.To, d.Unit); c != "" {
		d.Chart, d.Legend = c, chartLegend(ss)
	}
	vq := store.ValueQuery{Scope: s.subj.Scope(auth.ViewData), EndpointID: ep.ID, Path: d.Path, From: tr.From, To: tr.To}
	rows, more, err := w.cfg.Store.PageValues(ctx, vq, after, HistoryPageSize)
	if err != nil {
		return err
	}
	for _, v := range rows {
		d.Rows = append(d.Rows, render.ValueOf(w.cfg.Objects, v.Path, v.Value, v.DeviceTime, v.ReceivedAt))
	}
	base := url.Values{"path": {d.Path}}
	tr.values(base)
	page := w.devicePage(ep.Name) + "/history?"
	if more {
		v := url.Values{"after": {formatCursor(store.CursorOf(rows[len(rows)-1]))}}
		for k, vs := range base {
			v[k] = vs
		}
		d.Next = page + v.Encode()
	}
	if after != nil {
		d.First = page + base.Encode()
	}
	w.render(rw, r, http.StatusOK, "history", s, d)
	return nil
}

// points returns the numeric values of one path in [from, to) downsampled
// to the chart's width, and how many values the range holds.
func (w *Web) points(ctx context.Context, endpointID int64, path string, from, to time.Time) ([]series.Point, int, error) {
	n, err := w.cfg.Store.CountPoints(ctx, endpointID, path, from, to)
	if err != nil {
		return nil, 0, err
	}
	ds := series.NewDownsampler(n, chartPoints)
	err = w.cfg.Store.EachPoint(ctx, endpointID, path, from, to, func(ms int64, y float64) {
		ds.Add(series.Point{X: float64(ms), Y: y})
	})
	if err != nil {
		return nil, 0, err
	}
	return ds.Result(), n, nil
}
