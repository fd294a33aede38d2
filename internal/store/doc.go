// Package store is flownexus' persistence layer: one concrete Store over
// database/sql that speaks SQLite (the embedded default, modernc.org/sqlite)
// or PostgreSQL (pgx), chosen by the database URL given to Open.
//
// The schema is created and evolved by numbered, append-only migrations
// embedded per dialect (migrations/sqlite, migrations/postgres) and applied
// with goose, each in its own transaction. Both dialects hold the same
// tables and columns; see migrations/*/00001_initial.sql for the data model
// and its conventions (timestamps are unix milliseconds, UTC).
//
// SQLite is opened the way pocketbase does it: WAL journal, synchronous=NORMAL,
// a 10 s busy timeout, foreign keys on, a pool of read-only connections and a
// separate write pool of exactly one connection through which every write
// goes. PostgreSQL uses a single pool for both, and one connection of its
// own per ListenJobs listener (the job table's notifications).
//
// Every method is safe for concurrent use. Errors are wrapped with the
// operation ("store: get endpoint "x": ...") and match ErrNotFound or
// ErrConflict with errors.Is where they apply; a lookup that finds nothing
// returns ErrNotFound, never a zero value with a nil error. Passwords and
// tokens are hashed, and credential keys encrypted, by the callers: the
// store only keeps what it is given.
package store
