package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// User is an operator account. PasswordHash is whatever the caller stored
// (the store never hashes).
type User struct {
	ID           int64
	Username     string
	PasswordHash string
	IsAdmin      bool
	CreatedAt    time.Time
	LastLoginAt  time.Time // zero: never
	// DisabledAt is when the user was disabled, zero while enabled. A
	// disabled user may not log in and its API tokens are refused.
	DisabledAt time.Time
}

// Disabled reports whether the user is disabled.
func (u User) Disabled() bool { return !u.DisabledAt.IsZero() }

const userCols = "id, username, password_hash, is_admin, created_at, last_login_at, disabled_at"

func scanUser(r rowScanner) (User, error) {
	var row userRow
	if err := r.Scan(row.dest()...); err != nil {
		return User{}, err
	}
	return row.user(), nil
}

// userRow receives the columns of userCols, in order.
type userRow struct {
	u               User
	created         int64
	login, disabled sql.NullInt64
}

func (r *userRow) dest() []any {
	return []any{&r.u.ID, &r.u.Username, &r.u.PasswordHash, &r.u.IsAdmin, &r.created, &r.login, &r.disabled}
}

func (r *userRow) user() User {
	u := r.u
	u.CreatedAt, u.LastLoginAt, u.DisabledAt = fromMillis(r.created), fromNullMillis(r.login), fromNullMillis(r.disabled)
	return u
}

// CreateUser adds a user; a username already taken is ErrConflict.
func (s *Store) CreateUser(ctx context.Context, username, passwordHash string, isAdmin bool) (User, error) {
	op := fmt.Sprintf("create user %q", username)
	if username == "" {
		return User{}, fmt.Errorf("store: %s: empty username", op)
	}
	u, err := scanUser(s.wdb.QueryRowContext(ctx,
		"INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) RETURNING "+userCols,
		username, passwordHash, isAdmin, millis(s.now())))
	return u, wrap(op, err)
}

// GetUser returns the user with the given id.
func (s *Store) GetUser(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE id = $1", id))
	return u, wrap(fmt.Sprintf("get user %d", id), err)
}

// GetUserByName returns the user with the given username (exact match).
func (s *Store) GetUserByName(ctx context.Context, username string) (User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE username = $1", username))
	return u, wrap(fmt.Sprintf("get user %q", username), err)
}

// ListUsers returns all users ordered by username.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+userCols+" FROM users ORDER BY username")
	if err != nil {
		return nil, wrap("list users", err)
	}
	out, err := collect(rows, scanUser)
	return out, wrap("list users", err)
}

