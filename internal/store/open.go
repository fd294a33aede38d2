package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// openError is an error with a one-line message of its own that keeps the
// driver error it describes in its chain.
type openError struct {
	msg string
	err error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.err }

func isPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// sqlitePath extracts the file path from a SQLite database URL. The path
// is taken literally ('%' and '#' are part of the name); '?' is refused so
// that a query meant as options does not silently become part of a name.
func sqlitePath(url string) (string, error) {
	p := url
	switch {
	case strings.HasPrefix(p, "sqlite://"):
		p = strings.TrimPrefix(p, "sqlite://")
	case strings.HasPrefix(p, "file:"):
		p = strings.TrimPrefix(p, "file:")
	}
	switch {
	case p == "":
		return "", fmt.Errorf("store: SQLite database %q: empty path", url)
	case strings.Contains(p, "?"):
		return "", fmt.Errorf("store: SQLite database %q: query parameters are not supported", url)
	case p == ":memory:":
		return "", fmt.Errorf("store: SQLite database %q: in-memory databases are not supported", url)
	}
	return p, nil
}

// sqliteDSN builds the modernc DSN: a file: URI (path escaped) with the
// pragmas every connection runs when it opens.
func sqliteDSN(path string, write bool) string {
	u := neturl.URL{Scheme: "file", Opaque: escapeURIPath(path)}
	q := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)"
	if write {
		// The writer creates the file and switches it to WAL (persistent);
		// its transactions take the write lock at BEGIN so that waiting for
		// another process' writer goes through the busy timeout.
		q += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	} else {
		q += "&_pragma=query_only(ON)"
	}
	return u.String() + "?" + q
}

// escapeURIPath percent-escapes the characters that end or escape a path in
// a SQLite URI filename.
func escapeURIPath(p string) string {
	r := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	return r.Replace(filepath.ToSlash(p))
}

func openSQLite(ctx context.Context, url string) (rdb, wdb *sql.DB, err error) {
	path, err := sqlitePath(url)
	if err != nil {
		return nil, nil, err
	}
	if err := checkSQLitePath(path); err != nil {
		return nil, nil, err
	}
	wdb, err = sql.Open("sqlite", sqliteDSN(path, true))
	if err != nil {
		return nil, nil, sqliteOpenError(path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// The write connection runs journal_mode(WAL) as it opens, which reads
	// the file header: a file that is not a database fails here. The query
	// makes sure the schema of an existing file can be read.
	var n int
	if err := wdb.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		wdb.Close()
		return nil, nil, sqliteOpenError(path, err)
	}
	rdb, err = sql.Open("sqlite", sqliteDSN(path, false))
	if err == nil {
		readers := max(4, 2*runtime.NumCPU())
		rdb.SetMaxOpenConns(readers)
		rdb.SetMaxIdleConns(readers)
		err = rdb.PingContext(ctx)
	}
	if err != nil {
		wdb.Close()
		if rdb != nil {
			rdb.Close()
		}
		return nil, nil, sqliteOpenError(path, err)
	}
	return rdb, wdb, nil
}

// checkSQLitePath reports, before SQLite tries, a directory that does not
// exist or is not one, and a database path that is not a regular file or
// cannot be opened for reading and writing.
func checkSQLitePath(path string) error {
	fail := func(what string, err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &openError{fmt.Sprintf("store: cannot open SQLite database %s: %s: %v", path, what, err), err}
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fail("directory "+dir, err)
	}
	if !fi.IsDir() {
		return fail("directory "+dir, errors.New("not a directory"))
	}
	fi, err = os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fail("file", err)
	}
	if !fi.Mode().IsRegular() {
		return fail("file", errors.New("not a regular file"))
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fail("file", err)
	}
	return f.Close()
}

// sqliteOpenError describes a failure to open or first read a SQLite
// database in one line.
func sqliteOpenError(path string, err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return &openError{fmt.Sprintf("store: cannot open SQLite database %s: %v", path, err), err}
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_NOTADB:
		return &openError{fmt.Sprintf("store: %s is not a SQLite database (file is not a database)", path), err}
	case sqlite3.SQLITE_CORRUPT:
		return &openError{fmt.Sprintf("store: %s is a damaged SQLite database (database disk image is malformed)", path), err}
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM:
		dir := filepath.Dir(path)
		if f, terr := os.CreateTemp(dir, ".flownexus-write-test-*"); terr != nil {
			var pe *fs.PathError
			if errors.As(terr, &pe) {
				terr = pe.Err
			}
			return &openError{fmt.Sprintf("store: cannot open SQLite database %s: cannot create files in directory %s: %v", path, dir, terr), err}
		} else {
			f.Close()
			os.Remove(f.Name())
		}
	}
	return &openError{fmt.Sprintf("store: cannot open SQLite database %s: %s", path, sqliteMessage(se)), err}
}

// sqliteMessage drops the " (code)" suffix modernc appends to messages.
func sqliteMessage(se *sqlite.Error) string {
	msg := se.Error()
	if i := strings.LastIndex(msg, " ("); i > 0 && strings.HasSuffix(msg, ")") {
		if _, err := strconv.Atoi(msg[i+2 : len(msg)-1]); err == nil {
			return msg[:i]
		}
	}
	return msg
}

// pgPoolSize is the most connections to PostgreSQL one server opens.
const pgPoolSize = 32

// pgConnectTimeout bounds connecting to PostgreSQL unless the URL sets
// connect_timeout.
const pgConnectTimeout = 5 * time.Second

func openPostgres(ctx context.Context, url string) (*sql.DB, error) {
	password := ""
	if u, err := neturl.Parse(url); err == nil && u.User != nil {
		password, _ = u.User.Password()
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, &openError{"store: invalid PostgreSQL URL: " + oneLine(err.Error(), password), err}
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = pgConnectTimeout
	}
	db := stdlib.OpenDB(*cfg)
	// Connections are kept, not closed when returned: a new one costs a
	// TLS handshake (sslmode=prefer, pgx's default) and SCRAM, which made
	// connection churn a fifth of the server's CPU under a fleet
	// registering at once. Idle ones close after five minutes.
	db.SetMaxOpenConns(pgPoolSize)
	db.SetMaxIdleConns(pgPoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		where := cfg.Host
		if !strings.HasPrefix(where, "/") {
			where = net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		}
		verb := "reach" // no answer from a server
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
			verb = "connect to" // the server answered and refused
		}
		return nil, &openError{fmt.Sprintf("store: cannot %s PostgreSQL at %s: %s", verb, where, oneLine(err.Error(), password)), err}
	}
	return db, nil
}

// oneLine folds a multi-line driver message into one line, drops repeated
// lines (pgx reports each address it tried) and masks the password.
func oneLine(msg, password string) string {
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "xxxxx")
		if esc := neturl.QueryEscape(password); esc != password {
			msg = strings.ReplaceAll(msg, esc, "xxxxx")
		}
	}
	var parts []string
	seen := map[string]bool{}
	for line := range strings.SplitSeq(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || seen[line] {
			continue
		}
		seen[line] = true
		parts = append(parts, line)
	}
	return strings.Join(parts, " ")
}
