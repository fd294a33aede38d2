package store

import (
	"context"
	"database/sql"
	"fmt"
)

// Settings are installation-wide values kept by name (table setting). The
// store gives them no meaning: each name is owned by the package that
// writes it.

// GetSetting returns the value stored under name, or an error matching
// ErrNotFound when there is none.
func (s *Store) GetSetting(ctx context.Context, name string) (string, error) {
	return getSetting(ctx, s.rdb, name)
}

// GetSettingTx is GetSetting inside the transaction tx (see WithTx): it
// sees what tx wrote.
func (s *Store) GetSettingTx(ctx context.Context, tx *sql.Tx, name string) (string, error) {
	return getSetting(ctx, tx, name)
}

func getSetting(ctx context.Context, q querier, name string) (string, error) {
	var v string
	err := q.QueryRowContext(ctx, "SELECT value FROM setting WHERE name = $1", name).Scan(&v)
	return v, wrap(fmt.Sprintf("get setting %q", name), err)
}

// InitSetting stores value under name unless a value is stored already,
// and returns the value stored after the call: value, or the one that was
// there. Callers that start at the same time agree on the first value
// written.
func (s *Store) InitSetting(ctx context.Context, name, value string) (string, error) {
	op := fmt.Sprintf("init setting %q", name)
	if name == "" {
		return "", fmt.Errorf("store: %s: empty name", op)
	}
	if _, err := s.wdb.ExecContext(ctx, `
		INSERT INTO setting (name, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, name, value, millis(s.now())); err != nil {
		return "", wrap(op, err)
	}
	return getSetting(ctx, s.rdb, name)
}

// PutSettingTx stores value under name, replacing any value, inside the
// transaction tx (see WithTx).
func (s *Store) PutSettingTx(ctx context.Context, tx *sql.Tx, name, value string) error {
	op := fmt.Sprintf("put setting %q", name)
	if name == "" {
		return fmt.Errorf("store: %s: empty name", op)
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO setting (name, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, millis(s.now()))
	return wrap(op, err)
}