// SetPassword replaces the user's password hash and, in the same
// transaction, ends all of the user's dashboard sessions.
func (s *Store) SetPassword(ctx context.Context, id int64, passwordHash string) error {
	return wrap(fmt.Sprintf("set password of user %d", id), s.inTx(ctx, func(tx *sql.Tx) error {
		if err := requireRow(tx.ExecContext(ctx, "UPDATE users SET password_hash = $2 WHERE id = $1", id, passwordHash)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM web_session WHERE user_id = $1", id)
		return err
	}))
}

// SetAdmin grants or revokes the administrator flag.
func (s *Store) SetAdmin(ctx context.Context, id int64, isAdmin bool) error {
	return wrap(fmt.Sprintf("set admin of user %d", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE users SET is_admin = $2 WHERE id = $1", id, isAdmin)))
}

// DisableUser disables the user as of at: its API tokens are refused from
// then on, and its dashboard sessions are deleted (in the same
// transaction). A user already disabled keeps its first DisabledAt.
func (s *Store) DisableUser(ctx context.Context, id int64, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("store: disable user %d: zero time", id)
	}
	return wrap(fmt.Sprintf("disable user %d", id), s.inTx(ctx, func(tx *sql.Tx) error {
		if err := requireRow(tx.ExecContext(ctx,
			"UPDATE users SET disabled_at = COALESCE(disabled_at, $2) WHERE id = $1", id, millis(at))); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM web_session WHERE user_id = $1", id)
		return err
	}))
}

// EnableUser enables a disabled user again; enabling an enabled user does
// nothing.
func (s *Store) EnableUser(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("enable user %d", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE users SET disabled_at = NULL WHERE id = $1", id)))
}

// TouchLogin records a successful login at t.
func (s *Store) TouchLogin(ctx context.Context, id int64, t time.Time) error {
	return wrap(fmt.Sprintf("touch login of user %d", id), requireRow(s.wdb.ExecContext(ctx,
		"UPDATE users SET last_login_at = $2 WHERE id = $1", id, millis(t))))
}

// DeleteUser removes the user with its memberships and API tokens; the
// operations it queued remain, without a user, and its audit entries keep
// its name (AuditEntry.Actor).
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	return wrap(fmt.Sprintf("delete user %d", id),
		requireRow(s.wdb.ExecContext(ctx, "DELETE FROM users WHERE id = $1", id)))
}

// Membership gives a user a role in a site: Site Admin, or Site User
// with the flags of the site permissions it has there (package auth).
type Membership struct {
	UserID int64
	SiteID int64
	Role   auth.SiteRole
	Flags  auth.Flags // a Site User's; auth.AllFlags for a Site Admin
}

// Grant is what the membership grants, for auth.Subject.
func (m Membership) Grant() auth.Grant {
	return auth.Grant{SiteID: m.SiteID, Role: m.Role, Flags: m.Flags}
}

const membershipCols = "user_id, site_id, role, flags"

func scanMembership(r rowScanner) (Membership, error) {
	var m Membership
	err := r.Scan(&m.UserID, &m.SiteID, &m.Role, &m.Flags)
	return m, err
}

// SetMembership gives the user the role in the site with the flags (kept
// for a Site User; a Site Admin's are auth.AllFlags), replacing any
// membership it had there. A missing user or site is ErrConflict.
func (s *Store) SetMembership(ctx context.Context, userID, siteID int64, role auth.SiteRole, flags auth.Flags) error {
	op := fmt.Sprintf("set membership of user %d in site %d", userID, siteID)
	switch {
	case role == auth.SiteAdmin:
		flags = auth.AllFlags
	case role != auth.SiteUser:
		return fmt.Errorf("store: %s: invalid role %q (want %s or %s)", op, role, auth.SiteAdmin, auth.SiteUser)
	case flags&^auth.AllFlags != 0:
		return fmt.Errorf("store: %s: invalid flags %#x", op, flags)
	}
	_, err := s.wdb.ExecContext(ctx, `
		INSERT INTO membership (user_id, site_id, role, flags) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, site_id) DO UPDATE SET role = excluded.role, flags = excluded.flags`,
		userID, siteID, role, int64(flags))
	return wrap(op, err)
}

// GetMembership returns the user's membership in the site.
func (s *Store) GetMembership(ctx context.Context, userID, siteID int64) (Membership, error) {
	m, err := scanMembership(s.rdb.QueryRowContext(ctx,
		"SELECT "+membershipCols+" FROM membership WHERE user_id = $1 AND site_id = $2", userID, siteID))
	return m, wrap(fmt.Sprintf("get membership of user %d in site %d", userID, siteID), err)
}

// ListMemberships returns the user's memberships ordered by site id.
func (s *Store) ListMemberships(ctx context.Context, userID int64) ([]Membership, error) {
	op := fmt.Sprintf("list memberships of user %d", userID)
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT "+membershipCols+" FROM membership WHERE user_id = $1 ORDER BY site_id", userID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanMembership)
	return out, wrap(op, err)
}

// Subject returns the authorization subject of the user: its global
// flags and the grants of its memberships.
func (s *Store) Subject(ctx context.Context, u User) (auth.Subject, error) {
	sub := auth.Subject{UserID: u.ID, Name: u.Username, Admin: u.IsAdmin, Disabled: u.Disabled()}
	if u.IsAdmin || u.Disabled() {
		return sub, nil
	}
	ms, err := s.ListMemberships(ctx, u.ID)
	if err != nil {
		return auth.Subject{}, err
	}
	for _, m := range ms {
		sub.Grants = append(sub.Grants, m.Grant())
	}
	return sub, nil
}

// ListSiteMembers returns the site's memberships ordered by user id.
func (s *Store) ListSiteMembers(ctx context.Context, siteID int64) ([]Membership, error) {
	op := fmt.Sprintf("list members of site %d", siteID)
	rows, err := s.rdb.QueryContext(ctx,
		"SELECT "+membershipCols+" FROM membership WHERE site_id = $1 ORDER BY user_id", siteID)
	if err != nil {
		return nil, wrap(op, err)
	}
	out, err := collect(rows, scanMembership)
	return out, wrap(op, err)
}

// DeleteMembership removes the user from the site.
func (s *Store) DeleteMembership(ctx context.Context, userID, siteID int64) error {
	return wrap(fmt.Sprintf("delete membership of user %d in site %d", userID, siteID), requireRow(s.wdb.ExecContext(ctx,
		"DELETE FROM membership WHERE user_id = $1 AND site_id = $2", userID, siteID)))
}
