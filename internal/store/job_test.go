package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/store/storetest"
)

func TestJobInsertUniqueAndClaim(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *Store) {
		clk := clockOf(s)
		now := clk.Now()
		err := s.InsertJobs(ctx,
			NewJob{Kind: "a", Key: "1", RunAt: now.Add(time.Hour), MaxAttempts: 3},
			NewJob{Kind: "a", Key: "1", RunAt: now.Add(time.Minute), MaxAttempts: 3}, // folded: earlier due time
			NewJob{Kind: "a", MaxAttempts: 3, Args: json.RawMessage(`{"x":1}`)},
			NewJob{Kind: "a", MaxAttempts: 3},
			NewJob{Kind: "b", Key: "1", MaxAttempts: 3}, // another kind, same key
		)
		if err != nil {
			t.Fatal(err)
		}
		// Again with the same key, later: still one, due at the earliest.
		if err := s.InsertJobs(ctx, NewJob{Kind: "a", Key: "1", RunAt: now.Add(2 * time.Hour), MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		jobs, err := s.ListJobs(ctx, "a", "b")
		if err != nil || len(jobs) != 4 {
			t.Fatalf("jobs: %+v %v", jobs, err)
		}
		if j := jobs[0]; j.Key != "1" || !j.RunAt.Equal(now.Add(time.Minute)) || j.State != JobAvailable || string(j.Args) != "{}" {
			t.Fatalf("unique job: %+v", j)
		}
		if in, ok, err := s.NextJobIn(ctx, []string{"a"}); err != nil || !ok || in != 0 {
			t.Fatalf("next job in %v %v %v, want due now", in, ok, err)
		}
		for _, bad := range []NewJob{{MaxAttempts: 1}, {Kind: "a"}, {Kind: "a", MaxAttempts: 1, Args: json.RawMessage("{")}} {
			if err := s.InsertJobs(ctx, bad); err == nil {
				t.Errorf("%+v inserted", bad)
			}
		}

		// Claims: due jobs of the kinds asked for, oldest due first.
		got, err := s.ClaimJobs(ctx, "node-1", []string{"a"}, 10)
		if err != nil || len(got) != 2 || string(got[0].Args) != `{"x":1}` {
			t.Fatalf("claim: %+v %v", got, err)
		}
		for _, j := range got {
			if j.State != JobRunning || j.Attempts != 1 || j.LockedBy != "node-1" || !j.LockedAt.Equal(now) {
				t.Fatalf("claimed job: %+v", j)
			}
		}
		if in, ok, err := s.NextJobIn(ctx, []string{"a"}); err != nil || !ok || in != time.Minute {
			t.Fatalf("next job in %v %v %v, want 1m", in, ok, err)
		}
		// A job of the same key is inserted while one runs.
		clk.Advance(time.Minute)
		more, err := s.ClaimJobs(ctx, "node-2", []string{"a"}, 1)
		if err != nil || len(more) != 1 || more[0].Key != "1" {
			t.Fatalf("claim of the due unique job: %+v %v", more, err)
		}
		if err := s.InsertJobs(ctx, NewJob{Kind: "a", Key: "1", MaxAttempts: 3}); err != nil {
			t.Fatal(err)
		}
		// Its retry folds into the waiting one.
		if err := s.RetryJob(ctx, more[0].ID, 1, time.Second, "boom"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.CountJobs(ctx, "a"); err != nil || n != 3 {
			t.Fatalf("%d jobs of a after the retry, %v", n, err)
		}
		// Finishing needs the attempt claimed.
		if err := s.FinishJob(ctx, got[0].ID, 2); !errors.Is(err, ErrConflict) {
			t.Fatalf("finish of another attempt: %v", err)
		}
		if err := s.FinishJob(ctx, got[0].ID, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.RetryJob(ctx, got[1].ID, 1, time.Hour, "later"); err != nil {
			t.Fatal(err)
		}
		jobs, _ = s.ListJobs(ctx, "a")
		if len(jobs) != 2 || jobs[0].ID != got[1].ID || jobs[0].State != JobAvailable || jobs[0].LastError != "later" ||
			!jobs[0].RunAt.Equal(clk.Now().Add(time.Hour)) || jobs[0].LockedBy != "" || !jobs[0].LockedAt.IsZero() {
			t.Fatalf("after finish and retry: %+v", jobs)
		}
	})
}

func TestJobRescue(t *testing.T) {
	ctx := context.Background()
	forEachEngine(t, func(t *testing.T, s *Store) {
		clk := clockOf(s)
		if err := s.InsertJobs(ctx, NewJob{Kind: "a", MaxAttempts: 2}, NewJob{Kind: "a", MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ClaimJobs(ctx, "dead", []string{"a"}, 10); err != nil || len(got) != 2 {
			t.Fatalf("claim: %v %v", got, err)
		}
		clk.Advance(time.Minute)
		if got, _, err := s.RescueJobs(ctx, time.Minute, "x"); err != nil || len(got) != 0 {
			t.Fatalf("rescued jobs locked for exactly a minute: %v %v", got, err)
		}
		clk.Advance(time.Millisecond)
		got, dropped, err := s.RescueJobs(ctx, time.Minute, "rescued")
		if err != nil || len(got) != 2 || !slices.Equal(dropped, []bool{false, true}) {
			t.Fatalf("rescue: %+v %v %v", got, dropped, err)
		}
		jobs, _ := s.ListJobs(ctx, "a")
		if len(jobs) != 1 || jobs[0].State != JobAvailable || jobs[0].LastError != "rescued" || jobs[0].Attempts != 1 {
			t.Fatalf("after rescue: %+v", jobs)
		}
	})
}

// TestJobClaimsDoNotOverlap: on PostgreSQL, several stores (nodes)
// claiming at once never get the same job.
func TestJobClaimsDoNotOverlap(t *testing.T) {
	ctx := context.Background()
	url := storetest.PostgresURL(t)
	var stores []*Store
	for range 3 {
		stores = append(stores, openTestStore(t, url, len(stores) == 0))
	}
	jobs := make([]NewJob, 300)
	for i := range jobs {
		jobs[i] = NewJob{Kind: "a", MaxAttempts: 1}
	}
	if err := stores[0].InsertJobs(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for i, s := range stores {
		for w := range 4 {
			wg.Go(func() {
				node := string(rune('a'+i)) + string(rune('0'+w))
				for {
					got, err := s.ClaimJobs(ctx, node, []string{"a"}, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, j := range got {
						if prev, ok := seen[j.ID]; ok {
							t.Errorf("job %d claimed by %s and %s", j.ID, prev, node)
						}
						seen[j.ID] = node
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(seen) != len(jobs) {
		t.Fatalf("%d jobs claimed, want %d", len(seen), len(jobs))
	}
}

// TestJobMigrationFromRiver: a database of the version that queued with
// River migrates cleanly: River's tables (and on PostgreSQL its type and
// functions) are dropped, and every endpoint with operations pending gets
// a delivery job.
func TestJobMigrationFromRiver(t *testing.T) {
	ctx := context.Background()
	forEachEngineWith(t, false, func(t *testing.T, s *Store) {
		// 9: the last version before the job table (00010).
		if _, err := s.goose.UpTo(ctx, 9); err != nil {
			t.Fatal(err)
		}
		river := []string{
			"CREATE TABLE river_migration (line TEXT NOT NULL, version BIGINT NOT NULL)",
			"CREATE TABLE river_job (id BIGINT PRIMARY KEY, kind TEXT NOT NULL, args TEXT)",
			"CREATE TABLE river_leader (name TEXT PRIMARY KEY)",
			"CREATE TABLE river_queue (name TEXT PRIMARY KEY)",
			"CREATE TABLE river_client (id TEXT PRIMARY KEY)",
			"CREATE TABLE river_client_queue (river_client_id TEXT REFERENCES river_client (id))",
			"INSERT INTO river_migration (line, version) VALUES ('main', 6)",
			`INSERT INTO river_job (id, kind, args) VALUES (1, 'deliver_operations', '{"endpoint_id":1,"endpoint":"ep-1"}')`,
		}
		if s.Dialect() == DialectPostgres {
			river = append(river,
				"CREATE TYPE river_job_state AS ENUM ('available', 'running')",
				"ALTER TABLE river_job ADD COLUMN state river_job_state",
				"CREATE FUNCTION river_job_notify() RETURNS TRIGGER AS $$ BEGIN RETURN NEW; END; $$ LANGUAGE plpgsql",
				"CREATE TRIGGER river_notify AFTER INSERT ON river_job FOR EACH ROW EXECUTE PROCEDURE river_job_notify()",
				"CREATE FUNCTION river_job_state_in_bitmask(bitmask BIT(8), state river_job_state) RETURNS boolean AS $$ SELECT true $$ LANGUAGE sql",
			)
		}
		river = append(river,
			"INSERT INTO endpoint (id, name, created_at, updated_at) VALUES (1, 'ep-1', 0, 0), (2, 'ep-2', 0, 0), (3, 'ep-3', 0, 0)",
			"INSERT INTO endpoint_operation (endpoint_id, kind, status, created_at, updated_at) VALUES "+
				"(1, 'read', 'QUEUED', 0, 0), (1, 'read', 'QUEUED', 0, 0), (2, 'read', 'SENDING', 0, 0), (3, 'read', 'CONFIRMED', 0, 0)",
		)
		for _, q := range river {
			if _, err := s.WriteDB().ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"river_migration", "river_job", "river_leader", "river_queue", "river_client", "river_client_queue"} {
			if _, err := s.DB().ExecContext(ctx, "SELECT 1 FROM "+table); err == nil {
				t.Errorf("table %s still there", table)
			}
		}
		if s.Dialect() == DialectPostgres {
			var n int
			err := s.DB().QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pg_type WHERE typname = 'river_job_state') +
				(SELECT count(*) FROM pg_proc WHERE proname LIKE 'river%')`).Scan(&n)
			if err != nil || n != 0 {
				t.Errorf("River's type and functions: %d left, %v", n, err)
			}
		}
		jobs, err := s.ListJobs(ctx, "deliver_operations")
		if err != nil || len(jobs) != 2 {
			t.Fatalf("delivery jobs: %+v %v", jobs, err)
		}
		for i, j := range jobs {
			var args struct {
				EndpointID int64  `json:"endpoint_id"`
				Endpoint   string `json:"endpoint"`
			}
			if err := json.Unmarshal(j.Args, &args); err != nil || args.EndpointID != int64(i+1) || args.Endpoint != "ep-"+j.Key ||
				j.State != JobAvailable || j.MaxAttempts != 10 {
				t.Errorf("job %d: %+v (%+v, %v)", i, j, args, err)
			}
		}
		// Due now, as far as the database's clock goes.
		if due := time.Since(jobs[0].RunAt); due < 0 || due > time.Minute {
			t.Errorf("due %v ago", due)
		}
	})
}
