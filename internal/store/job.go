package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The job table: durable work of any kind, for the job engine (package
// jobs). A job is available (waiting, due at RunAt) or running (claimed by
// a node); a job that ends, well or for good, is deleted. Claims of any
// number of workers on any number of nodes never hand one job out twice:
// on PostgreSQL they lock with FOR UPDATE SKIP LOCKED, on SQLite they go
// through the single write connection.

// JobState is where a job is in its life.
type JobState string

// The job states.
const (
	JobAvailable JobState = "available"
	JobRunning   JobState = "running"
)

// JobChannel is the PostgreSQL notification channel on which every
// transaction that inserts jobs notifies when it commits (ListenJobs).
const JobChannel = "flownexus_job"

// Job is a row of the job table.
type Job struct {
	ID          int64
	Kind        string
	Key         string // "" when the job is not unique
	Args        json.RawMessage
	State       JobState
	Attempts    int // attempts begun, the running one included
	MaxAttempts int
	RunAt       time.Time // due time (available) or when it was due (running)
	LockedBy    string    // the node running it
	LockedAt    time.Time // when it was claimed; zero while available
	LastError   string    // the error of the last failed attempt
	CreatedAt   time.Time
}

// NewJob is a job to insert.
type NewJob struct {
	Kind string // required
	// Key, when not empty, makes the job unique among the waiting jobs of
	// its kind: inserting a job whose (Kind, Key) is already waiting keeps
	// the waiting one, due at the earlier of the two RunAt.
	Key         string
	Args        json.RawMessage // nil: {}
	RunAt       time.Time       // zero: now
	MaxAttempts int             // required, > 0
}

const jobCols = "id, kind, unique_key, args, state, attempts, max_attempts, run_at, locked_by, locked_at, last_error, created_at"

func scanJob(r rowScanner) (Job, error) {
	var j Job
	var args string
	var runAt, created int64
	var locked sql.NullInt64
	err := r.Scan(&j.ID, &j.Kind, &j.Key, &args, &j.State, &j.Attempts, &j.MaxAttempts, &runAt, &j.LockedBy, &locked,
		&j.LastError, &created)
	if err != nil {
		return Job{}, err
	}
	j.Args = json.RawMessage(args)
	j.RunAt, j.LockedAt, j.CreatedAt = fromMillis(runAt), fromNullMillis(locked), fromMillis(created)
	return j, nil
}

// insertJobsChunk bounds the rows of one insert statement.
const insertJobsChunk = 200

// InsertJobs inserts jobs in one transaction (see NewJob.Key for unique
// jobs). On PostgreSQL the commit notifies JobChannel.
func (s *Store) InsertJobs(ctx context.Context, jobs ...NewJob) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.InsertJobsTx(ctx, tx, jobs...) })
}

