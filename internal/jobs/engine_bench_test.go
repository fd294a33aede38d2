package jobs

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// BenchmarkEnginePickup measures the delay from inserting a job (the
// insert's commit) to its handler starting, one job at a time, with the
// poll interval at an hour so that only the engine's wake-ups count: on
// SQLite and PostgreSQL with the inserting node's workers, and on
// PostgreSQL with another node's (a second Store and Engine on the same
// database, woken by LISTEN/NOTIFY).
//
//	FLOWNEXUS_TEST_POSTGRES_URL=postgres://… go test -run '^$' -bench BenchmarkEnginePickup -benchtime 200x ./internal/jobs
func BenchmarkEnginePickup(b *testing.B) {
	b.Run("sqlite-same-node", func(b *testing.B) {
		st := openStore(b, filepath.Join(b.TempDir(), "flownexus.db"), nil)
		benchPickup(b, st, st)
	})
	b.Run("postgres-same-node", func(b *testing.B) {
		st := openStore(b, storetest.PostgresURL(b), nil)
		benchPickup(b, st, st)
	})
	b.Run("postgres-other-node", func(b *testing.B) {
		url := storetest.PostgresURL(b)
		benchPickup(b, openStore(b, url, nil), openStore(b, url, nil))
	})
}

// benchPickup inserts on an engine over ins and runs on one over run
// (the same engine when they are the same store).
func benchPickup(b *testing.B, ins, run *store.Store) {
	ran := make(chan time.Time, 1)
	kind := Kind{Handler: func(context.Context, store.Job) error {
		ran <- time.Now()
		return nil
	}}
	runner := newTestEngine(b, run, EngineConfig{Node: "runner", PollInterval: time.Hour})
	if err := runner.Register("bench", kind); err != nil {
		b.Fatal(err)
	}
	inserter := runner
	if ins != run {
		inserter = newTestEngine(b, ins, EngineConfig{Node: "inserter", PollInterval: time.Hour})
		if err := inserter.Register("bench", kind); err != nil {
			b.Fatal(err)
		}
	}
	startEngine(b, runner)
	time.Sleep(200 * time.Millisecond) // the runner listens
	ctx := context.Background()
	delays := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := inserter.Insert(ctx, store.NewJob{Kind: "bench"}); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-ran:
			delays = append(delays, at.Sub(start))
		case <-time.After(10 * time.Second):
			b.Fatal("the job did not run")
		}
	}
	b.StopTimer()
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[min(len(delays)-1, int(p*float64(len(delays))))] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(0.5)), "p50-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
}
