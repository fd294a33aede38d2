package web

import (
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/render"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/xlsx"
)

// xlsxMaxRows is the most data rows an XLSX export holds: a worksheet's
// rows less the header.
const xlsxMaxRows = xlsx.MaxRows - 1

// exportFlushRows is how many rows an export writes between flushes of
// the response.
const exportFlushRows = 1000

// exportWriteTimeout bounds the write of one batch of rows: a client that
// stops reading for this long loses its export.
const exportWriteTimeout = 30 * time.Second

// exportSink is one export format: a header, rows, and the end.
type exportSink interface {
	row(cells []exportCell) error
	flush() error
	close() error
}

// exportCell is a value of a row: a number or a text; a number may carry
// its exact text too (a 64-bit integer), which CSV writes.
type exportCell struct {
	text  string
	num   float64
	isNum bool
}

func textCell(s string) exportCell { return exportCell{text: s} }

type csvSink struct{ w *csv.Writer }

func (c csvSink) row(cells []exportCell) error {
	rec := make([]string, len(cells))
	for i, x := range cells {
		if x.isNum && x.text == "" {
			rec[i] = strconv.FormatFloat(x.num, 'g', -1, 64)
		} else {
			rec[i] = x.text
		}
	}
	return c.w.Write(rec)
}
func (c csvSink) flush() error { c.w.Flush(); return c.w.Error() }
func (c csvSink) close() error { return c.flush() }

type xlsxSink struct{ w *xlsx.Writer }

func (x xlsxSink) row(cells []exportCell) error {
	out := make([]xlsx.Cell, len(cells))
	for i, c := range cells {
		if c.isNum {
			out[i] = xlsx.Number(c.num)
		} else {
			out[i] = xlsx.String(c.text)
		}
	}
	return x.w.WriteRow(out...)
}
func (x xlsxSink) flush() error { return x.w.Flush() }
func (x xlsxSink) close() error { return x.w.Close() }

// export is GET /data/export?format=csv|xlsx and the data explorer's
// selection: every row the selection holds, streamed from the database
// row by row and flushed every exportFlushRows rows, with no row cap for
// CSV (an XLSX worksheet holds at most xlsxMaxRows: a larger selection is
// refused before anything is written). Times are RFC 3339 UTC strings.
func (w *Web) export(rw http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	v := r.URL.Query()
	format := v.Get("format")
	if format != "csv" && format != "xlsx" {
		return badRequest("format: want csv or xlsx")
	}
	d, err := w.parseDataQuery(v, s)
	if err != nil {
		return err
	}
	if format == "xlsx" {
		var n int64
		if d.Kind == "events" {
			n, err = w.cfg.Store.CountEvents(ctx, d.q)
		} else {
			n, err = w.cfg.Store.CountValues(ctx, d.q)
		}
		if err != nil {
			return err
		}
		if n > xlsxMaxRows {
			return badRequest(fmt.Sprintf("%d rows are more than a worksheet holds (%d): export CSV instead", n, xlsxMaxRows))
		}
	}
	name := fmt.Sprintf("flownexus-%s-%s.%s", d.Kind, w.cfg.Now().UTC().Format("20060102T150405Z"), format)
	h := rw.Header()
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	var sink exportSink
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
		sink = csvSink{csv.NewWriter(rw)}
	} else {
		h.Set("Content-Type", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
		xw, err := xlsx.NewWriter(rw, d.Kind)
		if err != nil {
			return err
		}
		sink = xlsxSink{xw}
	}
	rc := http.NewResponseController(rw)
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	n := 0
	step := func(cells []exportCell) error {
		if err := sink.row(cells); err != nil {
			return err
		}
		if n++; n%exportFlushRows == 0 {
			if err := sink.flush(); err != nil {
				return err
			}
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
			return rc.Flush()
		}
		return nil
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	if d.Kind == "events" {
		err = step([]exportCell{textCell("endpoint"), textCell("event_id"), textCell("kind"), textCell("time"), textCell("received_at")})
		if err == nil {
			err = w.cfg.Store.EachEvent(ctx, d.q, 0, 0, func(e store.EventRow) error {
				return step([]exportCell{textCell(e.Endpoint), {num: float64(e.ID), isNum: true, text: strconv.FormatInt(e.ID, 10)}, textCell(e.Kind),
					textCell(stamp(e.Time)), textCell(stamp(e.ReceivedAt))})
			})
		}
	} else {
		err = step([]exportCell{textCell("endpoint"), textCell("path"), textCell("resource"), textCell("type"), textCell("value"),
			textCell("device_time"), textCell("received_at")})
		names := map[string]string{}
		if err == nil {
			err = w.cfg.Store.EachValue(ctx, d.q, nil, 0, func(r store.ValueRow) error {
				p := r.Path.String()
				name, ok := names[p]
				if !ok {
					name = render.ResourceName(w.cfg.Objects, r.Path)
					names[p] = name
				}
				return step([]exportCell{textCell(r.Endpoint), textCell(p), textCell(name), textCell(r.Value.Type().String()),
					valueCell(r.Value), textCell(stamp(r.DeviceTime)), textCell(stamp(r.ReceivedAt))})
			})
		}
	}
	if err == nil {
		err = sink.close()
	}
	if err != nil {
		// The response has begun: the client sees a cut file. Log why.
		if ctx.Err() == nil {
			w.log.Warn("export ended early", "user", s.user.Username, "rows", n, "err", err)
		}
		return nil
	}
	return nil
}

// valueCell is a value as an export writes it: numbers as numbers,
// booleans as 0 and 1, a time as RFC 3339, the rest as render.JSON's text.
func valueCell(v lwm2m.Value) exportCell {
	switch v.Type() {
	case lwm2m.TypeInteger:
		return exportCell{num: float64(v.IntValue()), isNum: true, text: strconv.FormatInt(v.IntValue(), 10)}
	case lwm2m.TypeUnsigned:
		return exportCell{num: float64(v.UintValue()), isNum: true, text: strconv.FormatUint(v.UintValue(), 10)}
	case lwm2m.TypeFloat:
		if f := v.FloatValue(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return exportCell{num: f, isNum: true}
		}
		return textCell(strconv.FormatFloat(v.FloatValue(), 'g', -1, 64))
	case lwm2m.TypeBoolean:
		if v.BoolValue() {
			return exportCell{num: 1, isNum: true}
		}
		return exportCell{num: 0, isNum: true}
	}
	return textCell(fmt.Sprint(render.JSON(v)))
}
