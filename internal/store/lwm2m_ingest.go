package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// IngestItem is one unit of IngestBatch: with Event.Kind set, an event and
// the values it carried (as IngestEvent stores them); with an empty
// Event.Kind, loose values (as InsertResources stores them). With Register
// set, the item first records that Register (as UpsertEndpointRegistration
// does) and its event and values belong to the registered endpoint.
type IngestItem struct {
	Register *EndpointRegistration
	// Registered, when not nil, receives the endpoint stored for Register
	// once IngestBatch has committed.
	Registered *Endpoint
	Event      Event
	Values     []ResourceValue
}

// IngestBatch stores many items in one transaction: all of them or none.
// It is the batch form of UpsertEndpointRegistration, IngestEvent and
// InsertResources for the ingest writer, which collects the registrations
// and reports of many devices: registrations are recorded first, in item
// order; events get their ids in item order, each value its event's id (and
// its item's endpoint when the value's EndpointID is 0); the latest values
// are updated as InsertResources does, across the whole batch. A value with
// no endpoint, or of another endpoint than its event's, is an error.
func (s *Store) IngestBatch(ctx context.Context, items []IngestItem) error {
	const op = "ingest batch"
	now := s.now()
	n := 0
	regArgs := make([][]any, len(items))
	for i, it := range items {
		n += len(it.Values)
		if it.Register != nil {
			args, err := registerArgs(*it.Register, func() time.Time { return now })
			if err != nil {
				return fmt.Errorf("store: %s: register endpoint %q: %w", op, it.Register.Name, err)
			}
			regArgs[i] = args
		}
	}
	if err := s.prepareInserts(ctx); err != nil {
		return wrap(op, err)
	}
	registered := make([]Endpoint, len(items))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var reg *sql.Stmt
		for i, it := range items {
			if it.Register == nil {
				continue
			}
			if reg == nil {
				var err error
				if reg, err = tx.PrepareContext(ctx, registerSQL); err != nil {
					return err
				}
				defer reg.Close()
			}
			e, err := scanEndpoint(reg.QueryRowContext(ctx, regArgs[i]...))
			if err != nil {
				return fmt.Errorf("register endpoint %q: %w", it.Register.Name, err)
			}
			registered[i] = e
		}

		vals := make([]ResourceValue, 0, n)
		type span struct{ from, to int }
		spans := make([]span, len(items))
		events := make([]Event, len(items))
		for i := range items {
			ev := items[i].Event
			epID := ev.EndpointID
			if items[i].Register != nil {
				epID = registered[i].ID
			}
			if ev.Kind != "" {
				if ev.EndpointID == 0 {
					ev.EndpointID = epID
				}
				if ev.ReceivedAt.IsZero() {
					ev.ReceivedAt = now
				}
				if ev.Time.IsZero() {
					ev.Time = ev.ReceivedAt
				}
			}
			events[i] = ev
			spans[i].from = len(vals)
			for j, v := range items[i].Values {
				switch {
				case v.EndpointID == 0:
					v.EndpointID = epID
				case ev.Kind != "" && v.EndpointID != ev.EndpointID:
					return fmt.Errorf("item %d value %d (%s) belongs to endpoint %d, its event to %d",
						i, j, v.Path, v.EndpointID, ev.EndpointID)
				}
				if ev.Kind != "" && v.ReceivedAt.IsZero() {
					v.ReceivedAt = ev.ReceivedAt
				}
				vals = append(vals, v)
			}
			spans[i].to = len(vals)
		}
		rows, err := s.encodeResourceRows(vals)
		if err != nil {
			return err
		}
		for i, ev := range events {
			if ev.Kind == "" {
				continue
			}
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
	})
	if err != nil {
		return wrap(op, err)
	}
	for i, it := range items {
		if it.Registered != nil && it.Register != nil {
			*it.Registered = registered[i]
		}
	}
	return nil
}
