package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// ProvisionEndpoints creates the named endpoints, offline, as created by an
// operator, or marks existing ones so, in one transaction with one audit
// entry (action "endpoint.provision") per endpoint; the audit entries take
// UserID, Actor and RemoteAddr from by. It returns how many endpoints were
// new. A provisioned endpoint is known to the register policy "known" and
// is never removed by RemoveStaleEndpoints.
func (s *Store) ProvisionEndpoints(ctx context.Context, names []string, by AuditEntry) (created int, err error) {
	now := millis(s.now())
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		for _, name := range names {
			op := fmt.Sprintf("provision endpoint %q", name)
			res, err := tx.ExecContext(ctx, "UPDATE endpoint SET provisioned = TRUE WHERE name = $1", name)
			if err != nil {
				return wrap(op, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return wrap(op, err)
			}
			fresh := n == 0
			if fresh {
				if _, err := tx.ExecContext(ctx, `INSERT INTO endpoint (name, provisioned, created_at, updated_at)
					VALUES ($1, TRUE, $2, $2)`, name, now); err != nil {
					return wrap(op, err)
				}
			}
			if fresh {
				created++
			}
			detail, _ := json.Marshal(map[string]bool{"created": fresh})
			a := by
			a.Action, a.Target, a.Detail = "endpoint.provision", name, detail
			if _, err := s.appendAudit(ctx, tx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return created, nil
}

// IsKnownEndpoint reports whether the named endpoint was provisioned by an
// operator (ProvisionEndpoints) or has a DTLS credential.
func (s *Store) IsKnownEndpoint(ctx context.Context, name string) (bool, error) {
	var known bool
	err := s.rdb.QueryRowContext(ctx, `SELECT
		EXISTS (SELECT 1 FROM endpoint WHERE name = $1 AND provisioned) OR
		EXISTS (SELECT 1 FROM credential WHERE endpoint_name = $1)`, name).Scan(&known)
	return known, wrap(fmt.Sprintf("is endpoint %q known", name), err)
}

// RemoveStaleEndpoints deletes, and returns the names of, at most limit
// endpoints that are offline and were last heard from before before, and
// that nobody has a stake in: not provisioned, without a credential, a
// site or an operation, and with no stored value beyond their registration
// history (object 10240). Such endpoints are left behind by devices that
// registered once and went away, or by a flood of made-up names.
func (s *Store) RemoveStaleEndpoints(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.wdb.QueryContext(ctx, `
		DELETE FROM endpoint WHERE id IN (
			SELECT e.id FROM endpoint e
			WHERE NOT e.online AND NOT e.provisioned AND e.site_id IS NULL
				AND COALESCE(e.last_seen, e.created_at) < $1
				AND NOT EXISTS (SELECT 1 FROM credential c WHERE c.endpoint_name = e.name)
				AND NOT EXISTS (SELECT 1 FROM endpoint_operation o WHERE o.endpoint_id = e.id)
				AND NOT EXISTS (SELECT 1 FROM resource r WHERE r.endpoint_id = e.id AND r.object_id <> 10240)
			LIMIT $2)
		RETURNING name`, millis(before), limitOr(limit, 1000))
	if err != nil {
		return nil, wrap("remove stale endpoints", err)
	}
	names, err := collect(rows, func(r rowScanner) (string, error) {
		var n string
		return n, r.Scan(&n)
	})
	return names, wrap("remove stale endpoints", err)
}
