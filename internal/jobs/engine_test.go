package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// openStore opens and migrates a store on url with clock now (nil: real
// time).
func openStore(t testing.TB, url string, now func() time.Time) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// forEachDB runs fn with the URL of a fresh SQLite file and, when
// FLOWNEXUS_TEST_POSTGRES_URL is set, of a fresh PostgreSQL database.
func forEachDB(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "flownexus.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.PostgresURL(t)) })
}

// newTestEngine is an engine on st, stopped when the test ends.
func newTestEngine(t testing.TB, st *store.Store, cfg EngineConfig) *Engine {
	t.Helper()
	cfg.Store, cfg.Logger = st, testLogger()
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return e
}

func startEngine(t testing.TB, e *Engine) {
	t.Helper()
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func noBackoff(int) time.Duration { return 0 }

func TestEngineRetriesThenSucceeds(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		st := openStore(t, url, nil)
		e := newTestEngine(t, st, EngineConfig{})
		var mu sync.Mutex
		var attempts []int
		var errs []string
		done := make(chan struct{})
		err := e.Register("flaky", Kind{Backoff: noBackoff, Handler: func(ctx context.Context, j store.Job) error {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, j.Attempts)
			errs = append(errs, j.LastError)
			if j.Attempts < 3 {
				return fmt.Errorf("failure %d", j.Attempts)
			}
			close(done)
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Insert(context.Background(), store.NewJob{Kind: "flaky", Args: json.RawMessage(`{"n":1}`)}); err != nil {
			t.Fatal(err)
		}
		startEngine(t, e)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the job did not succeed")
		}
		eventually(t, 5*time.Second, "the finished job deleted", func() bool {
			n, err := st.CountJobs(context.Background(), "flaky")
			return err == nil && n == 0
		})
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(attempts, []int{1, 2, 3}) || !slices.Equal(errs, []string{"", "failure 1", "failure 2"}) {
			t.Fatalf("attempts %v, last errors %q", attempts, errs)
		}
	})
}

func TestEngineGivesUpAfterMaxAttempts(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		st := openStore(t, url, nil)
		e := newTestEngine(t, st, EngineConfig{})
		var calls atomic.Int32
		err := e.Register("doomed", Kind{MaxAttempts: 3, Backoff: noBackoff, Handler: func(context.Context, store.Job) error {
			calls.Add(1)
			panic("always")
		}})
		if err != nil {
			t.Fatal(err)
		}
		startEngine(t, e)
		if err := e.Insert(context.Background(), store.NewJob{Kind: "doomed"}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "the job given up", func() bool {
			n, err := st.CountJobs(context.Background(), "doomed")
			return err == nil && n == 0 && calls.Load() > 0
		})
		time.Sleep(100 * time.Millisecond)
		if n := calls.Load(); n != 3 {
			t.Fatalf("%d attempts, want 3", n)
		}
	})
}

func TestEngineInsertChecksKinds(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "flownexus.db"), nil)
	e := newTestEngine(t, st, EngineConfig{})
	if err := e.Insert(context.Background(), store.NewJob{Kind: "nobody"}); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Fatalf("insert of an unregistered kind: %v", err)
	}
	h := func(context.Context, store.Job) error { return nil }
	if err := e.Register("a", Kind{Handler: h}); err != nil {
		t.Fatal(err)
	}
	if err := e.Register("a", Kind{Handler: h}); err == nil {
		t.Fatal("a kind registered twice")
	}
	startEngine(t, e)
	if err := e.Register("b", Kind{Handler: h}); err == nil {
		t.Fatal("a kind registered after Start")
	}
}

