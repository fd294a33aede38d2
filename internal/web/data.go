package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
)

// dataPatterns are the URL patterns of the live stream, the device page's
// actions and history, and the data explorer (added to Patterns).
var dataPatterns = []string{"/live", "/devices/{endpoint}/operations", "/devices/{endpoint}/operations/{id}/cancel",
	"/devices/{endpoint}/history", "/data", "/data/export"}

// init adds the data pages to the package's tables (Patterns, and the
// templates parsed), so that web.go's lists need no line of theirs.
func init() {
	Patterns = append(Patterns, dataPatterns...)
	pageNames = append(pageNames, "history", "data")
}

// dataRoutes registers the live stream, the device page's actions and
// history chart, and the data explorer with its export.
func (w *Web) dataRoutes() {
	w.live = newLiveHub(w.cfg.Events, w.cfg.Store, w.log)
	w.route("GET /live", auth.ViewData, w.liveStream)
	w.route("POST /devices/{endpoint}/operations", auth.PerformOperations, w.deviceOperation)
	w.route("POST /devices/{endpoint}/operations/{id}/cancel", auth.PerformOperations, w.cancelDeviceOperation)
	w.route("GET /devices/{endpoint}/history", auth.ViewData, w.history)
	w.route("GET /data", auth.ViewData, w.data)
	w.route("GET /data/export", auth.ViewData, w.export)
}

// The data explorer's bounds: series in its chart, rows per table page,
// endpoints named in a list.
const (
	DataChartSeries = 8
	DataPageSize    = 50
	maxDataNames    = 500
)

// dataQuery is the data explorer's selection, as its form and its links
// state it.
type dataQuery struct {
	Prefix string // endpoint name prefix
	Names  string // endpoint names, by commas, spaces or lines
	Path   string // a path or pattern: 3303/*/5700, /3/0/1
	Kind   string // values or events
	timeRange
	q store.ValueQuery
}

// parseDataQuery reads the explorer's selection from the query string,
// restricted to the session's ViewData scope (narrowed by the site
// switcher).
func (w *Web) parseDataQuery(v url.Values, s *session) (dataQuery, error) {
	d := dataQuery{Prefix: strings.TrimSpace(v.Get("prefix")), Names: strings.TrimSpace(v.Get("names")),
		Path: strings.TrimSpace(v.Get("path")), Kind: v.Get("kind")}
	var err error
	if d.timeRange, err = parseRange(v, w.cfg.Now(), "24h"); err != nil {
		return d, err
	}
	d.q = store.ValueQuery{Scope: s.scope(auth.ViewData), Prefix: d.Prefix, From: d.From, To: d.To,
		Object: -1, Instance: -1, Resource: -1}
	if len(d.Prefix) > 256 {
		return d, badRequest("prefix: at most 256 bytes")
	}
	if d.Names != "" {
		d.q.Names = strings.FieldsFunc(d.Names, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
		if len(d.q.Names) > maxDataNames {
			return d, badRequest(fmt.Sprintf("names: at most %d endpoints", maxDataNames))
		}
	}
	switch d.Kind {
	case "":
		d.Kind = "values"
	case "values", "events":
	default:
		return d, badRequest("kind: want values or events")
	}
	if d.Kind == "values" {
		if d.Path == "" {
			return d, badRequest("path: give a path or pattern such as 3303/*/5700 or /3/0/1")
		}
		if err := parsePattern(d.Path, &d.q); err != nil {
			return d, err
		}
	}
	return d, nil
}

// parsePattern reads a path or a pattern of one: object, instance and
// resource IDs, "*" for any instance or resource ("3303/*/5700",
// "/3303/0", "3/0/7/1"). A resource-instance path selects itself only.
func parsePattern(s string, q *store.ValueQuery) error {
	bad := badRequest("path: want object/instance/resource IDs, * for any, such as 3303/*/5700 or /3/0/1")
	parts := strings.Split(strings.Trim(s, "/"), "/")
	if len(parts) == 4 {
		p, err := lwm2m.ParsePath("/" + strings.Join(parts, "/"))
		if err != nil {
			return bad
		}
		q.Path = p.String()
		return nil
	}
	if len(parts) > 4 {
		return bad
	}
	ids := []*int{&q.Object, &q.Instance, &q.Resource}
	for i, part := range parts {
		if part == "*" && i > 0 {
			continue
		}
		n, err := strconv.ParseUint(part, 10, 16)
		if err != nil || n > lwm2m.MaxID {
			return bad
		}
		*ids[i] = int(n)
	}
	return nil
}

// values is the selection as query parameters, for the page's links.
func (d dataQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"prefix": d.Prefix, "names": d.Names, "path": d.Path, "kind": d.Kind} {
		if s != "" {
			v.Set(k, s)
		}
	}
	d.timeRange.values(v)
	return v
}

