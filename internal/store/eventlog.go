package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// LoggedEvent is one event of the durable event log: what happened
// (Topic, package events' topics), when, to which endpoint, the
// endpoint's site when it was logged (0: none) and the event's payload as
// JSON. ID is set by the log: it grows with every event appended.
type LoggedEvent struct {
	ID       int64
	Time     time.Time
	Topic    string
	Endpoint string
	SiteID   int64
	Data     json.RawMessage
}

const eventLogCols = "id, time, topic, endpoint, site_id, data"

func scanLoggedEvent(r rowScanner) (LoggedEvent, error) {
	var e LoggedEvent
	var t int64
	var site sql.NullInt64
	var data string
	if err := r.Scan(&e.ID, &t, &e.Topic, &e.Endpoint, &site, &data); err != nil {
		return LoggedEvent{}, err
	}
	e.Time, e.SiteID, e.Data = fromMillis(t), site.Int64, json.RawMessage(data)
	return e, nil
}

// appendEventsChunk bounds the rows of one insert statement (6 parameters
// a row).
const appendEventsChunk = 500

// AppendEvents appends evs to the event log in one transaction and sets
// their IDs, in the order of evs. A zero Time is the store's now; an
// empty Data is JSON null. Each event of evs is left as the log holds it
// (Time in milliseconds, Data never empty), equal to what EventsAfter
// reads.
func (s *Store) AppendEvents(ctx context.Context, evs []LoggedEvent) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.AppendEventsTx(ctx, tx, evs) })
}

// AppendEventsTx is AppendEvents inside the transaction tx (WithTx), so
// that rows about the events (their delivery jobs) commit with them.
func (s *Store) AppendEventsTx(ctx context.Context, tx *sql.Tx, evs []LoggedEvent) error {
	const op = "append events"
	now := s.now()
	for start := 0; start < len(evs); start += appendEventsChunk {
		chunk := evs[start:min(start+appendEventsChunk, len(evs))]
		values := make([]string, len(chunk))
		args := make([]any, 0, 6*len(chunk))
		for i, e := range chunk {
			if e.Topic == "" {
				return fmt.Errorf("store: %s: empty topic", op)
			}
			data := string(e.Data)
			if data == "" {
				data = "null"
			} else if !json.Valid(e.Data) {
				return fmt.Errorf("store: %s: topic %q: data is not valid JSON", op, e.Topic)
			}
			t := e.Time
			if t.IsZero() {
				t = now
			}
			// The event as the log holds it, as EventsAfter reads it.
			chunk[i].Time, chunk[i].Data = fromMillis(millis(t)), json.RawMessage(data)
			if s.dialect == DialectPostgres {
				values[i] = "(" + params(len(args)+1, 5) + ")"
			} else {
				// Anonymous parameters: SQLite looks a numbered one up
				// by name in a list, which costs a long statement time
				// quadratic in its parameters.
				values[i] = "(?, ?, ?, ?, ?)"
			}
			args = append(args, millis(t), e.Topic, e.Endpoint, nullID(e.SiteID), data)
		}
		rows, err := tx.QueryContext(ctx, "INSERT INTO event_log (time, topic, endpoint, site_id, data) VALUES "+
			strings.Join(values, ", ")+" RETURNING id", args...)
		if err != nil {
			return wrap(op, err)
		}
		ids := make([]int64, 0, len(chunk))
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return wrap(op, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(op, err)
		}
		if len(ids) != len(chunk) {
			return fmt.Errorf("store: %s: %d ids for %d events", op, len(ids), len(chunk))
		}
		// Both engines number the rows of one statement in the order of
		// its VALUES; the order RETURNING lists them in is unspecified.
		slices.Sort(ids)
		for i := range chunk {
			chunk[i].ID = ids[i]
		}
	}
	return nil
}

// EventFilter selects events of the log for EventsAfter.
type EventFilter struct {
	After int64      // events with an ID greater than this
	Limit int        // at most this many; <= 0: 100
	Scope auth.Scope // only the events of devices in it (the zero Scope: none)
	// Topics, when not empty, keeps the events of these topics.
	Topics []string
	// Endpoint, when not empty, keeps the events of this endpoint.
	Endpoint string
	// Through, when > 0, keeps the events with an ID up to this.
	Through int64
}

// EventsAfter returns the logged events matching f, oldest first. An
// event of no endpoint (Endpoint "") is in the scope of the unassigned
// devices.
func (s *Store) EventsAfter(ctx context.Context, f EventFilter) ([]LoggedEvent, error) {
	var args []any
	arg := argList(&args)
	conds := []string{"e.id > " + arg(f.After), scopeCond(f.Scope, "e.site_id", arg)}
	if len(f.Topics) > 0 {
		ph := make([]string, len(f.Topics))
		for i, t := range f.Topics {
			ph[i] = arg(t)
		}
		conds = append(conds, "e.topic IN ("+strings.Join(ph, ", ")+")")
	}
	if f.Endpoint != "" {
		conds = append(conds, "e.endpoint = "+arg(f.Endpoint))
	}
	if f.Through > 0 {
		conds = append(conds, "e.id <= "+arg(f.Through))
	}
	q := "SELECT " + prefixCols("e.", eventLogCols) + " FROM event_log e" + whereAll(conds...) +
		" ORDER BY e.id LIMIT " + arg(limitOr(f.Limit, 100))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("events after", err)
	}
	out, err := collect(rows, scanLoggedEvent)
	return out, wrap("events after", err)
}

// GetLoggedEvent returns one logged event; ErrNotFound when it is not (or no
// longer) in the log.
func (s *Store) GetLoggedEvent(ctx context.Context, id int64) (LoggedEvent, error) {
	e, err := scanLoggedEvent(s.rdb.QueryRowContext(ctx, "SELECT "+eventLogCols+" FROM event_log WHERE id = $1", id))
	return e, wrap(fmt.Sprintf("get logged event %d", id), err)
}

// pruneChunk bounds the rows one prune statement deletes, so that the
// writer is never held long (SQLite has one). A variable for tests.
var pruneChunk = 10000

// PruneEvents deletes the logged events older than before, pruneChunk at
// a time, and returns how many.
func (s *Store) PruneEvents(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.wdb.ExecContext(ctx, `DELETE FROM event_log WHERE id IN (
			SELECT id FROM event_log WHERE time < $1 ORDER BY id LIMIT $2)`, millis(before), pruneChunk)
		if err != nil {
			return total, wrap("prune events", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, wrap("prune events", err)
		}
		total += n
		if n < int64(pruneChunk) {
			return total, nil
		}
	}
}

// LastEventID returns the ID of the newest logged event, 0 when the log
// is empty.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT MAX(id) FROM event_log").Scan(&id)
	return id.Int64, wrap("last event id", err)
}

// EventLogBounds returns the IDs of the oldest and the newest logged
// event, both 0 when the log is empty.
func (s *Store) EventLogBounds(ctx context.Context) (oldest, newest int64, err error) {
	var lo, hi sql.NullInt64
	err = s.rdb.QueryRowContext(ctx, "SELECT MIN(id), MAX(id) FROM event_log").Scan(&lo, &hi)
	return lo.Int64, hi.Int64, wrap("event log bounds", err)
}
