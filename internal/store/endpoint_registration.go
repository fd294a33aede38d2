package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// ErrRegistrationGone is matched by the error of a change to a
// registration that is no longer the endpoint's live one: it ended
// (De-register, expiry) or a newer Register replaced it, through this
// Store or any other on the same database (another server node). See
// RegistrationUpdate.RegistrationID, RegistrationEnd and
// SetEndpointAddress.
var ErrRegistrationGone = errors.New("registration is not the endpoint's live one")

// ExpireRegistrations ends every registration whose lifetime has passed
// since its last Register or Update (online endpoints with last_seen +
// lifetime < now), in one transaction: the endpoint goes offline, the
// registration's observations are deleted and the values history returns
// for the endpoint (nil: none) are stored. It returns the endpoints as
// they were before: online, with the registration that expired.
//
// Each registration is ended by exactly one call, however many run at
// once through however many Stores (server nodes): the decision is made
// on the stored row, under its lock (the one writer on SQLite, row locks
// on PostgreSQL, where a row locked by another transaction is left to it:
// a concurrent expiry ends it, a concurrent Update renews it).
func (s *Store) ExpireRegistrations(ctx context.Context, now time.Time, history func(Endpoint) []ResourceValue) ([]Endpoint, error) {
	const due = "online AND (last_seen + lifetime * 1000) < $1"
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " ORDER BY id FOR UPDATE SKIP LOCKED"
	}
	var out []Endpoint
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT "+endpointCols+" FROM endpoint WHERE "+due+lock, millis(now))
		if err != nil {
			return err
		}
		if out, err = collect(rows, scanEndpoint); err != nil || len(out) == 0 {
			return err
		}
		ids := make([]any, len(out))
		regs := make([]any, len(out))
		var vals []ResourceValue
		for i, e := range out {
			ids[i], regs[i] = e.ID, e.RegistrationID
			if history != nil {
				vals = append(vals, history(e)...)
			}
		}
		for chunk := range chunks(s, ids) {
			cond, args, err := s.in("id", 1, "bigint", chunk)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "UPDATE endpoint SET online = FALSE, registration_id = NULL, updated_at = "+
				s.param(1)+" WHERE "+cond, append([]any{millis(s.now())}, args...)...); err != nil {
				return err
			}
		}
		if err := deleteObservationsOf(ctx, s, tx, regs); err != nil {
			return err
		}
		rs, err := s.encodeResourceRows(vals)
		if err != nil {
			return err
		}
		return s.insertResourceRows(ctx, tx, rs)
	})
	if err != nil {
		return nil, wrap("expire registrations", err)
	}
	return out, nil
}

// deleteObservationsOf deletes the observations made on the registrations
// with the IDs in regs.
func deleteObservationsOf(ctx context.Context, s *Store, tx *sql.Tx, regs []any) error {
	for chunk := range chunks(s, regs) {
		cond, args, err := s.in("registration_id", 0, "text", chunk)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM observation WHERE "+cond, args...); err != nil {
			return err
		}
	}
	return nil
}

// Heard is a time a device was heard from.
type Heard struct {
	EndpointID int64
	At         time.Time
}

// heardChunk is the most endpoints one SetHeard statement takes on SQLite
// (two parameters each).
const heardChunk = 500

