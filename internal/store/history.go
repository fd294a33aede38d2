package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// ValueQuery selects stored values for the dashboard's data pages (a
// device's history chart, the data explorer and its export): the values
// of the paths matching the pattern of the endpoints selected, received
// in [From, To).
//
// The paths are found in resource_latest (one row per endpoint and path),
// and each path's values by the history index (endpoint_id, path,
// received_at): the cost of a query grows with the paths selected and
// the values they hold in the range, not with the table.
type ValueQuery struct {
	// Scope is the devices whose values may be read; the zero Scope
	// selects nothing, auth.Everything all.
	Scope auth.Scope
	// EndpointID selects one endpoint; 0 selects those of Names, or with a
	// name starting with Prefix, or every one in Scope.
	EndpointID int64
	Names      []string
	Prefix     string
	// Path selects one path exactly ("/3303/0/5700"); else Object (< 0:
	// any), Instance and Resource (< 0: any) match the path's IDs.
	Path                       string
	Object, Instance, Resource int
	From, To                   time.Time // a zero From or To leaves that end open
}

// SeriesKey is one path of one endpoint: a series of values.
type SeriesKey struct {
	EndpointID int64
	Endpoint   string
	Path       string
	Type       string // the type of its latest value
}

// ValueRow is a stored value with its endpoint's name and row id.
type ValueRow struct {
	ID       int64
	Endpoint string
	ResourceValue
}

// ValueCursor is the position after a ValueRow in the order EachValue
// returns rows: (endpoint id, path, received_at, id).
type ValueCursor struct {
	EndpointID int64
	Path       string
	ReceivedAt int64 // unix milliseconds
	ID         int64
}

// CursorOf returns the cursor just after r.
func CursorOf(r ValueRow) ValueCursor {
	return ValueCursor{EndpointID: r.EndpointID, Path: r.Path.String(), ReceivedAt: millis(r.ReceivedAt), ID: r.ID}
}

// endpointConds are the conditions of q's scope and endpoints on e
// (endpoint) and idCol, the endpoint id column of the queried table.
func (q ValueQuery) endpointConds(idCol string, arg func(any) string) []string {
	var conds []string
	if c := scopeCond(q.Scope, "e.site_id", arg); c != "" {
		conds = append(conds, c)
	}
	switch {
	case q.EndpointID != 0:
		conds = append(conds, idCol+" = "+arg(q.EndpointID))
	case len(q.Names) > 0:
		ph := make([]string, len(q.Names))
		for i, n := range q.Names {
			ph[i] = arg(n)
		}
		conds = append(conds, "e.name IN ("+strings.Join(ph, ", ")+")")
	case q.Prefix != "":
		conds = append(conds, "e.name >= "+arg(q.Prefix), "e.name < "+arg(q.Prefix+string(utf8.MaxRune)))
	}
	return conds
}

