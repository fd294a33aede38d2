package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"
)

// The operation queue: what the durable job worker (package jobs) needs
// beyond the plain operation CRUD of operation.go. An endpoint's QUEUED
// and SENDING operations form its queue, in id order; the head is the
// lowest id. At most one operation of an endpoint is SENDING at a time,
// and only the head is ever claimed, so operations reach a device in the
// order they were queued even with several workers on several nodes.

// WithTx runs fn in one write transaction, committed when fn returns nil
// and rolled back otherwise. On SQLite the transaction holds the single
// write connection (BEGIN IMMEDIATE): fn must not use the Store's own
// methods, which would wait for that connection, only tx (and the *Tx
// variants such as CreateOperationTx). Keep it short.
func (s *Store) WithTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.inTx(ctx, fn)
}

// CreateOperationTx is CreateOperation inside the transaction tx, so that
// the operation and other rows (a job that delivers it) commit together.
func (s *Store) CreateOperationTx(ctx context.Context, tx *sql.Tx, o Operation) (Operation, error) {
	return s.createOperation(ctx, tx, o)
}

// ClaimResult says what ClaimOperation found at the head of an endpoint's
// queue and did with it.
type ClaimResult uint8

// The outcomes of ClaimOperation.
const (
	// ClaimEmpty: the endpoint has no QUEUED or SENDING operation.
	ClaimEmpty ClaimResult = iota
	// ClaimClaimed: the head was QUEUED and is now SENDING, with
	// LastAttemptAt set to the claim time; the caller must send it and
	// record the outcome with UpdateOperation(..., OperationSending).
	ClaimClaimed
	// ClaimBusy: the head is SENDING, claimed by someone else and not
	// stale: nothing may be sent to this endpoint now.
	ClaimBusy
	// ClaimWaiting: the head is QUEUED but was last attempted at or after
	// WokeAt: its next attempt waits for the device's next wake.
	ClaimWaiting
	// ClaimRecovered: the head had been SENDING since before StaleBefore
	// (its sender died): the attempt was counted and the operation put
	// back to QUEUED, or to FAILED when that was its last attempt, with
	// ResultError set to StaleReason.
	ClaimRecovered
)

func (r ClaimResult) String() string {
	switch r {
	case ClaimEmpty:
		return "empty"
	case ClaimClaimed:
		return "claimed"
	case ClaimBusy:
		return "busy"
	case ClaimWaiting:
		return "waiting"
	case ClaimRecovered:
		return "recovered"
	}
	return "claim(?)"
}

// ClaimParams are the rules ClaimOperation applies to the head.
type ClaimParams struct {
	// WokeAt is when the device last talked to the server. A head that
	// was attempted at or after it (compared in whole milliseconds, as
	// stored) is not claimed: a failed attempt is retried on a later wake,
	// not in the same one. Zero claims any QUEUED head.
	WokeAt time.Time
	// StaleBefore: a SENDING head whose attempt began before it is taken
	// as abandoned (the process sending it died). Zero never recovers.
	StaleBefore time.Time
	// StaleReason is the ResultError of a recovered operation.
	StaleReason string
}

