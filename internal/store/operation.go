package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// OperationStatus is the state of an endpoint operation.
type OperationStatus string

// The operation states. An operation starts QUEUED, is SENDING while a
// request is in flight, and ends CONFIRMED, FAILED (after MaxAttempts failed
// attempts) or CANCELLED (by an operator, only while QUEUED).
const (
	OperationQueued    OperationStatus = "QUEUED"
	OperationSending   OperationStatus = "SENDING"
	OperationConfirmed OperationStatus = "CONFIRMED"
	OperationFailed    OperationStatus = "FAILED"
	OperationCancelled OperationStatus = "CANCELLED"
)

// DefaultMaxAttempts is the MaxAttempts of an operation created without one.
const DefaultMaxAttempts = 3

// Operation is a pending or finished operation to a device.
type Operation struct {
	ID            int64
	EndpointID    int64
	Kind          string // e.g. "read", "write", "execute", "observe"
	Paths         []lwm2m.Path
	Payload       json.RawMessage // nil: none
	Status        OperationStatus
	Attempts      int
	MaxAttempts   int
	LastAttemptAt time.Time // zero: never attempted
	ResultCode    string    // e.g. "2.04"
	ResultError   string
	Response      json.RawMessage // nil: none
	QueuedBy      int64           // user id; 0: the system
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

const operationCols = "id, endpoint_id, kind, paths, payload, status, attempts, max_attempts, last_attempt_at, " +
	"result_code, result_error, response, queued_by, created_at, updated_at"

func scanOperation(r rowScanner) (Operation, error) {
	var o Operation
	var paths string
	var payload, response sql.NullString
	var last, queuedBy sql.NullInt64
	var created, updated int64
	err := r.Scan(&o.ID, &o.EndpointID, &o.Kind, &paths, &payload, &o.Status, &o.Attempts, &o.MaxAttempts,
		&last, &o.ResultCode, &o.ResultError, &response, &queuedBy, &created, &updated)
	if err != nil {
		return Operation{}, err
	}
	if err := json.Unmarshal([]byte(paths), &o.Paths); err != nil {
		return Operation{}, fmt.Errorf("operation %d: paths: %w", o.ID, err)
	}
	o.Payload, o.Response = fromJSONText(payload), fromJSONText(response)
	o.LastAttemptAt = fromNullMillis(last)
	o.QueuedBy = queuedBy.Int64
	o.CreatedAt, o.UpdatedAt = fromMillis(created), fromMillis(updated)
	return o, nil
}

// CreateOperation queues an operation: it stores o's EndpointID, Kind,
// Paths, Payload, MaxAttempts (0: DefaultMaxAttempts) and QueuedBy with
// status QUEUED, and returns the stored operation.
func (s *Store) CreateOperation(ctx context.Context, o Operation) (Operation, error) {
	return s.createOperation(ctx, s.wdb, o)
}

// createOperation inserts o with q: the write pool or a transaction.
func (s *Store) createOperation(ctx context.Context, q querier, o Operation) (Operation, error) {
	op := fmt.Sprintf("create %s operation for endpoint %d", o.Kind, o.EndpointID)
	if o.Kind == "" {
		return Operation{}, fmt.Errorf("store: %s: empty kind", op)
	}
	paths := o.Paths
	if paths == nil {
		paths = []lwm2m.Path{}
	}
	pathsJSON, err := json.Marshal(paths)
	if err != nil {
		return Operation{}, fmt.Errorf("store: %s: %w", op, err)
	}
	payload, err := jsonText("payload", o.Payload)
	if err != nil {
		return Operation{}, fmt.Errorf("store: %s: %w", op, err)
	}
	maxAttempts := o.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	now := millis(s.now())
	out, err := scanOperation(q.QueryRowContext(ctx, `
		INSERT INTO endpoint_operation (endpoint_id, kind, paths, payload, status, max_attempts, queued_by, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING `+operationCols,
		o.EndpointID, o.Kind, string(pathsJSON), payload, OperationQueued, maxAttempts, nullID(o.QueuedBy), now))
	return out, wrap(op, err)
}

// GetOperation returns the operation with the given id.
func (s *Store) GetOperation(ctx context.Context, id int64) (Operation, error) {
	o, err := scanOperation(s.rdb.QueryRowContext(ctx, "SELECT "+operationCols+" FROM endpoint_operation WHERE id = $1", id))
	return o, wrap(fmt.Sprintf("get operation %d", id), err)
}

// OperationFilter selects operations for ListOperations.
type OperationFilter struct {
	Status []OperationStatus // empty: any
	Desc   bool              // newest first; default oldest first (queue order)
	Limit  int               // <= 0: 100
	Offset int
}

// ListOperations returns the operations of the endpoint (0: of all
// endpoints) matching f, ordered by id.
func (s *Store) ListOperations(ctx context.Context, endpointID int64, f OperationFilter) ([]Operation, error) {
	op := fmt.Sprintf("list operations of endpoint %d", endpointID)
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if endpointID != 0 {
		where = append(where, "endpoint_id = "+arg(endpointID))
	}
	if len(f.Status) > 0 {
		ph := make([]string, len(f.Status))
		for i, st := range f.Status {
			ph[i] = arg(string(st))
		}
		where = append(where, "status IN ("+strings.Join(ph, ", ")+")")
	}
	q := "SELECT " + operationCols + " FROM endpoint_operation"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Desc {
		q += " DESC"
	}
	q += " LIMIT " + arg(limitOr(f.Limit, 100)) + " OFFSET " + arg(max(f.Offset, 0))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanOperation)
	return out, wrap(op, err)
}

