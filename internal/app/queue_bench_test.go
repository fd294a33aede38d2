package app

import (
	"context"
	"flag"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// The benchmark's size: small by default so that `go test -bench .` stays
// quick; the figures for BENCHMARKS.md come from
//
//	go test -run '^$' -bench BenchmarkQueuedDelivery -benchtime 1x ./internal/app \
//	    -queue.devices 10000 -queue.period 60s
var (
	benchDevices = flag.Int("queue.devices", 200, "BenchmarkQueuedDelivery: queue-mode devices, one queued write each")
	benchPeriod  = flag.Duration("queue.period", 5*time.Second, "BenchmarkQueuedDelivery: every device wakes once in this period, evenly spread (0: all at once)")
)

// BenchmarkQueuedDelivery runs the server on SQLite with queue-mode
// devices asleep, each with one write queued, then wakes every device once
// (an Update), spread evenly over -queue.period, and measures, on the
// server, the delay from each device's Update to its write's CONFIRMED,
// and the deliveries per second from the first wake to the last
// confirmation. One iteration is one such run: use -benchtime 1x.
func BenchmarkQueuedDelivery(b *testing.B) {
	for range b.N {
		runQueuedDelivery(b, *benchDevices, *benchPeriod)
	}
}

func runQueuedDelivery(b *testing.B, n int, period time.Duration) {
	b.StopTimer()
	ctx := context.Background()
	cfg := testConfig(nil, b.TempDir())
	opts := Tuning{
		ReceiveWindow: 4 * time.Second, OpTimeout: 3 * time.Second, JobPollInterval: time.Second,
		RegistrationGrace: time.Hour,
	}
	a, err := New(ctx, cfg, testLogger(nil), opts)
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

	fleet, err := simulator.NewFleet(simulator.Config{
		Server: a.CoAPAddr().String(), Devices: n, Lifetime: time.Hour, Binding: "UQ",
		ReceiveWindow: 5 * time.Second, ValueInterval: 24 * time.Hour, Seed: 1,
		RequestTimeout: 30 * time.Second, StartConcurrency: 64,
	})
	if err != nil {
		b.Fatal(err)
	}
	setupStart := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := fleet.Start(sctx); err != nil {
		b.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		fleet.Stop(sctx)
	}()
	devices := fleet.Devices()

	// Everyone registered (Registers beyond the server's admission rate
	// are refused and retried), asleep, the auto-observe traffic after
	// Register over.
	waitFor(b, 10*time.Minute, "devices registered", func() bool {
		for _, d := range devices {
			if !d.Registered() {
				return false
			}
		}
		return true
	})
	waitFor(b, 10*time.Minute, "devices asleep", func() bool { return fleet.Stats().Awake == 0 })
	time.Sleep(time.Duration(len(devmgmt.DefaultAutoObserve()))*opts.OpTimeout + time.Second)

	sub := a.Events.Subscribe(4*n+100, func(ev events.Event) bool {
		d, ok := ev.Data.(events.OperationEvent)
		return ok && (d.Status == string(store.OperationConfirmed) || d.Status == string(store.OperationFailed) || d.Status == string(store.OperationQueued))
	})
	defer sub.Close()
	// Subscribed before the writes are queued: a device that was awake
	// after all gets its write at once, which is counted (as confirmed
	// before the wakes) instead of waited for.
	var cmu sync.Mutex
	confirmedAt := make(map[string]time.Time, n)
	var failed, retried int
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range sub.C {
			d := ev.Data.(events.OperationEvent)
			switch {
			case d.Status == string(store.OperationQueued) && d.Attempts == 0:
				// queued
			case d.Status == string(store.OperationConfirmed):
				cmu.Lock()
				confirmedAt[ev.Endpoint] = time.Now()
				cmu.Unlock()
			case d.Status == string(store.OperationFailed):
				failed++
			default:
				retried++
			}
			cmu.Lock()
			all := len(confirmedAt)+failed == n
			cmu.Unlock()
			if all {
				return
			}
		}
	}()

	// One write each, queued while asleep, and the jobs that find the
	// devices asleep done.
	for _, d := range devices {
		e, err := a.Store.GetEndpoint(ctx, d.Endpoint())
		if err != nil {
			b.Fatal(err)
		}
		p := lwm2m.MustParsePath("/1/0/3")
		if _, err := a.Jobs.Enqueue(ctx, jobs.NewOperation{EndpointID: e.ID, Endpoint: e.Name,
			Operation: devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{p}, Values: []lwm2m.Record{{Path: p, Value: lwm2m.Int(120)}}}}); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 10*time.Minute, "queue idle", func() bool {
		idle, err := a.Jobs.Idle(ctx)
		return err == nil && idle
	})
	setup := time.Since(setupStart)

	// Server-side times: the Update of each device, the confirmation of
	// its write.
	var mu sync.Mutex
	wokeAt := make(map[string]time.Time, n)
	a.Registry.Subscribe(func(ev registry.Change) {
		if ev.Kind == registry.Updated {
			now := time.Now()
			mu.Lock()
			if _, ok := wokeAt[ev.Registration.Endpoint]; !ok {
				wokeAt[ev.Registration.Endpoint] = now
			}
			mu.Unlock()
		}
	})
	b.StartTimer()
	start := time.Now()
	go func() {
		for i, d := range devices {
			if period > 0 {
				time.Sleep(time.Until(start.Add(period * time.Duration(i) / time.Duration(n))))
			}
			d.TriggerUpdate()
		}
	}()
	// After the last wake and its receive window nothing more can come.
	deadline := period + opts.ReceiveWindow + 30*time.Second
	select {
	case <-collected:
	case <-time.After(deadline):
		sub.Close()
		<-collected
	}
	b.StopTimer()

	mu.Lock()
	defer mu.Unlock()
	var delays []time.Duration
	var last time.Time
	early := 0
	for ep, c := range confirmedAt {
		if c.Before(start) {
			early++
			continue
		}
		if w, ok := wokeAt[ep]; ok {
			delays = append(delays, c.Sub(w))
		}
		if c.After(last) {
			last = c
		}
	}
	if len(delays) == 0 {
		b.Fatalf("nothing delivered (%d failed)", failed)
	}
	slices.Sort(delays)
	pct := func(p float64) time.Duration { return delays[min(len(delays)-1, int(p*float64(len(delays))))] }
	elapsed := last.Sub(start)
	b.ReportMetric(float64(len(confirmedAt))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(len(confirmedAt)), "confirmed")
	b.ReportMetric(float64(early), "confirmed-early")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(float64(retried), "retried")
	b.Logf("%d devices, wakes over %v: %d confirmed (%d before the wakes), %d failed, %d attempts retried in %v; delay p50 %v p99 %v max %v; setup %v",
		n, period, len(confirmedAt), early, failed, retried, elapsed.Round(time.Millisecond), pct(0.5), pct(0.99), delays[len(delays)-1], setup.Round(time.Second))
	if len(confirmedAt) != n {
		b.Errorf("%d of %d writes confirmed", len(confirmedAt), n)
	}
}

func waitFor(b *testing.B, d time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
