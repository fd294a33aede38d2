package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// APIToken is a bearer token for the REST API. Only its SHA-256 (hex) is
// stored; Prefix is its first characters, to tell tokens apart.
type APIToken struct {
	ID         int64
	UserID     int64
	Name       string
	TokenHash  string
	Prefix     string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never
	ExpiresAt  time.Time // zero: never expires
	// Scope is TokenRead or TokenReadWrite.
	Scope string
}

// The API token scopes: a read token may only read (GET and HEAD
// requests, the event stream); a read-write token may do whatever its
// user may.
const (
	TokenRead      = "read"
	TokenReadWrite = "read-write"
)

// ReadOnly reports whether the token may only read.
func (t APIToken) ReadOnly() bool { return t.Scope == TokenRead }

// Expired reports whether the token has expired at now.
func (t APIToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

const tokenCols = "id, user_id, name, token_hash, prefix, created_at, last_used_at, expires_at, scope"

func scanToken(r rowScanner, extra ...any) (APIToken, error) {
	var t APIToken
	var created int64
	var used, expires sql.NullInt64
	dest := append([]any{&t.ID, &t.UserID, &t.Name, &t.TokenHash, &t.Prefix, &created, &used, &expires, &t.Scope}, extra...)
	if err := r.Scan(dest...); err != nil {
		return APIToken{}, err
	}
	t.CreatedAt, t.LastUsedAt, t.ExpiresAt = fromMillis(created), fromNullMillis(used), fromNullMillis(expires)
	return t, nil
}

func scanTokenOnly(r rowScanner) (APIToken, error) { return scanToken(r) }

// CreateAPIToken stores a token of the user; expires zero means never. A
// hash already stored is ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, userID int64, name, tokenHash, prefix string, expires time.Time) (APIToken, error) {
	return s.CreateScopedAPIToken(ctx, userID, name, tokenHash, prefix, TokenReadWrite, expires)
}

// CreateScopedAPIToken is CreateAPIToken with a scope, TokenRead or
// TokenReadWrite (any other is an error).
func (s *Store) CreateScopedAPIToken(ctx context.Context, userID int64, name, tokenHash, prefix, scope string, expires time.Time) (APIToken, error) {
	op := fmt.Sprintf("create API token %q of user %d", name, userID)
	if tokenHash == "" {
		return APIToken{}, fmt.Errorf("store: %s: empty token hash", op)
	}
	if scope != TokenRead && scope != TokenReadWrite {
		return APIToken{}, fmt.Errorf("store: %s: unknown scope %q", op, scope)
	}
	t, err := scanToken(s.wdb.QueryRowContext(ctx, `
		INSERT INTO api_token (user_id, name, token_hash, prefix, created_at, expires_at, scope)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+tokenCols,
		userID, name, tokenHash, prefix, millis(s.now()), nullMillis(expires), scope))
	return t, wrap(op, err)
}

// GetAPITokenByHash returns the token with the given hash and its user,
// expired or not (see APIToken.Expired), its user disabled or not (see
// User.Disabled).
func (s *Store) GetAPITokenByHash(ctx context.Context, tokenHash string) (APIToken, User, error) {
	var u userRow
	t, err := scanToken(s.rdb.QueryRowContext(ctx, `
		SELECT t.id, t.user_id, t.name, t.token_hash, t.prefix, t.created_at, t.last_used_at, t.expires_at, t.scope,
			u.id, u.username, u.password_hash, u.is_admin, u.created_at, u.last_login_at, u.disabled_at
		FROM api_token t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1`, tokenHash), u.dest()...)
	if err != nil {
		return APIToken{}, User{}, wrap("get API token by hash", err)
	}
	return t, u.user(), nil
}

// GetAPIToken returns the token with the given id.
func (s *Store) GetAPIToken(ctx context.Context, id int64) (APIToken, error) {
	t, err := scanToken(s.rdb.QueryRowContext(ctx, "SELECT "+tokenCols+" FROM api_token WHERE id = $1", id))
	return t, wrap(fmt.Sprintf("get API token %d", id), err)
}

// TouchAPIToken records that the token was used at t.
func (s *Store) TouchAPIToken(ctx context.Context, id int64, t time.Time) error {
	return wrap(fmt.Sprintf("touch API token %d", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE api_token SET last_used_at = $2 WHERE id = $1", id, millis(t))))
}

// ListAPITokens returns the user's tokens, newest first.
func (s *Store) ListAPITokens(ctx context.Context, userID int64) ([]APIToken, error) {
	op := fmt.Sprintf("list API tokens of user %d", userID)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+tokenCols+" FROM api_token WHERE user_id = $1 ORDER BY id DESC", userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanTokenOnly)
	return out, wrap(op, err)
}

// ListAllAPITokens returns every user's tokens, newest first.
func (s *Store) ListAllAPITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+tokenCols+" FROM api_token ORDER BY id DESC")
	if err != nil {
		return nil, wrap("list API tokens", err)
	}
	out, err := collect(rows, scanTokenOnly)
	return out, wrap("list API tokens", err)
}

// DeleteAPIToken revokes a token; a missing one is ErrNotFound.
func (s *Store) DeleteAPIToken(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete API token %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM api_token WHERE id = $1", id)))
}