// OperationUpdate is the new state of an operation after an attempt.
type OperationUpdate struct {
	Status        OperationStatus
	Attempts      int
	LastAttemptAt time.Time // zero: none
	ResultCode    string
	ResultError   string
	Response      json.RawMessage // nil: none
}

// UpdateOperation sets the operation's status, attempts and result and
// returns it. When from is given, the update applies only while the
// operation is in one of those states, and is ErrConflict otherwise: this
// is how a worker claims a QUEUED operation (from QUEUED to SENDING)
// without racing another worker or a cancellation.
func (s *Store) UpdateOperation(ctx context.Context, id int64, u OperationUpdate, from ...OperationStatus) (Operation, error) {
	op := fmt.Sprintf("update operation %d", id)
	if !validStatus(u.Status) {
		return Operation{}, fmt.Errorf("store: %s: invalid status %q", op, u.Status)
	}
	response, err := jsonText("response", u.Response)
	if err != nil {
		return Operation{}, fmt.Errorf("store: %s: %w", op, err)
	}
	args := []any{id, u.Status, u.Attempts, nullMillis(u.LastAttemptAt), u.ResultCode, u.ResultError, response, millis(s.now())}
	q := `UPDATE endpoint_operation SET status = $2, attempts = $3, last_attempt_at = $4,
		result_code = $5, result_error = $6, response = $7, updated_at = $8 WHERE id = $1`
	if len(from) > 0 {
		ph := make([]string, len(from))
		for i, st := range from {
			args = append(args, string(st))
			ph[i] = fmt.Sprintf("$%d", len(args))
		}
		q += " AND status IN (" + strings.Join(ph, ", ") + ")"
	}
	o, err := scanOperation(s.wdb.QueryRowContext(ctx, q+" RETURNING "+operationCols, args...))
	if errors.Is(err, sql.ErrNoRows) && len(from) > 0 {
		err = s.conflictUnlessMissing(ctx, id)
	}
	return o, wrap(op, err)
}

// CancelOperation cancels a QUEUED operation; any other state is
// ErrConflict.
func (s *Store) CancelOperation(ctx context.Context, id int64) (Operation, error) {
	o, err := scanOperation(s.wdb.QueryRowContext(ctx, `
		UPDATE endpoint_operation SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4
		RETURNING `+operationCols, id, OperationCancelled, millis(s.now()), OperationQueued))
	if errors.Is(err, sql.ErrNoRows) {
		err = s.conflictUnlessMissing(ctx, id)
	}
	return o, wrap(fmt.Sprintf("cancel operation %d", id), err)
}

// conflictUnlessMissing explains a conditional update that matched no row:
// ErrNotFound when the operation does not exist, ErrConflict (naming its
// state) when it is in another state.
func (s *Store) conflictUnlessMissing(ctx context.Context, id int64) error {
	var st string
	if err := s.wdb.QueryRowContext(ctx, "SELECT status FROM endpoint_operation WHERE id = $1", id).Scan(&st); err != nil {
		return err
	}
	return fmt.Errorf("%w: operation is %s", ErrConflict, st)
}

// DeleteOperation removes an operation.
func (s *Store) DeleteOperation(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete operation %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM endpoint_operation WHERE id = $1", id)))
}

func validStatus(st OperationStatus) bool {
	switch st {
	case OperationQueued, OperationSending, OperationConfirmed, OperationFailed, OperationCancelled:
		return true
	}
	return false
}