// InsertJobsTx is InsertJobs inside the transaction tx (WithTx), so that
// the jobs commit with the rows they are about, or not at all.
func (s *Store) InsertJobsTx(ctx context.Context, tx *sql.Tx, jobs ...NewJob) error {
	const op = "insert jobs"
	if len(jobs) == 0 {
		return nil
	}
	now := s.now()
	// One statement must not touch a unique job twice (PostgreSQL refuses
	// it): fold duplicates first, keeping the earliest due time.
	rows := make([]NewJob, 0, len(jobs))
	seen := map[[2]string]int{}
	for _, j := range jobs {
		switch {
		case j.Kind == "":
			return fmt.Errorf("store: %s: empty kind", op)
		case j.MaxAttempts <= 0:
			return fmt.Errorf("store: %s: kind %q: max attempts %d", op, j.Kind, j.MaxAttempts)
		case len(j.Args) > 0 && !json.Valid(j.Args):
			return fmt.Errorf("store: %s: kind %q: args are not valid JSON", op, j.Kind)
		}
		if j.RunAt.IsZero() {
			j.RunAt = now
		}
		if len(j.Args) == 0 {
			j.Args = json.RawMessage("{}")
		}
		if j.Key != "" {
			k := [2]string{j.Kind, j.Key}
			if i, ok := seen[k]; ok {
				if j.RunAt.Before(rows[i].RunAt) {
					rows[i].RunAt = j.RunAt
				}
				continue
			}
			seen[k] = len(rows)
		}
		rows = append(rows, j)
	}
	earlier := "min(job.run_at, excluded.run_at)"
	if s.dialect == DialectPostgres {
		earlier = "LEAST(job.run_at, EXCLUDED.run_at)"
	}
	for start := 0; start < len(rows); start += insertJobsChunk {
		chunk := rows[start:min(start+insertJobsChunk, len(rows))]
		values := make([]string, len(chunk))
		args := make([]any, 0, 6*len(chunk))
		for i, j := range chunk {
			values[i] = "(" + params(len(args)+1, 6) + ")"
			args = append(args, j.Kind, j.Key, string(j.Args), j.MaxAttempts, millis(j.RunAt), millis(now))
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO job (kind, unique_key, args, max_attempts, run_at, created_at)
			VALUES `+strings.Join(values, ", ")+`
			ON CONFLICT (kind, unique_key) WHERE state = 'available' AND unique_key <> ''
			DO UPDATE SET run_at = `+earlier, args...)
		if err != nil {
			return wrap(op, err)
		}
	}
	if s.dialect == DialectPostgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify($1, '')", JobChannel); err != nil {
			return wrap(op, err)
		}
	}
	return nil
}

// kindList is the SQL list of kinds from argument n on, and its arguments.
func kindList(n int, kinds []string) (string, []any) {
	args := make([]any, len(kinds))
	for i, k := range kinds {
		args[i] = k
	}
	return "(" + params(n, len(kinds)) + ")", args
}

// ClaimJobs claims up to limit available jobs of the given kinds that are
// due, oldest due first: each becomes running, locked by node, with its
// attempt counted. A job is claimed by one caller only, whatever the
// number of callers and nodes.
func (s *Store) ClaimJobs(ctx context.Context, node string, kinds []string, limit int) ([]Job, error) {
	const op = "claim jobs"
	if len(kinds) == 0 || limit <= 0 {
		return nil, nil
	}
	now := millis(s.now())
	in, kargs := kindList(4, kinds)
	lock := ""
	if s.dialect == DialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	args := append([]any{node, now, limit}, kargs...)
	rows, err := s.wdb.QueryContext(ctx, `UPDATE job SET state = 'running', attempts = attempts + 1, locked_by = $1, locked_at = $2
		WHERE id IN (SELECT id FROM job WHERE state = 'available' AND run_at <= $2 AND kind IN `+in+`
			ORDER BY run_at, id LIMIT $3`+lock+`)
		RETURNING `+jobCols, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	jobs, err := collect(rows, scanJob)
	if err != nil {
		return nil, wrap(op, err)
	}
	slices.SortFunc(jobs, func(a, b Job) int {
		return cmp.Or(a.RunAt.Compare(b.RunAt), cmp.Compare(a.ID, b.ID))
	})
	return jobs, nil
}

// FinishJob deletes a job that ended: done, or failed for good. attempts
// is the job's Attempts as claimed: a job claimed again since (rescued and
// run elsewhere) is not touched, and the result is ErrConflict.
func (s *Store) FinishJob(ctx context.Context, id int64, attempts int) error {
	err := requireRow(s.wdb.ExecContext(ctx, "DELETE FROM job WHERE id = $1 AND state = 'running' AND attempts = $2", id, attempts))
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("%w: job %d is no longer running attempt %d", ErrConflict, id, attempts)
	}
	return wrap(fmt.Sprintf("finish job %d", id), err)
}

// RetryJob makes a running job available again, due after delay, keeping
// lastError. When a job of the same kind and key is waiting already, that
// one stands for it and this one is deleted. attempts is as for FinishJob.
func (s *Store) RetryJob(ctx context.Context, id int64, attempts int, delay time.Duration, lastError string) error {
	op := fmt.Sprintf("retry job %d", id)
	runAt := millis(s.now().Add(delay))
	err := requireRow(s.wdb.ExecContext(ctx, `UPDATE job SET state = 'available', run_at = $3, last_error = $4,
		locked_by = '', locked_at = NULL WHERE id = $1 AND state = 'running' AND attempts = $2`, id, attempts, runAt, lastError))
	if isConflict(err) {
		_, err = s.wdb.ExecContext(ctx, "DELETE FROM job WHERE id = $1 AND state = 'running' AND attempts = $2", id, attempts)
	} else if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("%w: job %d is no longer running attempt %d", ErrConflict, id, attempts)
	}
	return wrap(op, err)
}

// RescueJobs takes back the jobs running for longer than age, whose node
// must have died: each is available again at once with lastError, or
// deleted when it had its last attempt (or a job of the same kind and key
// is waiting). It returns the jobs as they were, and whether each was
// deleted.
func (s *Store) RescueJobs(ctx context.Context, age time.Duration, lastError string) ([]Job, []bool, error) {
	const op = "rescue jobs"
	lockedBefore := s.now().Add(-age)
	rows, err := s.wdb.QueryContext(ctx, "SELECT "+jobCols+" FROM job WHERE state = 'running' AND locked_at < $1 ORDER BY id",
		millis(lockedBefore))
	if err != nil {
		return nil, nil, wrap(op, err)
	}
	stale, err := collect(rows, scanJob)
	if err != nil {
		return nil, nil, wrap(op, err)
	}
	dropped := make([]bool, len(stale))
	for i, j := range stale {
		if j.Attempts >= j.MaxAttempts {
			err = s.FinishJob(ctx, j.ID, j.Attempts)
			dropped[i] = true
		} else {
			err = s.RetryJob(ctx, j.ID, j.Attempts, 0, lastError)
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			return nil, nil, wrap(op, err)
		}
	}
	return stale, dropped, nil
}

// NextJobIn returns how long until the earliest available job of the
// given kinds is due (zero or less: it is due), and false when there is
// none.
func (s *Store) NextJobIn(ctx context.Context, kinds []string) (time.Duration, bool, error) {
	if len(kinds) == 0 {
		return 0, false, nil
	}
	in, args := kindList(1, kinds)
	var at sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT min(run_at) FROM job WHERE state = 'available' AND kind IN "+in, args...).Scan(&at)
	if err != nil || !at.Valid {
		return 0, false, wrap("next job", err)
	}
	return fromMillis(at.Int64).Sub(s.now()), true, nil
}

// CountJobs returns how many jobs of the given kinds are available or
// running.
func (s *Store) CountJobs(ctx context.Context, kinds ...string) (int, error) {
	if len(kinds) == 0 {
		return 0, nil
	}
	in, args := kindList(1, kinds)
	var n int
	err := s.rdb.QueryRowContext(ctx, "SELECT count(*) FROM job WHERE kind IN "+in, args...).Scan(&n)
	return n, wrap("count jobs", err)
}

// ListJobs returns the jobs of the given kinds, by id.
func (s *Store) ListJobs(ctx context.Context, kinds ...string) ([]Job, error) {
	if len(kinds) == 0 {
		return nil, nil
	}
	in, args := kindList(1, kinds)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+jobCols+" FROM job WHERE kind IN "+in+" ORDER BY id", args...)
	if err != nil {
		return nil, wrap("list jobs", err)
	}
	out, err := collect(rows, scanJob)
	return out, wrap("list jobs", err)
}

// ErrNoListen is matched by ListenJobs on a database without
// notifications (SQLite): there, only the process that inserts a job can
// know of it.
var ErrNoListen = errors.New("store: the database has no notifications")

// JobListener is a connection of its own to PostgreSQL that listens on
// JobChannel. It is not safe for concurrent use.
type JobListener struct {
	conn *pgx.Conn
}

// ListenJobs opens a connection (outside the pool, with the pool's
// settings) and listens on JobChannel. On SQLite it returns ErrNoListen.
func (s *Store) ListenJobs(ctx context.Context) (*JobListener, error) {
	const op = "listen for jobs"
	if s.dialect != DialectPostgres {
		return nil, fmt.Errorf("%w (%s)", ErrNoListen, s.dialect)
	}
	// The pool's connections carry its configuration; borrow one to read it.
	c, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, wrap(op, err)
	}
	var cfg *pgx.ConnConfig
	err = c.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("driver connection %T is not pgx's", dc)
		}
		cfg = sc.Conn().Config()
		return nil
	})
	c.Close()
	if err != nil {
		return nil, wrap(op, err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, wrap(op, err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+JobChannel); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, wrap(op, err)
	}
	return &JobListener{conn: conn}, nil
}

// Wait blocks until a notification arrives, ctx ends (its error) or the
// connection fails (then the listener is done: Close it and listen again).
func (l *JobListener) Wait(ctx context.Context) error {
	if _, err := l.conn.WaitForNotification(ctx); err != nil {
		return fmt.Errorf("store: wait for jobs: %w", err)
	}
	return nil
}

// Close closes the listener's connection.
func (l *JobListener) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.conn.Close(ctx)
}
