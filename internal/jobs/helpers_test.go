package jobs

import (
	"context"
	"errors"
	"github.com/flownexus/flownexus/internal/store/storetest"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// fakeClock is the one clock of a test's store, registry and queue.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// call is one attempt the fake device saw.
type call struct {
	Endpoint string
	Kind     devmgmt.Kind
	Paths    []lwm2m.Path
	Records  []lwm2m.Record
}

// fakeDevices replaces the device side of a Queue: it records every
// attempt and answers with what the test scripted.
type fakeDevices struct {
	mu     sync.Mutex
	calls  []call
	answer func(ctx context.Context, c call) (devmgmt.Result, error) // nil: success, no result
}

func (f *fakeDevices) send(ctx context.Context, endpoint string, op devmgmt.Operation) (devmgmt.Result, error) {
	c := call{Endpoint: endpoint, Kind: op.Kind, Paths: op.Targets(), Records: op.Values}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return devmgmt.Result{}, nil
	}
	return answer(ctx, c)
}

func (f *fakeDevices) setAnswer(fn func(c call) (devmgmt.Result, error)) {
	if fn == nil {
		f.setAnswerCtx(nil)
		return
	}
	f.setAnswerCtx(func(_ context.Context, c call) (devmgmt.Result, error) { return fn(c) })
}

func (f *fakeDevices) setAnswerCtx(fn func(ctx context.Context, c call) (devmgmt.Result, error)) {
	f.mu.Lock()
	f.answer = fn
	f.mu.Unlock()
}

func (f *fakeDevices) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// env is a Queue on a real, migrated database with a real registry, all on
// one fake clock, and a fake device side.
type env struct {
	st      *store.Store
	clk     *fakeClock
	reg     *registry.Registry
	eng     *Engine
	q       *Queue
	dev     *fakeDevices
	bus     *events.Bus
	opEvs   *events.Subscription
	workers bool
}

type envOptions struct {
	window   time.Duration
	perRound int
	workers  bool // start the Engine and the wake-up handling
	url      string
}

func testLogger() *slog.Logger {
	if os.Getenv("FLOWNEXUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	clk := &fakeClock{t: t0}
	st, err := store.Open(ctx, o.url, store.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, registry.Config{Clock: clk, Logger: testLogger()})
	dm := devmgmt.New(devmgmt.Config{Registry: reg, Logger: testLogger(),
		Dial: func(context.Context, registry.Registration) (*udpclient.Conn, error) {
			return nil, errors.New("no network in this test")
		}})
	bus := &events.Bus{}
	e := &env{st: st, clk: clk, reg: reg, dev: &fakeDevices{}, bus: bus, workers: o.workers}
	e.opEvs = bus.Subscribe(1000, nil)
	t.Cleanup(e.opEvs.Close)
	if e.eng, err = NewEngine(EngineConfig{Store: st, Logger: testLogger(), PollInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	e.q, err = New(Config{Engine: e.eng, Store: st, Registry: reg, Devices: dm, Events: bus, Logger: testLogger(),
		ReceiveWindow: o.window, PerRound: o.perRound})
	if err != nil {
		t.Fatal(err)
	}
	e.q.send = e.dev.send
	if o.workers {
		if err := e.q.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := e.q.Stop(sctx); err != nil {
				t.Error(err)
			}
			if err := e.eng.Stop(sctx); err != nil {
				t.Error(err)
			}
		})
	}
	return e
}

// forEachEngine runs fn on SQLite and, when FLOWNEXUS_TEST_POSTGRES_URL
// is set, on a fresh PostgreSQL database.
func forEachEngine(t *testing.T, o envOptions, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) {
		o := o
		o.url = filepath.Join(t.TempDir(), "flownexus.db")
		fn(t, newEnv(t, o))
	})
	t.Run("postgres", func(t *testing.T) {
		o := o
		o.url = storetest.PostgresURL(t)
		fn(t, newEnv(t, o))
	})
}

// register registers a device; queue selects queue mode.
func (e *env) register(t *testing.T, name string, queue bool) registry.Registration {
	t.Helper()
	reg, err := e.reg.Register(context.Background(), registry.RegisterRequest{
		Endpoint: name, Lifetime: 3600, Version: lwm2m.V1_1, Binding: "U", Queue: queue,
		Addr: netip.MustParseAddrPort("192.0.2.1:5683"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// update is the device's registration Update: a wake-up.
func (e *env) update(t *testing.T, reg registry.Registration) registry.Registration {
	t.Helper()
	got, err := e.reg.Update(context.Background(), reg.ID, registry.UpdateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (e *env) enqueue(t *testing.T, reg registry.Registration, o devmgmt.Operation) store.Operation {
	t.Helper()
	op, err := e.q.Enqueue(context.Background(), NewOperation{EndpointID: reg.EndpointID, Endpoint: reg.Endpoint, Operation: o})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// deliver runs one delivery job for reg's endpoint in the test's goroutine.
func (e *env) deliver(t *testing.T, reg registry.Registration) {
	t.Helper()
	if e.workers {
		t.Fatal("deliver by hand with workers running")
	}
	if err := e.q.deliver(context.Background(), reg.EndpointID, reg.Endpoint); err != nil {
		t.Fatal(err)
	}
}

func (e *env) op(t *testing.T, id int64) store.Operation {
	t.Helper()
	op, err := e.st.GetOperation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

// statuses returns the statuses published for operation id so far.
func (e *env) statuses(id int64) []string {
	var out []string
	for {
		select {
		case ev := <-e.opEvs.C:
			if d := ev.Data.(events.OperationEvent); d.ID == id {
				out = append(out, d.Status)
			}
		default:
			return out
		}
	}
}

func writeReq(path string, v int64) devmgmt.Operation {
	p := lwm2m.MustParsePath(path)
	return devmgmt.Operation{Kind: devmgmt.KindWrite, Paths: []lwm2m.Path{p}, Values: []lwm2m.Record{{Path: p, Value: lwm2m.Int(v)}}}
}

// eventually polls cond (real time: the Engine's workers run on their own)
// until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
