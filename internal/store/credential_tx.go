package store

import (
	"context"
	"database/sql"
	"fmt"
)

// The transaction forms of the credential methods, for changes that touch
// many credentials at once and must commit together or not at all (the
// secret key rotation in package credential).

// LockCredentialsTx keeps every other transaction from adding, changing
// or removing credentials until tx ends, so that tx sees and rewrites all
// of them. On SQLite a write transaction holds the database's one write
// lock from its start, so there is nothing more to take.
func (s *Store) LockCredentialsTx(ctx context.Context, tx *sql.Tx) error {
	if s.dialect != DialectPostgres {
		return nil
	}
	_, err := tx.ExecContext(ctx, "LOCK TABLE credential IN SHARE ROW EXCLUSIVE MODE")
	return wrap("lock credentials", err)
}

// ListCredentialsTx is ListCredentials inside the transaction tx.
func (s *Store) ListCredentialsTx(ctx context.Context, tx *sql.Tx) ([]Credential, error) {
	rows, err := tx.QueryContext(ctx, "SELECT "+credentialCols+" FROM credential ORDER BY endpoint_name")
	if err != nil {
		return nil, wrap("list credentials", err)
	}
	out, err := collect(rows, scanCredential)
	return out, wrap("list credentials", err)
}

// UpdateCredentialKeyTx replaces the sealed key of the psk credential id
// inside the transaction tx. A credential that does not exist or is not a
// psk one is ErrNotFound.
func (s *Store) UpdateCredentialKeyTx(ctx context.Context, tx *sql.Tx, id int64, pskKeyEnc []byte) error {
	op := fmt.Sprintf("update key of credential %d", id)
	if len(pskKeyEnc) == 0 {
		return fmt.Errorf("store: %s: empty key", op)
	}
	return wrap(op, requireRow(tx.ExecContext(ctx,
		"UPDATE credential SET psk_key_enc = $1 WHERE id = $2 AND kind = 'psk'", pskKeyEnc, id)))
}

// DeleteCredentialTx removes the credential id inside the transaction tx;
// one that does not exist is ErrNotFound.
func (s *Store) DeleteCredentialTx(ctx context.Context, tx *sql.Tx, id int64) error {
	return wrap(fmt.Sprintf("delete credential %d", id), requireRow(tx.ExecContext(ctx,
		"DELETE FROM credential WHERE id = $1", id)))
}
