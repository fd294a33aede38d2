package store

import (
	"context"
	"database/sql"
	"fmt"
)

// IngestItem is one unit of IngestBatch: with Event.Kind set, an event and
// the values it carried (as IngestEvent stores them); with an empty
// Event.Kind, loose values (as InsertResources stores them).
type IngestItem struct {
	Event  Event
	Values []ResourceValue
}

// IngestBatch stores many items in one transaction: all of them or none.
// It is the batch form of IngestEvent and InsertResources for the ingest
// writer, which collects the reports of many devices: events get their ids
// in item order, each value its event's id (and its endpoint when the
// value's EndpointID is 0), and the latest values are updated as
// InsertResources does, across the whole batch.
func (s *Store) IngestBatch(ctx context.Context, items []IngestItem) error {
	const op = "ingest batch"
	now := s.now()
	n := 0
	for _, it := range items {
		n += len(it.Values)
	}
	vals := make([]ResourceValue, 0, n)
	type span struct{ from, to int }
	spans := make([]span, len(items))
	for i := range items {
		ev := &items[i].Event
		if ev.Kind != "" {
			if ev.ReceivedAt.IsZero() {
				ev.ReceivedAt = now
			}
			if ev.Time.IsZero() {
				ev.Time = ev.ReceivedAt
			}
		}
		spans[i].from = len(vals)
		for j, v := range items[i].Values {
			if ev.Kind != "" {
				switch v.EndpointID {
				case 0:
					v.EndpointID = ev.EndpointID
				case ev.EndpointID:
				default:
					return fmt.Errorf("store: %s: item %d value %d (%s) belongs to endpoint %d, its event to %d",
						op, i, j, v.Path, v.EndpointID, ev.EndpointID)
				}
				if v.ReceivedAt.IsZero() {
					v.ReceivedAt = ev.ReceivedAt
				}
			}
			vals = append(vals, v)
		}
		spans[i].to = len(vals)
	}
	rows, err := s.encodeResourceRows(vals)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := s.prepareInserts(ctx); err != nil {
		return wrap(op, err)
	}
	return wrap(op, s.inTx(ctx, func(tx *sql.Tx) error {
		for i, it := range items {
			if it.Event.Kind == "" {
				continue
			}
			ev := it.Event
			var id int64
			if err := tx.QueryRowContext(ctx,
				"INSERT INTO event (endpoint_id, kind, time, received_at) VALUES ($1, $2, $3, $4) RETURNING id",
				ev.EndpointID, ev.Kind, millis(ev.Time), millis(ev.ReceivedAt)).Scan(&id); err != nil {
				return err
			}
			for k := spans[i].from; k < spans[i].to; k++ {
				rows[k].args[resourceNCols-1] = id // event_id
			}
		}
		return s.insertResourceRows(ctx, tx, rows)
	}))
}
