package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// Observation is one observation the server holds on a device, stored so
// that it outlives a restart of the server: the CoAP token the server
// chose, the registration it was made on and what it observes.
type Observation struct {
	Token          []byte // 1 to 8 bytes, unique across all observations
	EndpointID     int64
	RegistrationID string
	// Paths is the observed path, or the paths of a composite observation;
	// at least one.
	Paths     []lwm2m.Path
	Composite bool
	Format    lwm2m.MediaType // the content format requested (Accept)
	CreatedAt time.Time       // zero: now when inserted
	// Origin says why the server holds the observation: "auto-observe",
	// "api", "queue", or "" when not recorded. The store keeps it as
	// given.
	Origin string
	// OriginUserID is the operator who asked, OriginOperationID the queued
	// operation that made it; 0 when none.
	OriginUserID      int64
	OriginOperationID int64
	// Attributes are the notification attributes written to the observed
	// paths before the Observe, as a Write-Attributes query
	// ("pmin=60&pmax=900"); "" when none.
	Attributes string
}

const observationCols = "token, endpoint_id, registration_id, paths, composite, format, created_at, " +
	"origin, origin_user_id, origin_operation_id, attributes"

func scanObservation(r rowScanner) (Observation, error) {
	var o Observation
	var paths string
	var format, created int64
	var user, operation sql.NullInt64
	if err := r.Scan(&o.Token, &o.EndpointID, &o.RegistrationID, &paths, &o.Composite, &format, &created,
		&o.Origin, &user, &operation, &o.Attributes); err != nil {
		return Observation{}, err
	}
	o.OriginUserID, o.OriginOperationID = user.Int64, operation.Int64
	for s := range strings.SplitSeq(paths, " ") {
		p, err := lwm2m.ParsePath(s)
		if err != nil {
			return Observation{}, fmt.Errorf("observation %x: stored paths %q: %w", o.Token, paths, err)
		}
		o.Paths = append(o.Paths, p)
	}
	o.Format, o.CreatedAt = lwm2m.MediaType(format), fromMillis(created)
	return o, nil
}

// InsertObservation stores o. A token already stored, or an endpoint that
// does not exist, is ErrConflict.
func (s *Store) InsertObservation(ctx context.Context, o Observation) error {
	op := fmt.Sprintf("insert observation %x", o.Token)
	args, err := observationArgs(o, s.now())
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	_, err = s.wdb.ExecContext(ctx, "INSERT INTO observation ("+observationCols+
		") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", args...)
	return wrap(op, err)
}

// GetObservation returns the observation with the given token.
func (s *Store) GetObservation(ctx context.Context, token []byte) (Observation, error) {
	o, err := scanObservation(s.rdb.QueryRowContext(ctx,
		"SELECT "+observationCols+" FROM observation WHERE token = $1", token))
	return o, wrap(fmt.Sprintf("get observation %x", token), err)
}

// ListObservations returns the observations made on the registration with
// the given ID, oldest first (then by token).
func (s *Store) ListObservations(ctx context.Context, registrationID string) ([]Observation, error) {
	op := fmt.Sprintf("list observations of registration %q", registrationID)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+observationCols+
		" FROM observation WHERE registration_id = $1 ORDER BY created_at, token", registrationID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanObservation)
	return out, wrap(op, err)
}

// DeleteObservation removes the observation with the given token.
func (s *Store) DeleteObservation(ctx context.Context, token []byte) error {
	return wrap(fmt.Sprintf("delete observation %x", token), requireRow(s.wdb.ExecContext(ctx,
		"DELETE FROM observation WHERE token = $1", token)))
}

// DeleteObservations removes every observation made on the registration
// with the given ID and returns how many there were. It reads first and
// writes only when there is a row to delete, so that ending a registration
// without observations costs no write transaction.
func (s *Store) DeleteObservations(ctx context.Context, registrationID string) (int, error) {
	return s.deleteObservations(ctx, fmt.Sprintf("delete observations of registration %q", registrationID),
		"registration_id = $1", registrationID)
}

// DeleteStaleObservations removes the observations of the endpoint with
// the given ID that were not made on its live registration (all of them
// while it is offline) and returns how many there were. Like
// DeleteObservations it writes only when there is a row to delete; a row
// that becomes stale meanwhile is left to the next call.
func (s *Store) DeleteStaleObservations(ctx context.Context, endpointID int64) (int, error) {
	return s.deleteObservations(ctx, fmt.Sprintf("delete stale observations of endpoint %d", endpointID), `
		endpoint_id = $1 AND NOT EXISTS (
			SELECT 1 FROM endpoint
			WHERE endpoint.id = observation.endpoint_id AND endpoint.online
				AND endpoint.registration_id = observation.registration_id)`, endpointID)
}

// deleteObservations deletes the observations matching cond, after a read
// on the read pool has found one.
func (s *Store) deleteObservations(ctx context.Context, op, cond string, arg any) (int, error) {
	var found bool
	if err := s.rdb.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM observation WHERE "+cond+")", arg).Scan(&found); err != nil {
		return 0, wrap(op, err)
	}
	if !found {
		return 0, nil
	}
	res, err := s.wdb.ExecContext(ctx, "DELETE FROM observation WHERE "+cond, arg)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), wrap(op, err)
}
