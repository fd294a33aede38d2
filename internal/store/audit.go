package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AuditEntry records one thing an operator (or the system) did.
type AuditEntry struct {
	ID         int64
	Time       time.Time // zero on append means now
	UserID     int64     // 0: not a user (the system, a device)
	Actor      string    // who, by name, kept when the user is deleted
	Action     string    // e.g. "endpoint.write", "user.create"
	Target     string    // e.g. an endpoint name
	Detail     json.RawMessage
	RemoteAddr string
}

const auditCols = "id, time, user_id, actor, action, target, detail, remote_addr"

func scanAudit(r rowScanner) (AuditEntry, error) {
	var a AuditEntry
	var t int64
	var user sql.NullInt64
	var detail sql.NullString
	if err := r.Scan(&a.ID, &t, &user, &a.Actor, &a.Action, &a.Target, &detail, &a.RemoteAddr); err != nil {
		return AuditEntry{}, err
	}
	a.Time, a.UserID, a.Detail = fromMillis(t), user.Int64, fromJSONText(detail)
	return a, nil
}

// AppendAudit appends an entry to the audit log and returns it as stored.
func (s *Store) AppendAudit(ctx context.Context, a AuditEntry) (AuditEntry, error) {
	return s.appendAudit(ctx, s.wdb, a)
}

// AppendAuditTx is AppendAudit inside the transaction tx (see WithTx), so
// that the entry commits with the change it records.
func (s *Store) AppendAuditTx(ctx context.Context, tx *sql.Tx, a AuditEntry) (AuditEntry, error) {
	return s.appendAudit(ctx, tx, a)
}

func (s *Store) appendAudit(ctx context.Context, q querier, a AuditEntry) (AuditEntry, error) {
	op := fmt.Sprintf("append audit %q", a.Action)
	if a.Action == "" {
		return AuditEntry{}, fmt.Errorf("store: %s: empty action", op)
	}
	detail, err := jsonText("detail", a.Detail)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("store: %s: %w", op, err)
	}
	t := a.Time
	if t.IsZero() {
		t = s.now()
	}
	out, err := scanAudit(q.QueryRowContext(ctx, `
		INSERT INTO audit_log (time, user_id, actor, action, target, detail, remote_addr)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+auditCols,
		millis(t), nullID(a.UserID), a.Actor, a.Action, a.Target, detail, a.RemoteAddr))
	return out, wrap(op, err)
}

// AuditFilter selects entries for ListAudit; zero fields do not restrict.
type AuditFilter struct {
	UserID   int64
	Action   string    // only entries of this action
	BeforeID int64     // entries older than this one: the next page
	Since    time.Time // entries at or after it (zero: any)
	Until    time.Time // entries before it (zero: any)
	Limit    int       // <= 0: 100
}

// ListAudit returns audit entries matching f, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.UserID != 0 {
		where = append(where, "user_id = "+arg(f.UserID))
	}
	if f.Action != "" {
		where = append(where, "action = "+arg(f.Action))
	}
	if f.BeforeID != 0 {
		where = append(where, "id < "+arg(f.BeforeID))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(millis(f.Since)))
	}
	if !f.Until.IsZero() {
		where = append(where, "time < "+arg(millis(f.Until)))
	}
	q := "SELECT " + auditCols + " FROM audit_log"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT " + arg(limitOr(f.Limit, 100))
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list audit", err)
	}
	out, err := collect(rows, scanAudit)
	return out, wrap("list audit", err)
}

// Actor is who asked for a change, for the audit log: an operator through
// the API, or a command (the CLI, the demo).
type Actor struct {
	UserID     int64  // 0 for a command
	Name       string // user name, or the command's ("cli", "demo")
	RemoteAddr string // of an API request; "" for a command
}

// Entry is the audit entry of a's action on target.
func (a Actor) Entry(action, target string, detail json.RawMessage) AuditEntry {
	return AuditEntry{UserID: a.UserID, Actor: a.Name, Action: action, Target: target, Detail: detail, RemoteAddr: a.RemoteAddr}
}
