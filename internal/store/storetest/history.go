package storetest

import (
	"database/sql"
	"testing"
)

// HistoryRow is one row of the value history (table resource) as History
// reads it.
type HistoryRow struct {
	EndpointID int64
	Path       string
	ReceivedAt int64           // Unix milliseconds
	Float      sql.NullFloat64 // the value when it is a float
}

// History reads the value history of db in the order it was inserted (by
// id: with one writer, commit order), for tests that check what was stored
// and in which order.
func History(t testing.TB, db *sql.DB) []HistoryRow {
	t.Helper()
	rows, err := db.Query("SELECT endpoint_id, path, received_at, value_float FROM resource ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []HistoryRow
	for rows.Next() {
		var r HistoryRow
		if err := rows.Scan(&r.EndpointID, &r.Path, &r.ReceivedAt, &r.Float); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
