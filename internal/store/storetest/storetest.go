// Package storetest gives tests a real database of their own: a fresh
// PostgreSQL database per test on the server named by
// FLOWNEXUS_TEST_POSTGRES_URL (dropped when the test ends), or a skip when
// the variable is unset; and reads what a test stored (History). It is
// imported only by tests, and imports no package of the server (store's
// own tests import it).
package storetest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// PostgresURLEnv names the variable holding the PostgreSQL server URL.
const PostgresURLEnv = "FLOWNEXUS_TEST_POSTGRES_URL"

// PostgresURL creates a database with a random name on the server named by
// PostgresURLEnv, drops it (WITH (FORCE)) when the test ends, and returns
// its URL. It skips the test when the variable is unset.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		t.Skip(PostgresURLEnv + " is not set")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresURLEnv, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	name := "flownexus_test_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	u.Path = "/" + name
	return u.String()
}
