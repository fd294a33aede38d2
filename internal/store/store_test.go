package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

var allTables = []string{
	"site", "endpoint", "resource_type", "event", "resource", "resource_latest", "event_resource",
	"users", "membership", "api_token", "endpoint_operation", "firmware", "firmware_update",
	"audit_log", "credential", "setting", "firmware_campaign", "firmware_campaign_device",
}

func TestMigrateFromEmpty(t *testing.T) {
	ctx := context.Background()
	forEachEngineWith(t, false, func(t *testing.T, s *Store) {
		if engine := path.Base(t.Name()); s.Dialect() != engine {
			t.Errorf("Dialect() = %q, want %q", s.Dialect(), engine)
		}
		cur, latest, err := s.SchemaVersion(ctx)
		if err != nil || cur != 0 || latest < 1 {
			t.Fatalf("SchemaVersion() = %d, %d, %v; want 0, >= 1, nil", cur, latest, err)
		}
		if err := s.CheckSchema(ctx); !errors.Is(err, ErrSchemaOutdated) {
			t.Fatalf("CheckSchema() on an empty database = %v, want ErrSchemaOutdated", err)
		}
		applied, err := s.Migrate(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every embedded migration, in order; numbers are assigned ahead
		// of merging, so the sequence may have gaps.
		var want []int64
		for _, src := range s.goose.ListSources() {
			want = append(want, src.Version)
		}
		if !slices.Equal(applied, want) || applied[0] != 1 || applied[len(applied)-1] != latest {
			t.Errorf("Migrate applied %v, want %v (1..%d)", applied, want, latest)
		}
		cur, _, err = s.SchemaVersion(ctx)
		if err != nil || cur != latest {
			t.Fatalf("after Migrate: SchemaVersion() = %d, %v; want %d", cur, err, latest)
		}
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema() after Migrate = %v", err)
		}
		if applied, err := s.Migrate(ctx); err != nil || len(applied) != 0 {
			t.Fatalf("second Migrate = %v, %v; want nothing applied", applied, err)
		}
		for _, table := range allTables {
			var n int
			if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
				t.Errorf("table %s: count = %d, %v", table, n, err)
			}
		}
	})
}

func TestSchemaTooNew(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.WriteDB().ExecContext(ctx,
			"INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, TRUE)"); err != nil {
			t.Fatal(err)
		}
		cur, latest, err := s.SchemaVersion(ctx)
		if err != nil || cur != 999 {
			t.Fatalf("SchemaVersion() = %d, %d, %v; want 999", cur, latest, err)
		}
		err = s.CheckSchema(ctx)
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("CheckSchema() = %v, want ErrSchemaTooNew", err)
		}
		if !strings.Contains(err.Error(), "999") || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", latest)) {
			t.Errorf("CheckSchema() error %q does not name both versions", err)
		}
		if _, err := s.Migrate(ctx); !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Migrate() = %v, want ErrSchemaTooNew", err)
		}
	})
}