// TestEngineScheduledAndUnique: a job inserted to run later runs when it
// is due, not at the next poll; jobs with the same key wait as one, due at
// the earliest time asked.
func TestEngineScheduledAndUnique(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		ctx := context.Background()
		st := openStore(t, url, nil)
		e := newTestEngine(t, st, EngineConfig{PollInterval: time.Hour})
		ran := make(chan time.Time, 10)
		if err := e.Register("later", Kind{Handler: func(context.Context, store.Job) error {
			ran <- time.Now()
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		due := start.Add(700 * time.Millisecond)
		err := e.Insert(ctx,
			store.NewJob{Kind: "later", Key: "k", RunAt: start.Add(time.Hour)},
			store.NewJob{Kind: "later", Key: "k", RunAt: due},
		)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Insert(ctx, store.NewJob{Kind: "later", Key: "k", RunAt: start.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		jobs, err := st.ListJobs(ctx, "later")
		if err != nil || len(jobs) != 1 || jobs[0].RunAt.UnixMilli() != due.UnixMilli() {
			t.Fatalf("waiting jobs: %+v %v; want one, due at %v", jobs, err, due)
		}
		startEngine(t, e)
		select {
		case at := <-ran:
			if at.Before(due) || at.After(due.Add(500*time.Millisecond)) {
				t.Fatalf("ran %v after the start, due after %v", at.Sub(start), due.Sub(start))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the scheduled job did not run")
		}
		select {
		case <-ran:
			t.Fatal("a unique job ran twice")
		case <-time.After(200 * time.Millisecond):
		}
	})
}

// TestEngineWorkers: at most Workers jobs run at once, and they do run
// together.
func TestEngineWorkers(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		st := openStore(t, url, nil)
		e := newTestEngine(t, st, EngineConfig{Workers: 4})
		var now, peak, done atomic.Int32
		if err := e.Register("slow", Kind{Handler: func(context.Context, store.Job) error {
			n := now.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(100 * time.Millisecond)
			now.Add(-1)
			done.Add(1)
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		jobs := make([]store.NewJob, 20)
		for i := range jobs {
			jobs[i] = store.NewJob{Kind: "slow"}
		}
		if err := e.Insert(context.Background(), jobs...); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		startEngine(t, e)
		eventually(t, 10*time.Second, "20 jobs done", func() bool { return done.Load() == 20 })
		if p := peak.Load(); p != 4 {
			t.Fatalf("%d jobs ran at once, want 4", p)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("20 jobs of 100 ms on 4 workers took %v", d)
		}
	})
}

// TestEngineRescuesAbandonedJobs: a job left running by a node that died
// runs again once it has run longer than its kind's timeout allows.
func TestEngineRescuesAbandonedJobs(t *testing.T) {
	forEachDB(t, func(t *testing.T, url string) {
		ctx := context.Background()
		clk := &fakeClock{t: time.Now()}
		st := openStore(t, url, clk.Now)
		e := newTestEngine(t, st, EngineConfig{})
		ran := make(chan store.Job, 1)
		if err := e.Register("work", Kind{Timeout: time.Minute, Handler: func(_ context.Context, j store.Job) error {
			ran <- j
			return nil
		}}); err != nil {
			t.Fatal(err)
		}
		if err := e.Insert(ctx, store.NewJob{Kind: "work"}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.ClaimJobs(ctx, "dead-node", []string{"work"}, 1); err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		// Not yet: it may still be running.
		clk.Advance(time.Minute)
		if jobs, _, err := st.RescueJobs(ctx, 2*time.Minute, reasonRescued); err != nil || len(jobs) != 0 {
			t.Fatalf("rescued a job running for a minute: %v %v", jobs, err)
		}
		clk.Advance(90 * time.Second)
		startEngine(t, e) // rescues at once, then every minute
		select {
		case j := <-ran:
			if j.Attempts != 2 || j.LastError != reasonRescued {
				t.Fatalf("rescued job: %+v", j)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the abandoned job did not run again")
		}
	})
}

// TestEngineTwoNodes: on PostgreSQL a job inserted on one node is picked
// up by another within 100 ms (LISTEN/NOTIFY; its poll interval is an
// hour), and jobs inserted on both nodes, run by both, run once each.
func TestEngineTwoNodes(t *testing.T) {
	url := storetest.PostgresURL(t)
	ctx := context.Background()
	stA, stB := openStore(t, url, nil), openStore(t, url, nil)
	a := newTestEngine(t, stA, EngineConfig{Node: "a", PollInterval: time.Hour})
	b := newTestEngine(t, stB, EngineConfig{Node: "b", PollInterval: time.Hour})
	type run struct {
		node string
		at   time.Time
	}
	var mu sync.Mutex
	runs := map[string][]run{}
	handler := func(node string) Handler {
		return func(_ context.Context, j store.Job) error {
			var args struct{ ID string }
			if err := json.Unmarshal(j.Args, &args); err != nil {
				return err
			}
			mu.Lock()
			runs[args.ID] = append(runs[args.ID], run{node, time.Now()})
			mu.Unlock()
			return nil
		}
	}
	if err := a.Register("ping", Kind{Handler: handler("a")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Register("ping", Kind{Handler: handler("b")}); err != nil {
		t.Fatal(err)
	}
	job := func(id string) store.NewJob {
		return store.NewJob{Kind: "ping", Args: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id))}
	}
	// Only b runs jobs; a inserts them.
	startEngine(t, b)
	time.Sleep(200 * time.Millisecond) // b listens
	var delays []time.Duration
	for i := range 20 {
		id := fmt.Sprintf("one-%d", i)
		start := time.Now()
		if err := a.Insert(ctx, job(id)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "job "+id+" run on b", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(runs[id]) == 1
		})
		mu.Lock()
		delays = append(delays, runs[id][0].at.Sub(start))
		mu.Unlock()
	}
	slices.Sort(delays)
	t.Logf("insert on a to run on b: min %v, median %v, max %v", delays[0], delays[len(delays)/2], delays[len(delays)-1])
	if med := delays[len(delays)/2]; med > 100*time.Millisecond {
		t.Fatalf("median pickup on the other node %v, want within 100 ms (all: %v)", med, delays)
	}

	// Both run; each inserts half. Every job runs exactly once.
	startEngine(t, a)
	var batchA, batchB []store.NewJob
	for i := range 200 {
		if i%2 == 0 {
			batchA = append(batchA, job(fmt.Sprintf("both-%d", i)))
		} else {
			batchB = append(batchB, job(fmt.Sprintf("both-%d", i)))
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- a.Insert(ctx, batchA...) }()
	go func() { errc <- b.Insert(ctx, batchB...) }()
	if err := errors.Join(<-errc, <-errc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "200 jobs run", func() bool {
		n, err := stA.CountJobs(ctx, "ping")
		return err == nil && n == 0
	})
	mu.Lock()
	defer mu.Unlock()
	nodes := map[string]int{}
	for i := range 200 {
		id := fmt.Sprintf("both-%d", i)
		if len(runs[id]) != 1 {
			t.Fatalf("job %s ran %d times", id, len(runs[id]))
		}
		nodes[runs[id][0].node]++
	}
	t.Logf("jobs run per node: %v", nodes)
}
