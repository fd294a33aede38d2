package app

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

// The figures for BENCHMARKS.md come from
//
//	FLOWNEXUS_TEST_POSTGRES_URL=postgres://… go test -run '^$' \
//	    -bench BenchmarkQueuedAwake -benchtime 1x ./internal/app -awake.ops 300
var (
	awakeDevices = flag.Int("awake.devices", 10, "BenchmarkQueuedAwake: devices online, not in queue mode")
	awakeOps     = flag.Int("awake.ops", 100, "BenchmarkQueuedAwake: operations queued, one at a time")
)

// BenchmarkQueuedAwake queues writes through the REST API
// (POST /endpoints/{ep}/operations) for devices that are online and not in
// queue mode, one at a time, and measures the delay from the request to
// the operation's CONFIRMED status (server side, events bus): how long a
// queued operation for a reachable device waits for a worker. It runs on
// SQLite and, when FLOWNEXUS_TEST_POSTGRES_URL is set, on PostgreSQL, with
// the server's default job settings.
func BenchmarkQueuedAwake(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		for range b.N {
			runQueuedAwake(b, "")
		}
	})
	b.Run("postgres", func(b *testing.B) {
		url := storetest.PostgresURL(b)
		for range b.N {
			runQueuedAwake(b, url)
		}
	})
}

func runQueuedAwake(b *testing.B, dbURL string) {
	b.StopTimer()
	ctx := context.Background()
	cfg := testConfig(nil, b.TempDir())
	cfg.DatabaseURL = dbURL
	cfg.AutoObserve = ""
	a, err := New(ctx, cfg, testLogger(nil), Tuning{OpTimeout: 3 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		a.Stop(sctx)
	}()
	hash, _ := auth.HashPassword("bench-password", auth.Params{Memory: 1024, Time: 1, Threads: 1})
	u, err := a.Store.CreateUser(ctx, "bench", hash, true)
	if err != nil {
		b.Fatal(err)
	}
	tok, tokHash, prefix := auth.NewToken()
	if _, err := a.Store.CreateAPIToken(ctx, u.ID, "bench", tokHash, prefix, time.Time{}); err != nil {
		b.Fatal(err)
	}

	fleet, err := simulator.NewFleet(simulator.Config{
		Server: a.CoAPAddr().String(), Devices: *awakeDevices, Lifetime: time.Hour,
		ValueInterval: 24 * time.Hour, Seed: 1, Logger: testLogger(nil),
	})
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := fleet.Start(sctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		fleet.Stop(sctx)
	}()

	sub := a.Events.Subscribe(1000, func(ev events.Event) bool { return ev.Topic == events.TopicOperation })
	defer sub.Close()
	confirmed := func(id int64) (time.Time, error) {
		timeout := time.After(30 * time.Second)
		for {
			select {
			case ev := <-sub.C:
				if d, ok := ev.Data.(events.OperationEvent); ok && d.ID == id && d.Status != "QUEUED" && d.Status != "SENDING" {
					if d.Status != "CONFIRMED" {
						return time.Time{}, fmt.Errorf("operation %d: %s: %s", id, d.Status, d.ResultError)
					}
					return time.Now(), nil
				}
			case <-timeout:
				return time.Time{}, fmt.Errorf("operation %d: not confirmed in 30 s", id)
			}
		}
	}

	devices := fleet.Devices()
	delays := make([]time.Duration, 0, *awakeOps)
	b.StartTimer()
	for i := range *awakeOps {
		ep := devices[i%len(devices)].Endpoint()
		body, _ := json.Marshal(map[string]any{"kind": "write", "path": "/1/0/3", "value": 100 + i})
		req, _ := http.NewRequest("POST", "http://"+a.HTTPAddr()+"/api/v1/endpoints/"+ep+"/operations", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var op struct {
			ID int64 `json:"id"`
		}
		err = json.NewDecoder(resp.Body).Decode(&op)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("queue: %d %v", resp.StatusCode, err)
		}
		at, err := confirmed(op.ID)
		if err != nil {
			b.Fatal(err)
		}
		delays = append(delays, at.Sub(start))
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[min(len(delays)-1, int(p*float64(len(delays))))] }
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(pct(0.5)), "p50-ms")
	b.ReportMetric(ms(pct(0.9)), "p90-ms")
	b.ReportMetric(ms(pct(0.99)), "p99-ms")
	b.ReportMetric(ms(delays[len(delays)-1]), "max-ms")
	b.Logf("%d operations for %d awake devices: enqueue to CONFIRMED p50 %v p90 %v p99 %v max %v",
		len(delays), len(devices), pct(0.5), pct(0.9), pct(0.99), delays[len(delays)-1])
}