// SetHeard records when devices were last heard from otherwise than by a
// Register or Update: the HeardAt of each endpoint (RegistrationRecord)
// becomes the latest At given for it, unless it holds a later time
// already. Endpoints that do not exist are skipped. It takes one statement
// for up to 500 endpoints (any number on PostgreSQL), all in one
// transaction: the bounded, batched write of a server node that heard
// from many devices.
func (s *Store) SetHeard(ctx context.Context, hs []Heard) error {
	if len(hs) == 0 {
		return nil
	}
	latest := make(map[int64]int64, len(hs))
	for _, h := range hs {
		if ms := millis(h.At); ms > latest[h.EndpointID] {
			latest[h.EndpointID] = ms
		}
	}
	ids := slices.Sorted(maps.Keys(latest)) // rows locked in one order
	const upsert = ` WHERE v.id IN (SELECT id FROM endpoint)
		ON CONFLICT (endpoint_id) DO UPDATE SET heard_at = excluded.heard_at
		WHERE endpoint_heard.heard_at < excluded.heard_at`
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if s.dialect == DialectPostgres {
			at := make([]int64, len(ids))
			for i, id := range ids {
				at[i] = latest[id]
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO endpoint_heard (endpoint_id, heard_at) SELECT v.id, v.at"+
				" FROM unnest($1::bigint[], $2::bigint[]) AS v(id, at)"+upsert, ids, at)
			return err
		}
		for chunk := range slices.Chunk(ids, heardChunk) {
			args := make([]any, 0, 2*len(chunk))
			for _, id := range chunk {
				args = append(args, id, latest[id])
			}
			q := "INSERT INTO endpoint_heard (endpoint_id, heard_at) SELECT v.id, v.at FROM" +
				" (SELECT column1 AS id, column2 AS at FROM (VALUES " + strings.Repeat("(?, ?), ", len(chunk)-1) + "(?, ?))) AS v" +
				upsert
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(fmt.Sprintf("set heard of %d endpoints", len(ids)), err)
}

// RegistrationRecord is an endpoint with when its device was last heard
// from: what a server node keeps a copy of while it talks to the device.
type RegistrationRecord struct {
	Endpoint
	// HeardAt is when a server node last heard from the device otherwise
	// than by a Register or Update (SetHeard); zero if never.
	HeardAt time.Time
}

// LastHeard returns when the device last talked: the later of LastSeen
// and HeardAt.
func (r RegistrationRecord) LastHeard() time.Time {
	if r.HeardAt.After(r.LastSeen) {
		return r.HeardAt
	}
	return r.LastSeen
}

// recordSQL selects RegistrationRecords; scanRecord scans them.
const recordSQL = "SELECT " + endpointCols + ", endpoint_heard.heard_at FROM endpoint" +
	" LEFT JOIN endpoint_heard ON endpoint_heard.endpoint_id = endpoint.id WHERE "

func scanRecord(row rowScanner) (RegistrationRecord, error) {
	var heard sql.NullInt64
	e, err := scanEndpoint(withHeard{row, &heard})
	return RegistrationRecord{Endpoint: e, HeardAt: fromNullMillis(heard)}, err
}

// withHeard scans an endpoint row (scanEndpoint) followed by heard_at.
type withHeard struct {
	row   rowScanner
	heard *sql.NullInt64
}

func (w withHeard) Scan(dest ...any) error { return w.row.Scan(append(dest, w.heard)...) }

// GetRegistrationRecord returns the record of the endpoint with the given
// name.
func (s *Store) GetRegistrationRecord(ctx context.Context, name string) (RegistrationRecord, error) {
	r, err := scanRecord(s.rdb.QueryRowContext(ctx, recordSQL+"name = $1", name))
	return r, wrap(fmt.Sprintf("get registration record of %q", name), err)
}

// GetRegistrationRecordByID returns the record of the endpoint whose live
// registration has the given id; ErrNotFound when none has (or it went
// offline).
func (s *Store) GetRegistrationRecordByID(ctx context.Context, regID string) (RegistrationRecord, error) {
	r, err := scanRecord(s.rdb.QueryRowContext(ctx, recordSQL+"registration_id = $1", regID))
	return r, wrap(fmt.Sprintf("get registration record %q", regID), err)
}

// SetEndpointAddress records that the device of the live registration
// registrationID of the endpoint with the given id talks from addr over
// t, without an Update (a DTLS session kept across a NAT rebinding by its
// Connection ID); the lifetime still runs from the last Register or
// Update. An error matching ErrRegistrationGone says that the
// registration is no longer the endpoint's live one (or the endpoint is
// gone); then nothing changes.
func (s *Store) SetEndpointAddress(ctx context.Context, id int64, registrationID, addr string, t Transport) error {
	op := fmt.Sprintf("set address of endpoint %d registration %q", id, registrationID)
	if t != TransportUDP && t != TransportDTLS {
		return fmt.Errorf("store: %s: invalid transport %q", op, string(t))
	}
	err := requireRow(s.wdb.ExecContext(ctx, `
		UPDATE endpoint SET address = $3, transport = $4, updated_at = $5
		WHERE id = $1 AND online AND registration_id = $2`,
		id, registrationID, addr, t, millis(s.now())))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrRegistrationGone
	}
	return wrap(op, err)
}
