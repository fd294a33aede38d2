package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrCredentialRequired is matched by the error of a write refused because
// it came over plain CoAP for an endpoint that has credentials (see
// IngestItem.NoCredential).
var ErrCredentialRequired = errors.New("endpoint has credentials: plain CoAP refused")

// IngestItem is one unit of IngestBatch: what one request of one device
// stores. Its parts are applied in this order, each as the method named
// applies it on its own:
//
//   - Register records a Register (UpsertEndpointRegistration) and deletes
//     the endpoint's observations not made on the new registration
//     (DeleteStaleObservations); the item's event and values with
//     EndpointID 0 belong to the registered endpoint.
//   - Update records a registration Update (UpdateEndpointRegistration);
//     with RegistrationUpdate.RegistrationID, only while that is the
//     endpoint's live registration.
//   - End ends a registration while it is the endpoint's live one
//     (SetEndpointOffline) and deletes its observations
//     (DeleteObservations).
//   - Observe stores an observation (InsertObservation); Unobserve deletes
//     the observation with that token (DeleteObservation, without failing
//     when there is none).
//   - Event and Values: with Event.Kind set, an event and the values it
//     carried (IngestEvent); with an empty Event.Kind, loose values
//     (InsertResources).
//
// With NoCredential set, the item is a request that came over plain CoAP
// for the endpoint of that name: it is stored only when no credential is
// bound to the name, checked in the batch's transaction. Otherwise nothing
// of it is stored and IngestBatch sets Refused.
//
// An Update with a RegistrationID, or an End, whose registration is not
// the endpoint's live one (it ended, or a newer Register replaced it,
// through any Store on the database) stores nothing of its item either:
// IngestBatch sets Gone. A stale copy of a registration (a server node's
// cache) therefore never overwrites or ends a newer one.
type IngestItem struct {
	NoCredential string
	Register     *EndpointRegistration
	// Registered, when not nil, receives the endpoint stored for Register
	// once IngestBatch has committed.
	Registered *Endpoint
	Update     *RegistrationUpdate
	// Updated, when not nil, receives the endpoint as Update left it once
	// IngestBatch has committed (unless the item is Refused or Gone).
	Updated   *Endpoint
	End       *RegistrationEnd
	Observe   *Observation
	Unobserve []byte
	Event     Event
	Values    []ResourceValue
	// Refused is set by IngestBatch when NoCredential refused the item.
	Refused bool
	// Gone is set by IngestBatch when the item's Update or End named a
	// registration that is not the endpoint's live one.
	Gone bool
}

// RegistrationUpdate is a registration Update of the endpoint with the
// given id, as UpdateEndpointRegistration takes it. With RegistrationID
// set, it applies only while that is the endpoint's live registration
// (else the item is Gone); without, to the endpoint whatever its state.
type RegistrationUpdate struct {
	EndpointID     int64
	RegistrationID string
	EndpointUpdate
}

// RegistrationEnd is the end of the registration RegistrationID of the
// endpoint with the given id (De-register): the endpoint goes offline if
// that is its live registration (else the item is Gone).
type RegistrationEnd struct {
	EndpointID     int64
	RegistrationID string
}

