package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Event is a group of values an endpoint reported together (a composite
// notification, a Send, a registration event), with its own timestamp.
type Event struct {
	ID         int64
	EndpointID int64
	Kind       string    // e.g. "notify", "send", "register"
	Time       time.Time // the event's time; zero on insert means ReceivedAt
	ReceivedAt time.Time // zero on insert means now
}

const eventCols = "id, endpoint_id, kind, time, received_at"

func scanEvent(r rowScanner) (Event, error) {
	var e Event
	var t, recv int64
	if err := r.Scan(&e.ID, &e.EndpointID, &e.Kind, &t, &recv); err != nil {
		return Event{}, err
	}
	e.Time, e.ReceivedAt = fromMillis(t), fromMillis(recv)
	return e, nil
}

// IngestEvent stores an event and the values it carried in one
// transaction and returns the event's id. Each value gets the event's id,
// and the event's endpoint when its EndpointID is 0; a value of another
// endpoint is an error. Values are stored as by InsertResources.
func (s *Store) IngestEvent(ctx context.Context, ev Event, vals []ResourceValue) (int64, error) {
	op := fmt.Sprintf("ingest %s event of endpoint %d", ev.Kind, ev.EndpointID)
	if ev.Kind == "" {
		return 0, fmt.Errorf("store: %s: empty kind", op)
	}
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = s.now()
	}
	if ev.Time.IsZero() {
		ev.Time = ev.ReceivedAt
	}
	vals = append([]ResourceValue(nil), vals...)
	for i := range vals {
		switch vals[i].EndpointID {
		case 0:
			vals[i].EndpointID = ev.EndpointID
		case ev.EndpointID:
		default:
			return 0, fmt.Errorf("store: %s: value %d (%s) belongs to endpoint %d", op, i, vals[i].Path, vals[i].EndpointID)
		}
		if vals[i].ReceivedAt.IsZero() {
			vals[i].ReceivedAt = ev.ReceivedAt
		}
	}
	rows, err := s.encodeResourceRows(vals)
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", op, err)
	}
	var id int64
	defer s.prepareMissing(ctx)
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx,
			"INSERT INTO event (endpoint_id, kind, time, received_at) VALUES ($1, $2, $3, $4) RETURNING id",
			ev.EndpointID, ev.Kind, millis(ev.Time), millis(ev.ReceivedAt)).Scan(&id); err != nil {
			return err
		}
		for i := range rows {
			rows[i].args[resourceNCols-1] = id // event_id
		}
		return s.insertResourceRows(ctx, tx, rows)
	})
	if err != nil {
		return 0, wrap(op, err)
	}
	return id, nil
}

// GetEvent returns the event with the given id.
func (s *Store) GetEvent(ctx context.Context, id int64) (Event, error) {
	e, err := scanEvent(s.rdb.QueryRowContext(ctx, "SELECT "+eventCols+" FROM event WHERE id = $1", id))
	return e, wrap(fmt.Sprintf("get event %d", id), err)
}

// ListEvents returns the endpoint's most recent events, newest first, at
// most limit (<= 0: 100).
func (s *Store) ListEvents(ctx context.Context, endpointID int64, limit int) ([]Event, error) {
	op := fmt.Sprintf("list events of endpoint %d", endpointID)
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT "+eventCols+" FROM event WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
		endpointID, limitOr(limit, 100))
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanEvent)
	return out, wrap(op, err)
}

// EventResources returns the values an event carried, ordered by path
// (values of the same path in the order they were stored).
func (s *Store) EventResources(ctx context.Context, eventID int64) ([]ResourceValue, error) {
	op := fmt.Sprintf("values of event %d", eventID)
	var endpointID int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT endpoint_id FROM event WHERE id = $1", eventID).Scan(&endpointID); err != nil {
		return nil, wrap(op, err)
	}
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT "+valueCols+" FROM resource WHERE event_id = $1 ORDER BY id", eventID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanResourceValue(endpointID))
	if err != nil {
		return nil, wrap(op, err)
	}
	sortValues(out)
	return out, nil
}
