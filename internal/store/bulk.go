package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Multi-row statements. On SQLite a batch of rows is cut into chunks of
// insertChunk rows and a remainder in power-of-two sizes (chunks), so that
// nine statements per kind serve every batch size, each prepared once on
// the write connection (prepareMissing). On PostgreSQL a statement takes
// one array per column (unnest), so one statement, cached by pgx per
// connection, takes any number of rows.

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

// bulkStatements are the kinds' statements: into, then the rows, then
// tail. types are the PostgreSQL types of the columns: there the rows are
// passed as one array per column and expanded with unnest, so that a
// statement has as many parameters as columns whatever its rows, and
// PostgreSQL plans it once.
var bulkStatements = [nBulkKinds]struct {
	into  string
	types []string
	tail  string
}{
	bulkResource: {"INSERT INTO resource (" + resourceCols + ")", resourceTypes, ""},
	bulkLatest: {"INSERT INTO resource_latest (" + resourceCols + ")", resourceTypes, `
		ON CONFLICT (endpoint_id, path) DO UPDATE SET
			value_type = excluded.value_type, value_int = excluded.value_int,
			value_float = excluded.value_float, value_text = excluded.value_text,
			value_blob = excluded.value_blob, device_time = excluded.device_time,
			received_at = excluded.received_at, event_id = excluded.event_id
		WHERE excluded.received_at > resource_latest.received_at
			OR (excluded.received_at = resource_latest.received_at
				AND COALESCE(excluded.device_time, 0) >= COALESCE(resource_latest.device_time, 0))`},
	bulkEndpoint: {"INSERT INTO endpoint (" + registerCols + ")", []string{"text", "text", "boolean", "bigint", "bigint",
		"text", "bigint", "text", "text", "text", "boolean", "text", "text", "bigint", "bigint"}, `
		ON CONFLICT (name) DO UPDATE SET
			registration_id = excluded.registration_id, online = TRUE,
			registered_at = excluded.registered_at, last_seen = excluded.last_seen,
			address = excluded.address, lifetime = excluded.lifetime, binding = excluded.binding,
			lwm2m_version = excluded.lwm2m_version, sms_number = excluded.sms_number,
			queue_mode = excluded.queue_mode, object_links = excluded.object_links,
			transport = excluded.transport, updated_at = excluded.updated_at
		RETURNING ` + endpointCols},
	bulkEvent: {"INSERT INTO event (id, endpoint_id, kind, time, received_at)",
		[]string{"bigint", "bigint", "text", "bigint", "bigint"}, ""},
	bulkObservation: {"INSERT INTO observation (" + observationCols + ")",
		[]string{"bytea", "bigint", "text", "text", "boolean", "integer", "bigint", "text", "bigint", "bigint", "text"}, ""},
}

// resourceTypes are the PostgreSQL types of resourceCols.
var resourceTypes = []string{"bigint", "text", "integer", "integer", "integer", "integer", "text",
	"bigint", "double precision", "text", "bytea", "bigint", "bigint", "bigint"}

const (
	eventNCols       = 5
	observationNCols = 11
)

// insertChunk is the most rows one SQLite statement carries (at most 15
// parameters each, far below SQLite's limit of 32766); pgChunk is the
// most one PostgreSQL statement carries.
const (
	insertChunk = 256
	pgChunk     = 10000
)

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
	if mark == '$' {
		n = 0 // one statement for every size
	}
	key := insertSQLKey{k, n, mark}
	if q, ok := insertSQLCache.Load(key); ok {
		return q.(string)
	}
	st := bulkStatements[k]
	var b strings.Builder
	b.WriteString(st.into)
	if mark == '$' {
		b.WriteString(" SELECT * FROM unnest(")
		for j, typ := range st.types {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d::%s[]", j+1, typ)
		}
		b.WriteString(")")
	} else {
		b.WriteString(" VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for j := range st.types {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteByte(mark)
			}
			b.WriteByte(')')
		}
	}
	b.WriteString(st.tail)
	q := b.String()
	insertSQLCache.Store(key, q)
	return q
}

