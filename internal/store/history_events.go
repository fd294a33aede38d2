package store

import (
	"context"
	"strings"
)

// EventRow is a stored event with its endpoint's name.
type EventRow struct {
	Endpoint string
	Event
}

// eventWhere is the condition of q on ev (event) and e (endpoint): its
// endpoints and the range of received_at; the path fields do not apply.
func (q ValueQuery) eventWhere(arg func(any) string) string {
	conds := append([]string{q.timeWhere("ev.received_at", arg)}, q.endpointConds("ev.endpoint_id", arg)...)
	return strings.Join(conds, " AND ")
}

// CountEvents returns how many events of the endpoints q selects were
// received in its range.
func (s *Store) CountEvents(ctx context.Context, q ValueQuery) (int64, error) {
	var args []any
	arg := argList(&args)
	var n int64
	err := s.rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM event ev JOIN endpoint e ON e.id = ev.endpoint_id WHERE "+
		q.eventWhere(arg), args...).Scan(&n)
	return n, wrap("count events", err)
}

// EachEvent calls fn with each event of the endpoints q selects received
// in its range, by id, after the id after (0: from the first), at most
// limit (<= 0: all), until fn returns an error (which EachEvent returns).
// Rows are read as fn takes them.
func (s *Store) EachEvent(ctx context.Context, q ValueQuery, after int64, limit int, fn func(EventRow) error) error {
	var args []any
	arg := argList(&args)
	query := "SELECT e.name, ev.id, ev.endpoint_id, ev.kind, ev.time, ev.received_at FROM event ev JOIN endpoint e ON e.id = ev.endpoint_id WHERE " +
		q.eventWhere(arg)
	if after > 0 {
		query += " AND ev.id > " + arg(after)
	}
	query += " ORDER BY ev.id"
	if limit > 0 {
		query += " LIMIT " + arg(limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return wrap("events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r EventRow
		var t, recv int64
		if err := rows.Scan(&r.Endpoint, &r.ID, &r.EndpointID, &r.Kind, &t, &recv); err != nil {
			return wrap("events", err)
		}
		r.Time, r.ReceivedAt = fromMillis(t), fromMillis(recv)
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap("events", rows.Err())
}
