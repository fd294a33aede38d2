package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationFS holds the numbered, append-only migrations of each dialect:
// a released file is never edited; a change to the schema is a new file
// with the next number, in both directories.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

var (
	// ErrSchemaTooNew is matched by CheckSchema and Migrate when the
	// database was migrated by a newer flownexus than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this flownexus")

	// ErrSchemaOutdated is matched by CheckSchema when migrations are
	// pending.
	ErrSchemaOutdated = errors.New("database schema is outdated: run migrations")
)

func newMigrator(dialect string, db *sql.DB) (*goose.Provider, error) {
	dir, gd := "migrations/sqlite", goose.DialectSQLite3
	var opts []goose.ProviderOption
	if dialect == DialectPostgres {
		dir, gd = "migrations/postgres", goose.DialectPostgres
		// Nodes starting together migrate one at a time.
		l, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("store: migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	}
	sub, err := fs.Sub(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	p, err := goose.NewProvider(gd, db, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// SchemaVersion returns the version of the database schema (0 for an empty
// database) and the latest version this flownexus knows. It creates the
// migration bookkeeping table (goose_db_version) if it is missing.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	sources := s.goose.ListSources()
	latest = sources[len(sources)-1].Version
	current, err = s.goose.GetDBVersion(ctx)
	if err != nil {
		return 0, latest, fmt.Errorf("store: schema version: %w", err)
	}
	return current, latest, nil
}

// CheckSchema returns nil when the schema is exactly the one this flownexus
// knows, an error matching ErrSchemaTooNew when the database comes from a
// newer flownexus and one matching ErrSchemaOutdated when migrations are
// pending; both name the two versions.
func (s *Store) CheckSchema(ctx context.Context) error {
	current, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("store: %w (database version %d, this flownexus knows up to %d)", ErrSchemaTooNew, current, latest)
	}
	pending, err := s.goose.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("store: check schema: %w", err)
	}
	if pending {
		return fmt.Errorf("store: %w (database version %d, latest %d)", ErrSchemaOutdated, current, latest)
	}
	return nil
}

// Migrate applies the pending migrations in order, each in its own
// transaction, and returns the versions it applied. It refuses (with
// ErrSchemaTooNew) a database from a newer flownexus. On PostgreSQL it holds
// an advisory lock so that several nodes can call it at once.
func (s *Store) Migrate(ctx context.Context) ([]int64, error) {
	current, latest, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if current > latest {
		return nil, fmt.Errorf("store: migrate: %w (database version %d, this flownexus knows up to %d)", ErrSchemaTooNew, current, latest)
	}
	res, err := s.goose.Up(ctx)
	var applied []int64
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	if err != nil {
		var pe *goose.PartialError
		if errors.As(err, &pe) {
			for _, r := range pe.Applied {
				applied = append(applied, r.Source.Version)
			}
			return applied, fmt.Errorf("store: migrate: version %d: %w", pe.Failed.Source.Version, pe.Err)
		}
		return applied, fmt.Errorf("store: migrate: %w", err)
	}
	return applied, nil
}
