package store

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flownexus/flownexus/internal/auth"
)

// EndpointPage selects one page of endpoints for PageEndpoints: names
// starting with Prefix, online or offline (Online nil: both), in Sort
// order after the endpoint named After (keyset paging: "" starts at the
// first), at most Limit (<= 0: 50, at most 500).
type EndpointPage struct {
	// Scope is the devices the page may show; the zero Scope shows none,
	// auth.Everything all.
	Scope  auth.Scope
	Prefix string
	Online *bool
	Sort   EndpointSort
	// After is the last endpoint of the previous page: its name, and for
	// SortSeen its last-seen time too.
	After     string
	AfterSeen time.Time
	Limit     int
}

// EndpointSort is the order of an EndpointPage.
type EndpointSort string

// The orders: by name (the default), by name backwards, and the most
// recently seen first (then by name backwards; never seen last).
const (
	SortName     EndpointSort = ""
	SortNameDesc EndpointSort = "name-desc"
	SortSeen     EndpointSort = "seen"
)

// PageEndpoints returns one page of the endpoints p selects, in p.Sort
// order, and whether more follow. Its cost grows with the page, not with
// the number of endpoints: it walks the unique index on name (or the
// (online, name) index when Online is set), or endpoint_seen_name, from
// After or Prefix.
func (s *Store) PageEndpoints(ctx context.Context, p EndpointPage) ([]Endpoint, bool, error) {
	limit := min(limitOr(p.Limit, 50), 500)
	var where []string
	var args []any
	arg := argList(&args)
	if c := scopeCond(p.Scope, "site_id", arg); c != "" {
		where = append(where, c)
	}
	if p.Online != nil {
		where = append(where, "online = "+arg(*p.Online))
	}
	if p.Prefix != "" {
		// A range on the name: names starting with Prefix sort between it
		// and Prefix followed by the greatest code point.
		where = append(where, "name >= "+arg(p.Prefix), "name < "+arg(p.Prefix+string(utf8.MaxRune)))
	}
	order := "name"
	switch p.Sort {
	case SortName:
		if p.After != "" {
			where = append(where, "name > "+arg(p.After))
		}
	case SortNameDesc:
		order = "name DESC"
		if p.After != "" {
			where = append(where, "name < "+arg(p.After))
		}
	case SortSeen:
		// The expression is that of the index endpoint_seen_name.
		order = "COALESCE(last_seen, 0) DESC, name DESC"
		if p.After != "" {
			seen := int64(0) // never seen
			if !p.AfterSeen.IsZero() {
				seen = millis(p.AfterSeen)
			}
			where = append(where, "(COALESCE(last_seen, 0), name) < ("+arg(seen)+", "+arg(p.After)+")")
		}
	default:
		return nil, false, fmt.Errorf("store: page endpoints: unknown order %q", p.Sort)
	}
	q := "SELECT " + endpointCols + " FROM endpoint"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY " + order + " LIMIT " + arg(limit+1)
	return queryPage(ctx, s, "page endpoints", q, args, limit, scanEndpoint)
}

// FleetCounts counts the endpoints: all, online, and online in queue mode
// (sleeping between their wake-ups). Offline is Total - Online.
type FleetCounts struct {
	Total, Online, Sleeping int
}

// CountFleet returns the FleetCounts of the endpoints in sc, in one scan.
func (s *Store) CountFleet(ctx context.Context, sc auth.Scope) (FleetCounts, error) {
	var c FleetCounts
	var args []any
	err := s.rdb.QueryRowContext(ctx, `SELECT count(*),
		COALESCE(SUM(CASE WHEN online THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN online AND queue_mode THEN 1 ELSE 0 END), 0) FROM endpoint`+
		whereAll(scopeCond(sc, "site_id", argList(&args))), args...).Scan(&c.Total, &c.Online, &c.Sleeping)
	return c, wrap("count fleet", err)
}

// NamedEvent is an Event with its endpoint's name.
type NamedEvent struct {
	Event
	Endpoint string
}

// RecentEvents returns the most recent events of the endpoints in sc,
// newest first, at most limit (<= 0: 20), read backwards along the
// primary key.
func (s *Store) RecentEvents(ctx context.Context, sc auth.Scope, limit int) ([]NamedEvent, error) {
	var args []any
	arg := argList(&args)
	q := `SELECT ev.id, ev.endpoint_id, ev.kind, ev.time, ev.received_at, e.name
		FROM event ev JOIN endpoint e ON e.id = ev.endpoint_id` + whereAll(scopeCond(sc, "e.site_id", arg)) +
		` ORDER BY ev.id DESC LIMIT ` + arg(limitOr(limit, 20))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("recent events", err)
	}
	out, err := collect(rows, func(r rowScanner) (NamedEvent, error) {
		var n NamedEvent
		var t, recv int64
		err := r.Scan(&n.ID, &n.EndpointID, &n.Kind, &t, &recv, &n.Endpoint)
		n.Time, n.ReceivedAt = fromMillis(t), fromMillis(recv)
		return n, err
	})
	return out, wrap("recent events", err)
}

// CountQueuedOperations returns how many operations of the endpoints in
// sc are queued (the queue depth), from a partial index of just those.
func (s *Store) CountQueuedOperations(ctx context.Context, sc auth.Scope) (int, error) {
	var n int
	var args []any
	q := "SELECT count(*) FROM endpoint_operation WHERE status = 'QUEUED'"
	if c := scopeCond(sc, "e.site_id", argList(&args)); c != "" {
		q = "SELECT count(*) FROM endpoint_operation o JOIN endpoint e ON e.id = o.endpoint_id WHERE o.status = 'QUEUED' AND " + c
	}
	err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, wrap("count queued operations", err)
}

// DeviceFacts are the latest values the devices list shows of an
// endpoint: its Firmware Version (/3/0/3; "" when it reported none) and
// Battery Level (/3/0/9, percent; -1 when it reported none).
type DeviceFacts struct {
	Firmware string
	Battery  int64
}

// DeviceFactsOf returns the DeviceFacts of the endpoints, by id; an
// endpoint with neither value is absent. One query, along the latest
// values' primary key per endpoint.
func (s *Store) DeviceFactsOf(ctx context.Context, ids []int64) (map[int64]DeviceFacts, error) {
	out := map[int64]DeviceFacts{}
	if len(ids) == 0 {
		return out, nil
	}
	var args []any
	arg := argList(&args)
	ph := make([]string, len(ids))
	for i, id := range ids {
		ph[i] = arg(id)
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT endpoint_id, resource_id, value_text, value_int, value_float
		FROM resource_latest WHERE endpoint_id IN (`+strings.Join(ph, ", ")+`)
		AND path IN ('/3/0/3', '/3/0/9')`, args...)
	if err != nil {
		return nil, wrap("device facts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, res int64
		var text *string
		var i *int64
		var f *float64
		if err := rows.Scan(&id, &res, &text, &i, &f); err != nil {
			return nil, wrap("device facts", err)
		}
		d, ok := out[id]
		if !ok {
			d.Battery = -1
		}
		switch {
		case res == 3 && text != nil:
			d.Firmware = *text
		case res == 9 && i != nil:
			d.Battery = *i
		case res == 9 && f != nil:
			d.Battery = int64(*f)
		}
		out[id] = d
	}
	return out, wrap("device facts", rows.Err())
}
