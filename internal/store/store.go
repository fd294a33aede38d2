package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The dialects Store.Dialect reports.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

var (
	// ErrNotFound is matched (errors.Is) by every lookup, update or delete
	// whose target row does not exist.
	ErrNotFound = errors.New("not found")

	// ErrConflict is matched by every write refused because of the data
	// already stored: a unique key taken (name, username, token hash, PSK
	// identity, an active firmware update for the endpoint, ...), a foreign
	// key that does not hold (a row that references a missing one, or the
	// deletion of a row still referenced), or a state transition that is no
	// longer allowed (cancelling an operation that is not QUEUED).
	ErrConflict = errors.New("conflict")
)

// Config tunes a Store. The zero Config is valid.
type Config struct {
	// Now returns the current time; nil means time.Now. Every timestamp the
	// store sets itself (created_at, updated_at, a defaulted received_at or
	// audit time) comes from it.
	Now func() time.Time
}

// Store is the database of one flownexus installation. It is safe for
// concurrent use by many goroutines; Close it once when done.
type Store struct {
	dialect string
	rdb     *sql.DB // reads; on PostgreSQL the same pool as wdb
	wdb     *sql.DB // writes; on SQLite exactly one connection
	now     func() time.Time
	goose   *goose.Provider

	insertsMu sync.Mutex
	inserts   map[insertSQLKey]*sql.Stmt // SQLite: see bulkStmt; guarded by insertsMu
}

// Open opens the database named by url without changing its schema (see
// Migrate and CheckSchema). A url starting with "postgres://" or
// "postgresql://" selects PostgreSQL; anything else names a SQLite file, as
// a plain path or as "sqlite://PATH" or "file:PATH" (no query parameters).
// A missing SQLite file is created; its directory must exist.
//
// Open checks that the database can be used before it returns: a file that
// is not a SQLite database, a directory that cannot be used or a PostgreSQL
// server that cannot be reached or refuses the connection (5 s connect
// timeout unless the URL sets connect_timeout) give a one-line error that
// never contains the password.
func Open(ctx context.Context, url string, opts Config) (*Store, error) {
	s := &Store{now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if isPostgresURL(url) {
		s.dialect = DialectPostgres
		s.rdb, err = openPostgres(ctx, url)
		s.wdb = s.rdb
	} else {
		s.dialect = DialectSQLite
		s.rdb, s.wdb, err = openSQLite(ctx, url)
	}
	if err != nil {
		return nil, err
	}
	if s.goose, err = newMigrator(s.dialect, s.wdb); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pools. Calls after the first return nil.
func (s *Store) Close() error {
	var err error
	s.insertsMu.Lock()
	for _, st := range s.inserts {
		if st != nil {
			err = errors.Join(err, st.Close())
		}
	}
	s.inserts = nil
	s.insertsMu.Unlock()
	if s.wdb != nil {
		err = errors.Join(err, s.wdb.Close())
	}
	if s.rdb != nil && s.rdb != s.wdb {
		err = errors.Join(err, s.rdb.Close())
	}
	s.rdb, s.wdb = nil, nil
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Dialect returns DialectSQLite or DialectPostgres.
func (s *Store) Dialect() string { return s.dialect }

// DB returns the pool for reads. On SQLite its connections are read-only
// (PRAGMA query_only): write through WriteDB. The caller must not close it.
func (s *Store) DB() *sql.DB { return s.rdb }

// WriteDB returns the pool for writes: on SQLite the single write
// connection (transactions begin IMMEDIATE), on PostgreSQL the same pool as
// DB. Hold its transactions briefly: on SQLite every other write waits for
// them. The caller must not close it.
func (s *Store) WriteDB() *sql.DB { return s.wdb }

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is what *sql.Row and *sql.Rows have in common.
type rowScanner interface {
	Scan(dest ...any) error
}

// inTx runs fn in one write transaction, committed when fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// wrap prefixes err with the layer and operation and makes it match
// ErrNotFound or ErrConflict where the driver error means that.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	case errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict):
		return fmt.Errorf("store: %s: %w", op, err)
	case isConflict(err):
		return fmt.Errorf("store: %s: %w: %w", op, ErrConflict, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// isConflict reports unique and foreign-key violations of either driver.
func isConflict(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
			sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" || pe.Code == "23503" // unique_violation, foreign_key_violation
	}
	return false
}

// requireRow turns "no row affected" into sql.ErrNoRows.
func requireRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}

// Timestamps are stored as unix milliseconds (UTC); NULL stands for the
// zero time.Time.

func millis(t time.Time) int64 { return t.UnixMilli() }

func nullMillis(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func fromNullMillis(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return fromMillis(ms.Int64)
}

// nullText stores "" as NULL, for nullable unique text columns.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// jsonText validates raw JSON for a TEXT column; empty means NULL.
func jsonText(field string, raw json.RawMessage) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if !json.Valid(raw) {
		return nil, fmt.Errorf("%s is not valid JSON", field)
	}
	return string(raw), nil
}

func fromJSONText(s sql.NullString) json.RawMessage {
	if !s.Valid {
		return nil
	}
	return json.RawMessage(s.String)
}

// params returns "$from, $from+1, ..., $from+n-1".
func params(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// likeContains builds a LIKE pattern (used with ESCAPE '\') matching s
// anywhere.
func likeContains(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(s) + "%"
}

// limitOr returns limit, or def when limit <= 0.
func limitOr(limit, def int) int {
	if limit <= 0 {
		return def
	}
	return limit
}

// collect scans every row with scan and closes rows.
func collect[T any](rows *sql.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