// ClaimOperation looks at the head of the endpoint's queue (its QUEUED or
// SENDING operation with the lowest id) and claims it (QUEUED to SENDING),
// recovers it (a stale SENDING) or leaves it. It returns the head as it is
// afterwards (zero for ClaimEmpty). Concurrent claims for the same
// endpoint, from any process, never both succeed, and nothing is claimed
// while the head is SENDING.
//
// The head is read without the write lock; only a claim or a recovery
// writes, each one conditional statement on the head's id that does
// nothing when the head changed meanwhile (the head is then read again).
// That works because only the head is ever claimed: an endpoint's SENDING
// operation, if any, is its head, and a QUEUED head means none is SENDING.
func (s *Store) ClaimOperation(ctx context.Context, endpointID int64, p ClaimParams) (Operation, ClaimResult, error) {
	op := fmt.Sprintf("claim operation of endpoint %d", endpointID)
	woke := int64(math.MaxInt64) // zero WokeAt: any attempt was before it
	if !p.WokeAt.IsZero() {
		woke = p.WokeAt.UnixMilli()
	}
	for try := 0; ; try++ {
		head, err := scanOperation(s.rdb.QueryRowContext(ctx, "SELECT "+operationCols+
			" FROM endpoint_operation WHERE endpoint_id = $1 AND status IN ($2, $3) ORDER BY id LIMIT 1",
			endpointID, OperationQueued, OperationSending))
		if errors.Is(err, sql.ErrNoRows) {
			return Operation{}, ClaimEmpty, nil
		}
		if err != nil {
			return Operation{}, ClaimEmpty, wrap(op, err)
		}
		now := millis(s.now())
		var out Operation
		res := ClaimClaimed
		switch {
		case head.Status == OperationSending:
			if p.StaleBefore.IsZero() || !head.LastAttemptAt.Before(p.StaleBefore) {
				return head, ClaimBusy, nil
			}
			res = ClaimRecovered
			out, err = scanOperation(s.wdb.QueryRowContext(ctx, `
				UPDATE endpoint_operation SET
					status = CASE WHEN attempts + 1 >= max_attempts THEN $2 ELSE $3 END,
					attempts = attempts + 1, result_code = '', result_error = $4, updated_at = $5
				WHERE id = $1 AND status = $6 AND last_attempt_at = $7 RETURNING `+operationCols,
				head.ID, OperationFailed, OperationQueued, p.StaleReason, now, OperationSending, millis(head.LastAttemptAt)))
		case !head.LastAttemptAt.IsZero() && head.LastAttemptAt.UnixMilli() >= woke:
			return head, ClaimWaiting, nil
		default:
			out, err = scanOperation(s.wdb.QueryRowContext(ctx, `
				UPDATE endpoint_operation SET status = $2, last_attempt_at = $3, updated_at = $3
				WHERE id = $1 AND status = $4 AND (last_attempt_at IS NULL OR last_attempt_at < $5)
				RETURNING `+operationCols, head.ID, OperationSending, now, OperationQueued, woke))
		}
		switch {
		case err == nil:
			return out, res, nil
		case !errors.Is(err, sql.ErrNoRows):
			return Operation{}, ClaimEmpty, wrap(op, err)
		}
		// The head changed between the read and the write: look again,
		// a few times; a head that keeps changing is someone else's.
		if try == 8 {
			return head, ClaimBusy, nil
		}
	}
}

// pendingChunk bounds the ids of one EndpointsWithPendingOperations query.
const pendingChunk = 500

// EndpointsWithPendingOperations returns those of the given endpoint ids
// that have a QUEUED or SENDING operation, in no particular order.
func (s *Store) EndpointsWithPendingOperations(ctx context.Context, ids []int64) ([]int64, error) {
	var out []int64
	for start := 0; start < len(ids); start += pendingChunk {
		chunk := ids[start:min(start+pendingChunk, len(ids))]
		args := make([]any, 0, len(chunk)+2)
		args = append(args, OperationQueued, OperationSending)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.rdb.QueryContext(ctx, `SELECT DISTINCT endpoint_id FROM endpoint_operation
			WHERE status IN ($1, $2) AND endpoint_id IN (`+params(3, len(chunk))+`)`, args...)
		if err != nil {
			return nil, wrap("find endpoints with pending operations", err)
		}
		ids, err := collect(rows, func(r rowScanner) (int64, error) {
			var id int64
			return id, r.Scan(&id)
		})
		if err != nil {
			return nil, wrap("find endpoints with pending operations", err)
		}
		out = append(out, ids...)
	}
	return out, nil
}

// CountOperations returns how many operations are in each status, over all
// endpoints (0: every endpoint) or one.
func (s *Store) CountOperations(ctx context.Context, endpointID int64) (map[OperationStatus]int, error) {
	q := "SELECT status, count(*) FROM endpoint_operation"
	var args []any
	if endpointID != 0 {
		q += " WHERE endpoint_id = $1"
		args = append(args, endpointID)
	}
	rows, err := s.rdb.QueryContext(ctx, q+" GROUP BY status", args...)
	if err != nil {
		return nil, wrap("count operations", err)
	}
	defer rows.Close()
	out := map[OperationStatus]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, wrap("count operations", err)
		}
		out[OperationStatus(st)] = n
	}
	return out, wrap("count operations", rows.Err())
}