// IngestBatch stores many items in one transaction: all of them (but the
// refused ones) or none. It is the batch form of the methods IngestItem
// names, for the ingest writer, which collects the registrations and
// reports of many devices: each part is applied to all items at once, in
// the order IngestItem lists, with multi-row statements, so that a batch
// costs a few statements whatever its size. Registrations are recorded in
// item order; events get their ids in item order, each value its event's
// id (and its item's endpoint when the value's EndpointID is 0); the latest
// values are updated as InsertResources does, across the whole batch. A
// value with no endpoint, or of another endpoint than its event's, is an
// error, and so is an Update of an endpoint that does not exist
// (ErrNotFound) or an observation token already stored (ErrConflict).
func (s *Store) IngestBatch(ctx context.Context, items []IngestItem) error {
	const op = "ingest batch"
	now := s.now()
	b := ingestBatch{s: s, items: items, now: now}
	if err := b.prepare(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	defer s.prepareMissing(ctx)
	if err := s.inTx(ctx, b.run(ctx)); err != nil {
		for i := range items {
			items[i].Refused, items[i].Gone = false, false
		}
		return wrap(op, err)
	}
	for i, it := range items {
		if it.Registered != nil && it.Register != nil && !it.Refused {
			*it.Registered = b.registered[i]
		}
		if it.Updated != nil && it.Update != nil && !it.Refused && !it.Gone {
			*it.Updated = b.updated[i]
		}
	}
	return nil
}

// ingestBatch is one IngestBatch call.
type ingestBatch struct {
	s     *Store
	items []IngestItem
	now   time.Time

	regArgs    [][]any // per item: the endpoint upsert row, nil without Register
	updArgs    [][]any // per item: the update's arguments, nil without Update
	obsArgs    [][]any // per item: the observation row, nil without Observe
	registered []Endpoint
	updated    []Endpoint
}

// prepare checks and encodes what can be checked before the transaction.
func (b *ingestBatch) prepare() error {
	n := len(b.items)
	b.regArgs, b.updArgs, b.obsArgs = make([][]any, n), make([][]any, n), make([][]any, n)
	b.registered, b.updated = make([]Endpoint, n), make([]Endpoint, n)
	for i := range b.items {
		it := &b.items[i]
		it.Refused, it.Gone = false, false
		if it.Register != nil {
			args, err := registerArgs(*it.Register, func() time.Time { return b.now })
			if err != nil {
				return fmt.Errorf("register endpoint %q: %w", it.Register.Name, err)
			}
			b.regArgs[i] = args
		}
		if it.Update != nil {
			args, err := updateArgs(it.Update.EndpointID, it.Update.EndpointUpdate, b.now)
			if err != nil {
				return fmt.Errorf("update endpoint %d registration: %w", it.Update.EndpointID, err)
			}
			if it.Update.RegistrationID != "" {
				args = append(args, it.Update.RegistrationID)
			}
			b.updArgs[i] = args
		}
		if it.End != nil && (it.End.EndpointID <= 0 || it.End.RegistrationID == "") {
			return fmt.Errorf("end of registration %q of endpoint %d: no endpoint or registration", it.End.RegistrationID, it.End.EndpointID)
		}
		if it.Observe != nil {
			args, err := observationArgs(*it.Observe, b.now)
			if err != nil {
				return fmt.Errorf("insert observation %x: %w", it.Observe.Token, err)
			}
			b.obsArgs[i] = args
		}
		if it.Unobserve != nil && (len(it.Unobserve) == 0 || len(it.Unobserve) > 8) {
			return fmt.Errorf("delete observation %x: the token has %d bytes, want 1 to 8", it.Unobserve, len(it.Unobserve))
		}
	}
	return nil
}

func (b *ingestBatch) run(ctx context.Context) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		for _, step := range []func(context.Context, *sql.Tx) error{
			b.refuse, b.register, b.update, b.end, b.observe, b.values,
		} {
			if err := step(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	}
}

// refuse sets Refused on the items whose NoCredential names an endpoint
// with credentials.
func (b *ingestBatch) refuse(ctx context.Context, tx *sql.Tx) error {
	seen := map[string]bool{}
	var names []any
	for _, it := range b.items {
		if n := it.NoCredential; n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	has := map[string]bool{}
	for chunk := range chunks(b.s, names) {
		cond, args, err := b.s.in("endpoint_name", 0, "text", chunk)
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT endpoint_name FROM credential WHERE "+cond, args...)
		if err != nil {
			return err
		}
		got, err := collect(rows, func(r rowScanner) (n string, err error) { return n, r.Scan(&n) })
		if err != nil {
			return err
		}
		for _, n := range got {
			has[n] = true
		}
	}
	for i := range b.items {
		b.items[i].Refused = b.items[i].NoCredential != "" && has[b.items[i].NoCredential]
	}
	return nil
}

// live reports whether item i is to be stored.
func (b *ingestBatch) live(i int) bool { return !b.items[i].Refused && !b.items[i].Gone }

// register upserts the endpoints of the Register items, in item order,
// with multi-row statements in which each name appears once (a statement
// may not update a row twice), then deletes their stale observations.
func (b *ingestBatch) register(ctx context.Context, tx *sql.Tx) error {
	var round []int // items of the current round, names unique
	inRound := map[string]bool{}
	var ids []any
	flush := func() error {
		for chunk := range chunks(b.s, round) {
			args := make([]any, 0, len(chunk)*endpointNCols)
			for _, i := range chunk {
				args = append(args, b.regArgs[i]...)
			}
			rows, err := b.s.queryBulk(ctx, tx, bulkEndpoint, len(chunk), args)
			if err != nil {
				return err
			}
			eps, err := collect(rows, scanEndpoint)
			if err != nil {
				return err
			}
			byName := make(map[string]Endpoint, len(eps))
			for _, e := range eps {
				byName[e.Name] = e
			}
			for _, i := range chunk {
				e, ok := byName[b.items[i].Register.Name]
				if !ok {
					return fmt.Errorf("register endpoint %q: no row returned", b.items[i].Register.Name)
				}
				b.registered[i] = e
				ids = append(ids, e.ID)
			}
		}
		round = round[:0]
		clear(inRound)
		return nil
	}
	for i, it := range b.items {
		if it.Register == nil || !b.live(i) {
			continue
		}
		if inRound[it.Register.Name] {
			if err := flush(); err != nil {
				return err
			}
		}
		inRound[it.Register.Name] = true
		round = append(round, i)
	}
	if err := flush(); err != nil {
		return err
	}
	for chunk := range chunks(b.s, ids) {
		cond, args, err := b.s.in("endpoint_id", 0, "bigint", chunk)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM observation WHERE "+cond+
			" AND NOT EXISTS (SELECT 1 FROM endpoint WHERE endpoint.id = observation.endpoint_id AND endpoint.online"+
			" AND endpoint.registration_id = observation.registration_id)", args...); err != nil {
			return err
		}
	}
	return nil
}

// update applies the Update items, one statement each; one whose
// registration is not live (RegistrationUpdate.RegistrationID) becomes
// Gone.
func (b *ingestBatch) update(ctx context.Context, tx *sql.Tx) error {
	for i, it := range b.items {
		if it.Update == nil || !b.live(i) {
			continue
		}
		q := updateSQL
		if it.Update.RegistrationID != "" {
			q += updateLiveCond
		}
		e, err := scanEndpoint(tx.QueryRowContext(ctx, q+" RETURNING "+endpointCols, b.updArgs[i]...))
		switch {
		case errors.Is(err, sql.ErrNoRows) && it.Update.RegistrationID != "":
			b.items[i].Gone = true
		case err != nil:
			return fmt.Errorf("update endpoint %d registration: %w", it.Update.EndpointID, err)
		default:
			b.updated[i] = e
		}
	}
	return nil
}

// end takes the endpoints of the End items offline, those whose
// registration is live (the others become Gone), and deletes the
// observations of the registrations it ended.
func (b *ingestBatch) end(ctx context.Context, tx *sql.Tx) error {
	var items []int
	for i, it := range b.items {
		if it.End != nil && b.live(i) {
			items = append(items, i)
		}
	}
	var ended []any // registration IDs
	for chunk := range chunks(b.s, items) {
		rows, err := b.endChunk(ctx, tx, chunk)
		if err != nil {
			return err
		}
		got, err := collect(rows, func(r rowScanner) (id int64, err error) { return id, r.Scan(&id) })
		if err != nil {
			return err
		}
		offline := make(map[int64]bool, len(got))
		for _, id := range got {
			offline[id] = true
		}
		for _, i := range chunk {
			if end := b.items[i].End; offline[end.EndpointID] {
				ended = append(ended, end.RegistrationID)
			} else {
				b.items[i].Gone = true
			}
		}
	}
	return deleteObservationsOf(ctx, b.s, tx, ended)
}

// endChunk takes offline the endpoints of the End items chunk whose
// registration is live and returns their ids. On PostgreSQL the (id,
// registration) pairs are joined as two arrays: a registration_id = ANY
// filter would take its array apart again for every row.
func (b *ingestBatch) endChunk(ctx context.Context, tx *sql.Tx, chunk []int) (*sql.Rows, error) {
	now := millis(b.now)
	if b.s.dialect == DialectPostgres {
		ids, regs := make([]int64, len(chunk)), make([]string, len(chunk))
		for j, i := range chunk {
			ids[j], regs[j] = b.items[i].End.EndpointID, b.items[i].End.RegistrationID
		}
		return tx.QueryContext(ctx, `
			UPDATE endpoint SET online = FALSE, registration_id = NULL, updated_at = $1
			FROM unnest($2::bigint[], $3::text[]) AS v(id, reg)
			WHERE endpoint.id = v.id AND endpoint.registration_id = v.reg AND endpoint.online
			RETURNING endpoint.id`, now, ids, regs)
	}
	args := make([]any, 0, 1+2*len(chunk))
	args = append(args, now)
	for _, i := range chunk {
		args = append(args, b.items[i].End.EndpointID)
	}
	for _, i := range chunk {
		args = append(args, b.items[i].End.RegistrationID)
	}
	return tx.QueryContext(ctx, "UPDATE endpoint SET online = FALSE, registration_id = NULL, updated_at = ?"+
		" WHERE online AND "+inSQL("id", len(chunk))+" AND "+inSQL("registration_id", len(chunk))+" RETURNING id", args...)
}

// observe inserts the observations of the Observe items, then deletes
// those of the Unobserve items.
func (b *ingestBatch) observe(ctx context.Context, tx *sql.Tx) error {
	var ins []int
	var del []any
	for i, it := range b.items {
		if !b.live(i) {
			continue
		}
		if it.Observe != nil {
			ins = append(ins, i)
		}
		if it.Unobserve != nil {
			del = append(del, it.Unobserve)
		}
	}
	for chunk := range chunks(b.s, ins) {
		args := make([]any, 0, len(chunk)*observationNCols)
		for _, i := range chunk {
			args = append(args, b.obsArgs[i]...)
		}
		if _, err := b.s.execBulk(ctx, tx, bulkObservation, len(chunk), args); err != nil {
			return err
		}
	}
	for chunk := range chunks(b.s, del) {
		cond, args, err := b.s.in("token", 0, "bytea", chunk)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM observation WHERE "+cond, args...); err != nil {
			return err
		}
	}
	return nil
}

