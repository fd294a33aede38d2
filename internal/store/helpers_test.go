package store

import (
	"context"
	"github.com/flownexus/flownexus/internal/store/storetest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// t0 is the tests' clock start: a whole millisecond, UTC.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// testClock is a settable clock for Options.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// forEachEngine runs fn as a subtest against a freshly migrated store on
// SQLite (a real file in a temporary directory) and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, on PostgreSQL (a fresh database).
// The stores' clock starts at t0; tests reach it with clockOf.
func forEachEngine(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	forEachEngineWith(t, true, fn)
}

// forEachEngineWith is forEachEngine with the stores migrated only when
// migrate is set; the subtests are named after the engines ("sqlite",
// "postgres").
func forEachEngineWith(t *testing.T, migrate bool, fn func(t *testing.T, s *Store)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, openTestStore(t, sqliteTestURL(t), migrate))
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, openTestStore(t, storetest.PostgresURL(t), migrate))
	})
}

var clocks sync.Map // *Store -> *testClock

func clockOf(s *Store) *testClock {
	c, _ := clocks.Load(s)
	return c.(*testClock)
}

func sqliteTestURL(t testing.TB) string {
	return filepath.Join(t.TempDir(), "flownexus.db")
}

// openTestStore opens url with a test clock, migrates it when migrate is
// set, and closes it when the test ends.
func openTestStore(t testing.TB, url string, migrate bool) *Store {
	t.Helper()
	clk := &testClock{t: t0}
	s, err := Open(context.Background(), url, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	clocks.Store(s, clk)
	t.Cleanup(func() {
		clocks.Delete(s)
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if migrate {
		if _, err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// mustEndpoint registers an endpoint named name.
func mustEndpoint(t testing.TB, s *Store, name string) Endpoint {
	t.Helper()
	e, err := s.UpsertEndpointRegistration(context.Background(), EndpointRegistration{
		Name: name, RegistrationID: "reg-" + name, Address: "192.0.2.1:5683",
		Lifetime: 300 * time.Second, Binding: "U", LwM2MVersion: "1.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