// in returns `col IN (list)` for vals, of PostgreSQL type typ, as
// parameters after the first `after` ones, and the arguments: on
// PostgreSQL one array parameter (col = ANY($n)), on SQLite one parameter
// per value.
func (s *Store) in(col string, after int, typ string, vals []any) (string, []any, error) {
	if s.dialect == DialectSQLite {
		return inSQL(col, len(vals)), vals, nil
	}
	arr, err := pgArray(typ, vals)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", col, err)
	}
	return fmt.Sprintf("%s = ANY($%d::%s[])", col, after+1, typ), []any{arr}, nil
}

// inSQL returns col + " IN (?, ?, ...)" with n parameters.
func inSQL(col string, n int) string {
	return col + " IN (" + strings.Repeat("?, ", n-1) + "?)"
}

// pgColumns turns the n rows of k in args (row after row) into one array
// per column, for the unnest of bulkSQLFor.
func pgColumns(k bulkKind, n int, args []any) ([]any, error) {
	types := bulkStatements[k].types
	cols := len(types)
	if len(args) != n*cols {
		return nil, fmt.Errorf("%d arguments for %d rows of %d columns", len(args), n, cols)
	}
	out := make([]any, cols)
	col := make([]any, n)
	for j, typ := range types {
		for i := range n {
			col[i] = args[i*cols+j]
		}
		arr, err := pgArray(typ, col)
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", j+1, err)
		}
		out[j] = arr
	}
	return out, nil
}

// pgArray converts vals, each nil or a value of PostgreSQL type typ, into
// a slice pgx encodes as an array of typ with NULLs.
func pgArray(typ string, vals []any) (any, error) {
	bad := func(v any) error { return fmt.Errorf("%T for %s", v, typ) }
	switch typ {
	case "bigint", "integer":
		out := make([]*int64, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case int64:
				out[i] = &v
			default:
				return nil, bad(v)
			}
		}
		return out, nil
	case "double precision":
		out := make([]*float64, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case float64:
				out[i] = &v
			default:
				return nil, bad(v)
			}
		}
		return out, nil
	case "text":
		out := make([]*string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case string:
				out[i] = &v
			case Transport:
				s := string(v)
				out[i] = &s
			default:
				return nil, bad(v)
			}
		}
		return out, nil
	case "boolean":
		out := make([]*bool, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case bool:
				out[i] = &v
			default:
				return nil, bad(v)
			}
		}
		return out, nil
	case "bytea":
		out := make([][]byte, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case nil:
			case []byte:
				if v == nil {
					v = []byte{} // a nil slice would be NULL
				}
				out[i] = v
			default:
				return nil, bad(v)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown type %s", typ)
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

// execBulk runs the statement of kind k in tx for the n rows in args
// (row after row).
func (s *Store) execBulk(ctx context.Context, tx *sql.Tx, k bulkKind, n int, args []any) (sql.Result, error) {
	if st := s.bulkStmt(ctx, tx, k, n); st != nil {
		return st.ExecContext(ctx, args...)
	}
	args, err := s.bulkArgs(k, n, args)
	if err != nil {
		return nil, err
	}
	return tx.ExecContext(ctx, s.bulkSQL(k, n), args...)
}

// queryBulk is execBulk for a statement that returns rows.
func (s *Store) queryBulk(ctx context.Context, tx *sql.Tx, k bulkKind, n int, args []any) (*sql.Rows, error) {
	if st := s.bulkStmt(ctx, tx, k, n); st != nil {
		return st.QueryContext(ctx, args...)
	}
	args, err := s.bulkArgs(k, n, args)
	if err != nil {
		return nil, err
	}
	return tx.QueryContext(ctx, s.bulkSQL(k, n), args...)
}

// bulkArgs are the arguments of bulkSQL for the n rows in args: args
// itself on SQLite, one array per column on PostgreSQL.
func (s *Store) bulkArgs(k bulkKind, n int, args []any) ([]any, error) {
	if s.dialect == DialectSQLite {
		return args, nil
	}
	return pgColumns(k, n, args)
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

// chunks cuts s into the pieces one statement takes: on SQLite pieces of
// insertChunk elements and a remainder in power-of-two sizes (so that
// nine prepared statements serve every size), on PostgreSQL, whose
// statements take arrays of any size, pieces of up to pgChunk.
func chunks[T any](st *Store, s []T) func(yield func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := pgChunk
			if st.dialect == DialectSQLite {
				k = insertChunk
				for k > len(s) {
					k >>= 1
				}
			}
			k = min(k, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}