// values inserts the events (multi-row, with ids allocated beforehand)
// and the values of the items.
func (b *ingestBatch) values(ctx context.Context, tx *sql.Tx) error {
	n := 0
	for _, it := range b.items {
		n += len(it.Values)
	}
	vals := make([]ResourceValue, 0, n)
	type span struct{ from, to int }
	spans := make([]span, len(b.items))
	var events []int // items with an event
	evs := make([]Event, len(b.items))
	for i, it := range b.items {
		if !b.live(i) {
			continue
		}
		ev := it.Event
		epID := ev.EndpointID
		if it.Register != nil {
			epID = b.registered[i].ID
		}
		if ev.Kind != "" {
			if ev.EndpointID == 0 {
				ev.EndpointID = epID
			}
			if ev.ReceivedAt.IsZero() {
				ev.ReceivedAt = b.now
			}
			if ev.Time.IsZero() {
				ev.Time = ev.ReceivedAt
			}
			events = append(events, i)
		}
		evs[i] = ev
		spans[i].from = len(vals)
		for j, v := range it.Values {
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
	rows, err := b.s.encodeResourceRows(vals)
	if err != nil {
		return err
	}
	if len(events) > 0 {
		ids, err := b.s.eventIDs(ctx, tx, len(events))
		if err != nil {
			return err
		}
		for k, i := range events {
			for r := spans[i].from; r < spans[i].to; r++ {
				rows[r].args[resourceNCols-1] = ids[k] // event_id
			}
		}
		k := 0
		for chunk := range chunks(b.s, events) {
			args := make([]any, 0, len(chunk)*eventNCols)
			for _, i := range chunk {
				ev := evs[i]
				args = append(args, ids[k], ev.EndpointID, ev.Kind, millis(ev.Time), millis(ev.ReceivedAt))
				k++
			}
			if _, err := b.s.execBulk(ctx, tx, bulkEvent, len(chunk), args); err != nil {
				return err
			}
		}
	}
	return b.s.insertResourceRows(ctx, tx, rows)
}

// eventIDs allocates n new event ids. On PostgreSQL they come from the
// column's sequence (outside the transaction: a rollback leaves a gap);
// on SQLite they follow the greatest id, which is what SQLite itself would
// choose: the write transaction holds the database's write lock.
func (s *Store) eventIDs(ctx context.Context, tx *sql.Tx, n int) ([]int64, error) {
	if s.dialect == DialectPostgres {
		rows, err := tx.QueryContext(ctx, "SELECT nextval(pg_get_serial_sequence('event', 'id')) FROM generate_series(1, $1)", n)
		if err != nil {
			return nil, err
		}
		ids, err := collect(rows, func(r rowScanner) (id int64, err error) { return id, r.Scan(&id) })
		if err == nil && len(ids) != n {
			err = fmt.Errorf("allocated %d event ids, want %d", len(ids), n)
		}
		return ids, err
	}
	var last int64
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM event").Scan(&last); err != nil {
		return nil, err
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = last + 1 + int64(i)
	}
	return ids, nil
}

// observationArgs checks o and returns its observation row (the columns
// of observationCols).
func observationArgs(o Observation, now time.Time) ([]any, error) {
	switch {
	case len(o.Token) == 0 || len(o.Token) > 8:
		return nil, fmt.Errorf("the token has %d bytes, want 1 to 8", len(o.Token))
	case o.RegistrationID == "":
		return nil, errors.New("empty registration ID")
	case len(o.Paths) == 0:
		return nil, errors.New("no paths")
	}
	paths := make([]string, len(o.Paths))
	for i, p := range o.Paths {
		paths[i] = p.String()
	}
	created := o.CreatedAt
	if created.IsZero() {
		created = now
	}
	return []any{o.Token, o.EndpointID, o.RegistrationID, strings.Join(paths, " "), o.Composite, int64(o.Format), millis(created),
		o.Origin, nullID(o.OriginUserID), nullID(o.OriginOperationID), o.Attributes}, nil
}
