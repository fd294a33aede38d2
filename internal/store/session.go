package store

import (
	"context"
	"fmt"
	"time"
)

// Session is a dashboard login (package web). ID is the SHA-256 (hex) of
// the random token the browser holds; the store never sees the token.
// CSRFToken is the session's token for state-changing requests.
type Session struct {
	ID         string
	UserID     int64
	CSRFToken  string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // the absolute end, whatever the activity
}

const sessionCols = "id, user_id, csrf_token, created_at, last_seen_at, expires_at"

func scanSession(r rowScanner) (Session, error) {
	var s Session
	var c, l, e int64
	if err := r.Scan(&s.ID, &s.UserID, &s.CSRFToken, &c, &l, &e); err != nil {
		return Session{}, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMillis(c), fromMillis(l), fromMillis(e)
	return s, nil
}

// CreateSession stores a new session; LastSeenAt zero means CreatedAt. An
// id already stored or a missing user is ErrConflict.
func (s *Store) CreateSession(ctx context.Context, ss Session) error {
	op := fmt.Sprintf("create session of user %d", ss.UserID)
	if ss.ID == "" || ss.CSRFToken == "" {
		return fmt.Errorf("store: %s: empty id or CSRF token", op)
	}
	if ss.LastSeenAt.IsZero() {
		ss.LastSeenAt = ss.CreatedAt
	}
	_, err := s.wdb.ExecContext(ctx, "INSERT INTO web_session ("+sessionCols+") VALUES ($1, $2, $3, $4, $5, $6)",
		ss.ID, ss.UserID, ss.CSRFToken, millis(ss.CreatedAt), millis(ss.LastSeenAt), millis(ss.ExpiresAt))
	return wrap(op, err)
}

// GetSession returns the session with the given id (the token's hash)
// and its user; ErrNotFound when there is none. It does not judge expiry:
// the caller does, with its timeouts.
func (s *Store) GetSession(ctx context.Context, id string) (Session, User, error) {
	var u userRow
	var c, l, e int64
	var ss Session
	dest := append([]any{&ss.ID, &ss.UserID, &ss.CSRFToken, &c, &l, &e}, u.dest()...)
	err := s.rdb.QueryRowContext(ctx, `SELECT s.id, s.user_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at,
		u.id, u.username, u.password_hash, u.is_admin, u.created_at, u.last_login_at, u.disabled_at
		FROM web_session s JOIN users u ON u.id = s.user_id WHERE s.id = $1`, id).Scan(dest...)
	if err != nil {
		return Session{}, User{}, wrap("get session", err)
	}
	ss.CreatedAt, ss.LastSeenAt, ss.ExpiresAt = fromMillis(c), fromMillis(l), fromMillis(e)
	return ss, u.user(), nil
}

// TouchSession records activity of the session at t.
func (s *Store) TouchSession(ctx context.Context, id string, t time.Time) error {
	return wrap("touch session", requireRow(s.wdb.ExecContext(ctx,
		"UPDATE web_session SET last_seen_at = $2 WHERE id = $1", id, millis(t))))
}

// DeleteSession removes the session; a missing one is not an error
// (logging out twice is fine).
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.wdb.ExecContext(ctx, "DELETE FROM web_session WHERE id = $1", id)
	return wrap("delete session", err)
}

// DeleteUserSessions removes all sessions of the user and returns how
// many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, "DELETE FROM web_session WHERE user_id = $1", userID)
	if err != nil {
		return 0, wrap(fmt.Sprintf("delete sessions of user %d", userID), err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteExpiredSessions removes the sessions that ended by now: at or
// past their absolute end, or last seen at or before idleBefore.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleBefore time.Time) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, "DELETE FROM web_session WHERE expires_at <= $1 OR last_seen_at <= $2",
		millis(now), millis(idleBefore))
	if err != nil {
		return 0, wrap("delete expired sessions", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ListSessions returns the user's sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, userID int64) ([]Session, error) {
	op := fmt.Sprintf("list sessions of user %d", userID)
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+sessionCols+" FROM web_session WHERE user_id = $1 ORDER BY created_at DESC, id", userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanSession)
	return out, wrap(op, err)
}
