package simulator

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m/objects"
)

// testTypes types decoded values with the built-in object definitions.
var testTypes = objects.Default().TypeOf

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]bool
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), timers: map[*fakeTimer]bool{}}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer() Timer {
	return &fakeTimer{c: c, ch: make(chan time.Time, 1)}
}

// Advance moves the clock forward and fires the timers that fall due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for _, t := range due {
		select {
		case t.ch <- now:
		default:
		}
	}
}

type fakeTimer struct {
	c  *fakeClock
	ch chan time.Time
	at time.Time
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	delete(t.c.timers, t)
	t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
}

func (t *fakeTimer) ResetAt(deadline time.Time) {
	t.Stop()
	t.c.mu.Lock()
	t.at = deadline
	now := t.c.now
	fire := !deadline.After(now)
	if !fire {
		t.c.timers[t] = true
	}
	t.c.mu.Unlock()
	if fire {
		t.ch <- now
	}
}

// eventLog collects a device's events for the test to wait on.
type eventLog struct {
	t  *testing.T
	mu sync.Mutex
	ch chan Event
}

func newEventLog(t *testing.T) *eventLog {
	return &eventLog{t: t, ch: make(chan Event, 8192)}
}

func (l *eventLog) record(e Event) {
	select {
	case l.ch <- e:
	default:
		l.t.Errorf("event log full, dropped %v", e.Kind)
	}
}

// wait returns the next event of kind that satisfies ok (nil: any).
func (l *eventLog) wait(kind EventKind, ok func(Event) bool, timeout time.Duration) Event {
	l.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-l.ch:
			if e.Kind == kind && (ok == nil || ok(e)) {
				return e
			}
		case <-deadline:
			l.t.Fatalf("no %v event within %v", kind, timeout)
		}
	}
}

// waitAdvancing advances clk by step until an event of kind arrives.
func (l *eventLog) waitAdvancing(clk *fakeClock, step time.Duration, kind EventKind, ok func(Event) bool, timeout time.Duration) Event {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case e := <-l.ch:
			if e.Kind == kind && (ok == nil || ok(e)) {
				return e
			}
			continue
		case <-time.After(20 * time.Millisecond):
		}
		clk.Advance(step)
	}
	l.t.Fatalf("no %v event within %v of advancing", kind, timeout)
	return Event{}
}

// drain discards queued events.
func (l *eventLog) drain() {
	for {
		select {
		case <-l.ch:
		default:
			return
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() && os.Getenv("SIM_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// testConfig returns a Config for one device against p with a fake clock.
func testConfig(t *testing.T, p *peer, clk *fakeClock, log *eventLog) Config {
	cfg := Config{
		Server:         p.addr,
		Lifetime:       100 * time.Second,
		ValueInterval:  10 * time.Second,
		RequestTimeout: 3 * time.Second,
		Seed:           42,
		Logger:         testLogger(t),
	}
	if clk != nil {
		cfg.Clock = clk
	}
	if log != nil {
		cfg.OnEvent = log.record
		if os.Getenv("SIM_EVENTS") != "" {
			cfg.OnEvent = func(e Event) {
				t.Logf("event %v op=%q path=%v code=%v err=%v at %v", e.Kind, e.Op, e.Path, e.Code, e.Err, e.Time.Format("15:04:05"))
				log.record(e)
			}
		}
	}
	return cfg
}

// startDevice starts device 0 of cfg and stops it when the test ends.
func startDevice(t *testing.T, cfg Config) *Device {
	t.Helper()
	d, err := NewDevice(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	})
	return d
}

// waitGoroutines waits until the number of goroutines drops to at most n.
func waitGoroutines(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g := runtime.NumGoroutine()
		if g <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want <= %d:\n%s", g, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
