package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// Multi-row statements. A batch of rows is cut into chunks of insertChunk
// rows and a remainder in power-of-two sizes (chunks), so that nine
// statements per kind serve every batch size: on SQLite each is prepared
// once on the write connection (prepareMissing), on PostgreSQL pgx caches
// them per connection.

// bulkKind names a multi-row statement.
type bulkKind uint8

const (
	bulkResource    bulkKind = iota // history rows
	bulkLatest                      // the resource_latest upsert
	bulkEndpoint                    // the Register upsert, RETURNING the endpoints
	bulkEvent                       // events with their ids
	bulkObservation                 // observations
	nBulkKinds
)

// bulkStatements are the kinds' statements: head, then the rows of cols
// parameters each, then tail.
var bulkStatements = [nBulkKinds]struct {
	head string
	cols int
	tail string
}{
	bulkResource: {"INSERT INTO resource (" + resourceCols + ") VALUES ", resourceNCols, ""},
	bulkLatest: {"INSERT INTO resource_latest (" + resourceCols + ") VALUES ", resourceNCols, `
		ON CONFLICT (endpoint_id, path) DO UPDATE SET
			value_type = excluded.value_type, value_int = excluded.value_int,
			value_float = excluded.value_float, value_text = excluded.value_text,
			value_blob = excluded.value_blob, device_time = excluded.device_time,
			received_at = excluded.received_at, event_id = excluded.event_id
		WHERE excluded.received_at > resource_latest.received_at
			OR (excluded.received_at = resource_latest.received_at
				AND COALESCE(excluded.device_time, 0) >= COALESCE(resource_latest.device_time, 0))`},
	bulkEndpoint: {"INSERT INTO endpoint (" + registerCols + ") VALUES ", endpointNCols, `
		ON CONFLICT (name) DO UPDATE SET
			registration_id = excluded.registration_id, online = TRUE,
			registered_at = excluded.registered_at, last_seen = excluded.last_seen,
			address = excluded.address, lifetime = excluded.lifetime, binding = excluded.binding,
			lwm2m_version = excluded.lwm2m_version, sms_number = excluded.sms_number,
			queue_mode = excluded.queue_mode, object_links = excluded.object_links,
			transport = excluded.transport, updated_at = excluded.updated_at
		RETURNING ` + endpointCols},
	bulkEvent:       {"INSERT INTO event (id, endpoint_id, kind, time, received_at) VALUES ", eventNCols, ""},
	bulkObservation: {"INSERT INTO observation (" + observationCols + ") VALUES ", observationNCols, ""},
}

const (
	eventNCols       = 5
	observationNCols = 7
)

// insertChunk is the most rows one statement carries (at most 15
// parameters each, far below SQLite's limit of 32766).
const insertChunk = 256

type insertSQLKey struct {
	kind bulkKind
	rows int
	mark byte
}

var insertSQLCache sync.Map // insertSQLKey -> string

// mark is the dialect's parameter mark for bulkSQL and inSQL: '$' ("$1",
// "$2", ...) on PostgreSQL, anonymous '?' on SQLite, which finds the name
// of each named parameter by a linear search, making the binding of
// thousands of "$N" or "?N" quadratic (seconds for one statement).
func (s *Store) mark() byte {
	if s.dialect == DialectSQLite {
		return '?'
	}
	return '$'
}

// param is parameter i (from 1) in the dialect's marks.
func (s *Store) param(i int) string {
	if s.dialect == DialectSQLite {
		return "?"
	}
	return "$" + strconv.Itoa(i)
}

// bulkSQL returns the statement of kind k for n rows in s's dialect.
func (s *Store) bulkSQL(k bulkKind, n int) string { return bulkSQLFor(k, n, s.mark()) }

func bulkSQLFor(k bulkKind, n int, mark byte) string {
	key := insertSQLKey{k, n, mark}
	if q, ok := insertSQLCache.Load(key); ok {
		return q.(string)
	}
	st := bulkStatements[k]
	var b strings.Builder
	b.WriteString(st.head)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range st.cols {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteByte(mark)
			if mark == '$' {
				b.WriteString(strconv.Itoa(i*st.cols + j + 1))
			}
		}
		b.WriteByte(')')
	}
	b.WriteString(st.tail)
	q := b.String()
	insertSQLCache.Store(key, q)
	return q
}

// inSQL returns head + " IN (p, p, ...)" + tail with n parameters after
// the first `after` ones, in mark's style.
func inSQL(head string, after, n int, mark byte, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(" IN (")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte(mark)
		if mark == '$' {
			b.WriteString(strconv.Itoa(after + i + 1))
		}
	}
	b.WriteByte(')')
	b.WriteString(tail)
	return b.String()
}

// bulkStmt returns the SQLite statement prepared for kind k and n rows,
// bound to tx; nil on PostgreSQL, and when it is not prepared yet: then
// the caller runs the statement's text (correct, only slower) and
// prepareMissing prepares it after the transaction.
func (s *Store) bulkStmt(ctx context.Context, tx *sql.Tx, k bulkKind, n int) *sql.Stmt {
	if s.dialect != DialectSQLite {
		return nil
	}
	key := insertSQLKey{k, n, '?'}
	s.insertsMu.Lock()
	stmt, ok := s.inserts[key]
	if !ok {
		if s.inserts == nil {
			s.inserts = map[insertSQLKey]*sql.Stmt{}
		}
		s.inserts[key] = nil // to prepare
	}
	s.insertsMu.Unlock()
	if stmt == nil {
		return nil
	}
	return tx.StmtContext(ctx, stmt)
}

// execBulk runs the n-row statement of kind k in tx.
func (s *Store) execBulk(ctx context.Context, tx *sql.Tx, k bulkKind, n int, args []any) (sql.Result, error) {
	if st := s.bulkStmt(ctx, tx, k, n); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.bulkSQL(k, n), args...)
}

// queryBulk runs the n-row statement of kind k in tx and returns its rows.
func (s *Store) queryBulk(ctx context.Context, tx *sql.Tx, k bulkKind, n int, args []any) (*sql.Rows, error) {
	if st := s.bulkStmt(ctx, tx, k, n); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, s.bulkSQL(k, n), args...)
}

// prepareMissing prepares, on SQLite, the statements bulkStmt found
// unprepared: parsing a statement of thousands of parameters costs more
// than running it, so each is parsed once, when first used. It must run
// outside a write transaction, as preparing needs the one write
// connection. A statement that fails to prepare is used unprepared and
// tried again next time.
func (s *Store) prepareMissing(ctx context.Context) {
	if s.dialect != DialectSQLite {
		return
	}
	// Not under insertsMu: preparing waits for the write connection,
	// which a transaction in bulkStmt may hold.
	var missing []insertSQLKey
	s.insertsMu.Lock()
	for key, st := range s.inserts {
		if st == nil {
			missing = append(missing, key)
		}
	}
	s.insertsMu.Unlock()
	for _, key := range missing {
		st, err := s.wdb.PrepareContext(ctx, bulkSQLFor(key.kind, key.rows, key.mark))
		s.insertsMu.Lock()
		switch old, ok := s.inserts[key]; {
		case err != nil:
			if ok && old == nil {
				delete(s.inserts, key) // to be tried again when next used
			}
		case !ok || old != nil: // closed, or prepared by another call
			st.Close()
		default:
			s.inserts[key] = st
		}
		s.insertsMu.Unlock()
	}
}

// chunks cuts s into pieces of insertChunk elements and a remainder of
// power-of-two sizes.
func chunks[T any](s []T) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := insertChunk
			for k > len(s) {
				k >>= 1
			}
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}