// seriesWhere is the condition on l (resource_latest) and e (endpoint)
// of q, with its arguments added by arg.
func (q ValueQuery) seriesWhere(arg func(any) string) string {
	conds := q.endpointConds("l.endpoint_id", arg)
	if q.Path != "" {
		conds = append(conds, "l.path = "+arg(q.Path))
	} else {
		for _, c := range []struct {
			col string
			id  int
		}{{"l.object_id", q.Object}, {"l.instance_id", q.Instance}, {"l.resource_id", q.Resource}} {
			if c.id >= 0 {
				conds = append(conds, c.col+" = "+arg(int64(c.id)))
			}
		}
	}
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

func (q ValueQuery) timeWhere(col string, arg func(any) string) string {
	var conds []string
	if !q.From.IsZero() {
		conds = append(conds, col+" >= "+arg(millis(q.From)))
	}
	if !q.To.IsZero() {
		conds = append(conds, col+" < "+arg(millis(q.To)))
	}
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

// ListSeries returns the paths q selects, by endpoint id and path, at most
// limit (<= 0: 1000) of them, and whether more match.
func (s *Store) ListSeries(ctx context.Context, q ValueQuery, limit int) ([]SeriesKey, bool, error) {
	limit = limitOr(limit, 1000)
	var args []any
	arg := argList(&args)
	sq := `SELECT l.endpoint_id, e.name, l.path, l.value_type
		FROM resource_latest l JOIN endpoint e ON e.id = l.endpoint_id
		WHERE ` + q.seriesWhere(arg) + ` ORDER BY l.endpoint_id, l.path LIMIT ` + arg(limit+1)
	return queryPage(ctx, s, "list series", sq, args, limit, func(r rowScanner) (SeriesKey, error) {
		var k SeriesKey
		return k, r.Scan(&k.EndpointID, &k.Endpoint, &k.Path, &k.Type)
	})
}

// CountValues returns how many values q selects.
func (s *Store) CountValues(ctx context.Context, q ValueQuery) (int64, error) {
	var args []any
	arg := argList(&args)
	var n int64
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*)
		FROM resource_latest l JOIN endpoint e ON e.id = l.endpoint_id
		JOIN resource r ON r.endpoint_id = l.endpoint_id AND r.path = l.path
		WHERE `+q.seriesWhere(arg)+" AND "+q.timeWhere("r.received_at", arg), args...).Scan(&n)
	return n, wrap("count values", err)
}

// EachValue calls fn with each value q selects after the cursor (nil:
// from the first), ordered by endpoint id, path, received_at and id,
// until fn returns an error (which EachValue returns) or the values run
// out. Rows are read from the database as fn takes them: a caller
// streaming them out holds one at a time, whatever their number.
func (s *Store) EachValue(ctx context.Context, q ValueQuery, after *ValueCursor, limit int, fn func(ValueRow) error) error {
	var args []any
	arg := argList(&args)
	query := `SELECT e.name, r.id, r.endpoint_id, r.path, r.value_type, r.value_int, r.value_float, r.value_text,
			r.value_blob, r.device_time, r.received_at, r.event_id
		FROM resource_latest l JOIN endpoint e ON e.id = l.endpoint_id
		JOIN resource r ON r.endpoint_id = l.endpoint_id AND r.path = l.path
		WHERE ` + q.seriesWhere(arg) + " AND " + q.timeWhere("r.received_at", arg)
	if after != nil {
		// The keyset, spelled out so that each engine seeks the indexes.
		ep, p, t, id := arg(after.EndpointID), arg(after.Path), arg(after.ReceivedAt), arg(after.ID)
		query += fmt.Sprintf(` AND (l.endpoint_id > %[1]s OR (l.endpoint_id = %[1]s AND (l.path > %[2]s OR (l.path = %[2]s
			AND (r.received_at > %[3]s OR (r.received_at = %[3]s AND r.id > %[4]s))))))`, ep, p, t, id)
	}
	query += " ORDER BY l.endpoint_id, l.path, r.received_at, r.id"
	if limit > 0 {
		query += " LIMIT " + arg(limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return wrap("values", err)
	}
	defer rows.Close()
	for rows.Next() {
		var vr ValueRow
		var path, typ string
		var i, dev, event sql.NullInt64
		var f sql.NullFloat64
		var text sql.NullString
		var blob []byte
		var recv int64
		if err := rows.Scan(&vr.Endpoint, &vr.ID, &vr.EndpointID, &path, &typ, &i, &f, &text, &blob, &dev, &recv, &event); err != nil {
			return wrap("values", err)
		}
		if vr.Path, err = lwm2m.ParsePath(path); err != nil {
			return wrap("values", err)
		}
		if vr.Value, err = decodeValue(typ, i, f, text, blob); err != nil {
			return wrap("values", fmt.Errorf("%s: %w", path, err))
		}
		vr.DeviceTime, vr.ReceivedAt, vr.EventID = fromNullMillis(dev), fromMillis(recv), event.Int64
		if err := fn(vr); err != nil {
			return err
		}
	}
	return wrap("values", rows.Err())
}

// PageValues returns at most limit values q selects after the cursor, in
// EachValue's order, and whether more follow.
func (s *Store) PageValues(ctx context.Context, q ValueQuery, after *ValueCursor, limit int) ([]ValueRow, bool, error) {
	limit = limitOr(limit, 50)
	var out []ValueRow
	err := s.EachValue(ctx, q, after, limit+1, func(r ValueRow) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// CountPoints returns how many values of the endpoint's path were
// received in [from, to) (a zero end is open).
func (s *Store) CountPoints(ctx context.Context, endpointID int64, path string, from, to time.Time) (int, error) {
	var args []any
	arg := argList(&args)
	q := ValueQuery{From: from, To: to}
	var n int
	err := s.rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM resource WHERE endpoint_id = "+arg(endpointID)+
		" AND path = "+arg(path)+" AND "+q.timeWhere("received_at", arg), args...).Scan(&n)
	return n, wrap("count points", err)
}

// EachPoint calls fn with the numeric value of each value of the
// endpoint's path received in [from, to), oldest first: a float as it
// is, an integer, time or boolean (0, 1) as a float; values of other
// types, and NaN, are skipped. It reads only the two numeric columns, as
// the rows come (a chart streams them into its downsampling).
func (s *Store) EachPoint(ctx context.Context, endpointID int64, path string, from, to time.Time, fn func(ms int64, y float64)) error {
	var args []any
	arg := argList(&args)
	q := ValueQuery{From: from, To: to}
	rows, err := s.rdb.QueryContext(ctx, "SELECT received_at, value_int, value_float FROM resource WHERE endpoint_id = "+
		arg(endpointID)+" AND path = "+arg(path)+" AND "+q.timeWhere("received_at", arg)+
		" AND (value_float IS NOT NULL OR value_int IS NOT NULL) ORDER BY received_at, id", args...)
	if err != nil {
		return wrap("points", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		var i sql.NullInt64
		var f sql.NullFloat64
		if err := rows.Scan(&ms, &i, &f); err != nil {
			return wrap("points", err)
		}
		y := f.Float64
		if !f.Valid {
			y = float64(i.Int64)
		}
		if !math.IsNaN(y) {
			fn(ms, y)
		}
	}
	return wrap("points", rows.Err())
}