type dataData struct {
	dataQuery
	Ranges    []string
	Asked     bool // a selection was made (the form was sent)
	Error     string
	Count     int64
	CSVSize   string // rough size of the CSV export
	XLSXSize  string
	XLSXLimit bool // too many rows for one worksheet
	Series    int  // series selected (values)
	MoreThan  bool // more series than the chart shows
	Chart     any
	Legend    []legendItem
	Unit      string
	Values    []valueRow
	Events    []store.EventRow
	Next      string
	First     string
	ExportCSV string
	ExportXLS string
}

type valueRow struct {
	Endpoint string
	render.Value
}

// Rough bytes per exported row, measured on exports of simulated fleets:
// the size shown before an export is the count times these.
const (
	csvRowBytes  = 72
	xlsxRowBytes = 30 // deflated
)

// data is GET /data, the data explorer: the form, and for a selection its
// count with the export's rough size, a chart of the numeric series (one
// per endpoint and path, downsampled) and a table by keyset pages.
func (w *Web) data(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	v := r.URL.Query()
	d := dataData{Asked: len(v) > 0}
	for _, tr := range timeRanges {
		d.Ranges = append(d.Ranges, tr.Name)
	}
	var err error
	d.dataQuery, err = w.parseDataQuery(v, s)
	if !d.Asked {
		d.Kind, d.Range = "values", "24h"
		w.render(rw, r, http.StatusOK, "data", s, d)
		return nil
	}
	if err != nil {
		d.Error = err.Error()
		rw.Header().Set("Cache-Control", "no-store")
		w.render(rw, r, http.StatusBadRequest, "data", s, d)
		return nil
	}
	base := d.values()
	if d.Kind == "events" {
		if d.Count, err = w.cfg.Store.CountEvents(ctx, d.q); err != nil {
			return err
		}
		after, _ := strconv.ParseInt(v.Get("after"), 10, 64)
		err = w.cfg.Store.EachEvent(ctx, d.q, after, DataPageSize+1, func(e store.EventRow) error {
			d.Events = append(d.Events, e)
			return nil
		})
		if err != nil {
			return err
		}
		if len(d.Events) > DataPageSize {
			d.Events = d.Events[:DataPageSize]
			next := cloneValues(base)
			next.Set("after", strconv.FormatInt(d.Events[len(d.Events)-1].ID, 10))
			d.Next = "/data?" + next.Encode()
		}
		if after > 0 {
			d.First = "/data?" + base.Encode()
		}
	} else {
		after, err := parseCursor(v.Get("after"))
		if err != nil {
			return err
		}
		if d.Count, err = w.cfg.Store.CountValues(ctx, d.q); err != nil {
			return err
		}
		keys, more, err := w.cfg.Store.ListSeries(ctx, d.q, 1000)
		if err != nil {
			return err
		}
		d.Series, d.MoreThan = len(keys), more
		var ss []chartSeries
		for _, k := range keys {
			if !numericType(k.Type) {
				continue
			}
			if len(ss) == DataChartSeries {
				d.MoreThan = true
				break
			}
			pts, _, err := w.points(ctx, k.EndpointID, k.Path, d.From, d.To)
			if err != nil {
				return err
			}
			ss = append(ss, chartSeries{Name: k.Endpoint + " " + k.Path, Points: pts})
			if d.Unit == "" && w.cfg.Objects != nil {
				if p, err := lwm2m.ParsePath(k.Path); err == nil {
					if rd, ok := w.cfg.Objects.Resource(p.Object(), p.Resource()); ok {
						d.Unit = rd.Units
					}
				}
			}
		}
		if c := chartSVG(ss, d.From, d.To, d.Unit); c != "" {
			d.Chart, d.Legend = c, chartLegend(ss)
		}
		rows, more, err := w.cfg.Store.PageValues(ctx, d.q, after, DataPageSize)
		if err != nil {
			return err
		}
		for _, r := range rows {
			d.Values = append(d.Values, valueRow{Endpoint: r.Endpoint,
				Value: render.ValueOf(w.cfg.Objects, r.Path, r.Value, r.DeviceTime, r.ReceivedAt)})
		}
		if more {
			next := cloneValues(base)
			next.Set("after", formatCursor(store.CursorOf(rows[len(rows)-1])))
			d.Next = "/data?" + next.Encode()
		}
		if after != nil {
			d.First = "/data?" + base.Encode()
		}
	}
	d.CSVSize, d.XLSXSize = roughSize(d.Count*csvRowBytes), roughSize(d.Count*xlsxRowBytes)
	d.XLSXLimit = d.Count >= xlsxMaxRows
	csv, xls := cloneValues(base), cloneValues(base)
	csv.Set("format", "csv")
	xls.Set("format", "xlsx")
	d.ExportCSV, d.ExportXLS = "/data/export?"+csv.Encode(), "/data/export?"+xls.Encode()
	w.render(rw, r, http.StatusOK, "data", s, d)
	return nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// roughSize formats n bytes to two significant digits: "about 1.2 MB".
func roughSize(n int64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB"}
	f := float64(n)
	i := 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d bytes", n)
	case f < 10:
		return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i]
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + " " + units[i]
}