// Migration 2 adds endpoint.transport: existing endpoints are plain CoAP
// unless they are online and have credentials (refused over plain CoAP);
// only 'udp' and 'dtls' are accepted; down and up again keeps the rows.
func TestMigrateEndpointTransport(t *testing.T) {
	ctx := context.Background()
	forEachEngineWith(t, false, func(t *testing.T, s *Store) {
		if _, err := s.goose.UpTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := s.WriteDB().ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		for _, ep := range []struct {
			name   string
			online bool
		}{{"online-cred", true}, {"online-plain", true}, {"offline-cred", false}} {
			regID := any(nil)
			if ep.online {
				regID = "r-" + ep.name
			}
			exec("INSERT INTO endpoint (name, registration_id, online, created_at, updated_at) VALUES ($1, $2, $3, 0, 0)",
				ep.name, regID, ep.online)
		}
		for _, name := range []string{"online-cred", "offline-cred"} {
			exec("INSERT INTO credential (endpoint_name, kind, created_at) VALUES ($1, 'x509', 0)", name)
		}
		check := func(when string) {
			t.Helper()
			for name, want := range map[string]Transport{
				"online-cred": TransportDTLS, "online-plain": TransportUDP, "offline-cred": TransportUDP,
			} {
				if e, err := s.GetEndpoint(ctx, name); err != nil || e.Transport != want {
					t.Errorf("%s: %s transport = %q, %v; want %q", when, name, e.Transport, err, want)
				}
			}
		}
		if applied, err := s.Migrate(ctx); err != nil || len(applied) == 0 || applied[0] != 2 {
			t.Fatalf("Migrate from 1 = %v, %v", applied, err)
		}
		check("after up")
		for _, bad := range []string{"tcp", "", "UDP"} {
			if _, err := s.WriteDB().ExecContext(ctx, "UPDATE endpoint SET transport = $1", bad); err == nil {
				t.Errorf("transport %q accepted by the database", bad)
			}
		}
		if _, err := s.WriteDB().ExecContext(ctx, "INSERT INTO endpoint (name, created_at, updated_at) VALUES ('new', 0, 0)"); err != nil {
			t.Fatal(err)
		}
		if e, err := s.GetEndpoint(ctx, "new"); err != nil || e.Transport != TransportUDP {
			t.Errorf("default transport = %q, %v", e.Transport, err)
		}

		if _, err := s.goose.DownTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DB().ExecContext(ctx, "SELECT transport FROM endpoint"); err == nil {
			t.Error("transport column still there after down")
		}
		if err := s.CheckSchema(ctx); !errors.Is(err, ErrSchemaOutdated) {
			t.Errorf("CheckSchema() after down = %v, want ErrSchemaOutdated", err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM endpoint").Scan(&n); err != nil || n != 4 {
			t.Errorf("after down: %d endpoints, %v", n, err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		check("after down and up")
	})
}

func TestOpenURLForms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, url := range []string{
		filepath.Join(dir, "plain.db"),
		"sqlite://" + filepath.Join(dir, "scheme.db"),
		"file:" + filepath.Join(dir, "file.db"),
		filepath.Join(dir, "odd name %41 #1.db"),
	} {
		s, err := Open(ctx, url, Config{})
		if err != nil {
			t.Errorf("Open(%q): %v", url, err)
			continue
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Errorf("Migrate(%q): %v", url, err)
		}
		s.Close()
	}
	for _, name := range []string{"plain.db", "scheme.db", "file.db", "odd name %41 #1.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("database file not where the URL says: %v", err)
		}
	}
	for _, url := range []string{"", "sqlite://", ":memory:", filepath.Join(dir, "x.db") + "?mode=ro"} {
		if s, err := Open(ctx, url, Config{}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", url)
		}
	}
}

// checkOneLine fails unless err is a single-line message starting "store: ".
func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "store: ") || strings.ContainsAny(msg, "\n\r\t") {
		t.Errorf("error is not one line starting with \"store: \": %q", msg)
	}
}

func TestOpenNotSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flownexus.db")
	content := strings.Repeat("this is a text file, not a database\n", 50)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Config{})
	checkOneLine(t, err)
	want := "store: " + path + " is not a SQLite database (file is not a database)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if got, _ := os.ReadFile(path); string(got) != content {
		t.Error("Open modified the file")
	}
}

func TestOpenBadDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "regular")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path, want string
	}{
		{filepath.Join(file, "flownexus.db"), "not a directory"},
		{filepath.Join(dir, "missing", "flownexus.db"), "no such file or directory"},
		{dir, "not a regular file"},
	}
	for _, c := range cases {
		_, err := Open(context.Background(), c.path, Config{})
		checkOneLine(t, err)
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("Open(%q) = %q, want the path and %q", c.path, err, c.want)
		}
	}
}

func TestOpenUnwritableDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Skip("running with privileges that ignore directory permissions (root)")
	}
	path := filepath.Join(dir, "flownexus.db")
	_, err := Open(context.Background(), path, Config{})
	checkOneLine(t, err)
	if !strings.Contains(err.Error(), "cannot create files in directory "+dir) {
		t.Errorf("error = %q", err)
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	start := time.Now()
	_, err := Open(context.Background(), "postgres://flownexus:s3cr3t-pw@127.0.0.1:1/x", Config{})
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("Open took %v", d)
	}
	checkOneLine(t, err)
	if !strings.HasPrefix(err.Error(), "store: cannot reach PostgreSQL at 127.0.0.1:1: ") {
		t.Errorf("error = %q", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error shows the password: %q", err)
	}
	// A server that does not answer at all: the connect timeout applies.
	start = time.Now()
	_, err = Open(context.Background(), "postgres://u:s3cr3t-pw@192.0.2.1:5432/x?connect_timeout=1", Config{})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open of a silent address took %v", d)
	}
	checkOneLine(t, err)
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error shows the password: %q", err)
	}
	_, err = Open(context.Background(), "postgres://u:s3cr3t-pw@127.0.0.1:notaport/x", Config{})
	checkOneLine(t, err)
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Errorf("error shows the password: %q", err)
	}
}

func TestOpenPostgresMissingDatabase(t *testing.T) {
	u := storetest.PostgresURL(t)
	u = strings.Replace(u, "/flownexus_test_", "/no_such_database_", 1)
	_, err := Open(context.Background(), u, Config{})
	checkOneLine(t, err)
	if !strings.HasPrefix(err.Error(), "store: cannot connect to PostgreSQL at ") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("error = %q", err)
	}
}

func TestSQLiteReadPoolIsReadOnly(t *testing.T) {
	s := openTestStore(t, sqliteTestURL(t), true)
	if _, err := s.DB().Exec("INSERT INTO site (name, created_at) VALUES ('x', 0)"); err == nil {
		t.Fatal("write through DB() succeeded on SQLite")
	}
	if _, err := s.WriteDB().Exec("INSERT INTO site (name, created_at) VALUES ('x', 0)"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetSiteByName(context.Background(), "x"); err != nil || st.Name != "x" {
		t.Fatalf("read after write: %+v, %v", st, err)
	}
	var mode string
	if err := s.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v", mode, err)
	}
	var fk int
	if err := s.DB().QueryRow("PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d, %v", fk, err)
	}
}

// Two stores on one SQLite file (a CLI command next to a running server)
// write concurrently without "database is locked".
func TestSQLiteTwoProcessesWrite(t *testing.T) {
	url := sqliteTestURL(t)
	a := openTestStore(t, url, true)
	b := openTestStore(t, url, false)
	ctx := context.Background()
	ea := mustEndpoint(t, a, "urn:dev:a")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			vals := make([]ResourceValue, 200)
			for j := range vals {
				vals[j] = ResourceValue{EndpointID: ea.ID, Path: lwm2m.NewPath(3303, uint16(i), 5700), Value: lwm2m.Float(float64(j))}
			}
			errs <- a.InsertResources(ctx, vals)
		}()
		go func() {
			defer wg.Done()
			_, err := b.CreateUser(ctx, "user"+string(rune('a'+i)), "h", false)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	users, err := a.ListUsers(ctx)
	if err != nil || len(users) != 20 {
		t.Errorf("ListUsers: %d users, %v", len(users), err)
	}
}

func TestErrorsWrapped(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		_, err := s.GetEndpoint(context.Background(), "urn:dev:missing")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if want := `store: get endpoint "urn:dev:missing": not found`; err.Error() != want {
			t.Errorf("err = %q, want %q", err, want)
		}
		if _, err := s.CreateSite(context.Background(), "a"); err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateSite(context.Background(), "a")
		if !errors.Is(err, ErrConflict) || !strings.HasPrefix(err.Error(), `store: create site "a": conflict: `) {
			t.Errorf("duplicate site: %v", err)
		}
	})
}
