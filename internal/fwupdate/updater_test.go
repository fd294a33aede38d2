package fwupdate

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/jobs"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/linkformat"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
	"github.com/flownexus/flownexus/internal/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// env is an Updater on a real database with its real parts, whose engine
// does not run: the test steps updates itself. Nothing reaches a device.
type env struct {
	clk *clock
	st  *store.Store
	u   *Updater
	reg *registry.Registry
	bus *events.Bus
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	ctx := context.Background()
	clk := &clock{t: t0}
	st, err := store.Open(ctx, url, store.Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(st, registry.Config{Clock: clk, Logger: quiet})
	dm := devmgmt.New(devmgmt.Config{Registry: reg, Logger: quiet, Dial: func(context.Context, registry.Registration) (*udpclient.Conn, error) {
		return nil, errors.New("no network in this test")
	}})
	eng, err := jobs.NewEngine(jobs.EngineConfig{Store: st, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	q, err := jobs.New(jobs.Config{Engine: eng, Store: st, Registry: reg, Devices: dm, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	bus := &events.Bus{}
	u, err := New(Config{Store: st, Engine: eng, Queue: q, Registry: reg, Devices: dm, Events: bus, Logger: quiet,
		Bases: func() Bases { return Bases{CoAP: "coap://srv/fw"} }})
	if err != nil {
		t.Fatal(err)
	}
	return &env{clk: clk, st: st, u: u, reg: reg, bus: bus}
}

func forEachEngine(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, newEnv(t, filepath.Join(t.TempDir(), "flownexus.db"))) })
	t.Run("postgres", func(t *testing.T) { fn(t, newEnv(t, storetest.PostgresURL(t))) })
}

// register registers a device with the objects of links, offline to the
// network (its address answers nothing).
func (e *env) register(t *testing.T, name, links string) registry.Registration {
	t.Helper()
	objs, err := linkformat.ParseRegistration([]byte(links))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := e.reg.Register(context.Background(), registry.RegisterRequest{
		Endpoint: name, Lifetime: 3600, Version: lwm2m.V1_1, Binding: "U", Objects: objs, ObjectLinks: links,
		Addr: netip.MustParseAddrPort("192.0.2.1:5683"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func (e *env) ops(t *testing.T, endpointID int64) []store.Operation {
	t.Helper()
	ops, err := e.st.ListOperations(context.Background(), endpointID, store.OperationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func summary(ops []store.Operation) []string {
	var out []string
	for _, op := range ops {
		s := op.Kind + " " + op.Paths[0].String() + " " + string(op.Status)
		out = append(out, s)
	}
	return out
}

// TestStartAndCancel: Start stores the update and its step job together;
// refusals leave nothing; a step queues the requests in order; Cancel
// cancels what is still queued, resets the device once the Package URI
// was sent, cancels the observations the update made, and publishes each
// state.
func TestStartAndCancel(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sub := e.bus.Subscribe(100, nil)
		defer sub.Close()
		reg := e.register(t, "urn:dev:a", "</1/0>,</3/0>,</5/0>")
		e.register(t, "urn:dev:bare", "</1/0>,</3/0>")
		if _, err := e.st.CreateFirmware(ctx, store.Firmware{Version: "2.0", Filename: "2.0.bin", Size: 1, SHA256: "x"}); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct {
			ep, version string
			o           Options
			kind        ErrorKind
		}{
			"unknown endpoint": {"urn:dev:none", "2.0", Options{}, NotFound},
			"unknown image":    {"urn:dev:a", "3.0", Options{}, NotFound},
			"no object 5":      {"urn:dev:bare", "2.0", Options{}, Conflict},
			"bad protocol":     {"urn:dev:a", "2.0", Options{Protocol: "ftp"}, Invalid},
			"no https base":    {"urn:dev:a", "2.0", Options{Protocol: ProtocolHTTPS}, Invalid},
			"push, no dir":     {"urn:dev:a", "2.0", Options{Method: MethodPush}, Invalid},
		} {
			var fe *Error
			if _, err := e.u.Start(ctx, c.ep, c.version, c.o); !errors.As(err, &fe) || fe.Kind != c.kind {
				t.Errorf("%s: %v, want an *Error of kind %d", name, err, c.kind)
			}
		}
		if n, _ := e.st.CountJobs(ctx, KindStep); n != 0 {
			t.Fatalf("%d step jobs after refusals", n)
		}

		up, err := e.u.Start(ctx, "urn:dev:a", "2.0", Options{Protocol: ProtocolCoAP, By: 0})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := e.st.CountJobs(ctx, KindStep); n != 1 {
			t.Fatalf("%d step jobs, want 1", n)
		}
		var fe *Error
		if _, err := e.u.Start(ctx, "urn:dev:a", "2.0", Options{}); !errors.As(err, &fe) || fe.Kind != Conflict {
			t.Errorf("second active update: %v", err)
		}
		// A step: the protocol is given, so no read; observe state and
		// result, then write the URI.
		if err := e.u.step(ctx, up.ID); err != nil {
			t.Fatal(err)
		}
		got, _ := e.u.Get(ctx, up.ID)
		if got.State != StateDownloading || got.PackageURI != "coap://srv/fw/2.0.bin" || len(got.OperationIDs) != 3 {
			t.Fatalf("after a step: %+v", got)
		}
		want := []string{"observe /5/0/3 QUEUED", "observe /5/0/5 QUEUED", "write /5/0/1 QUEUED"}
		if s := summary(e.ops(t, reg.EndpointID)); !slices.Equal(s, want) {
			t.Fatalf("queued %v, want %v", s, want)
		}
		// A step with nothing new does nothing.
		if err := e.u.step(ctx, up.ID); err != nil {
			t.Fatal(err)
		}
		if again, _ := e.u.Get(ctx, up.ID); len(again.OperationIDs) != 3 || again.State != StateDownloading {
			t.Errorf("a second step changed %+v", again)
		}
		// The observations went out, the URI write is on its way.
		var d detail
		_ = json.Unmarshal(got.Detail, &d)
		for _, role := range []string{roleObserveState, roleObserveResult} {
			if _, err := e.st.UpdateOperation(ctx, d.Ops[role], store.OperationUpdate{Status: store.OperationConfirmed, Attempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.st.UpdateOperation(ctx, d.Ops[roleWriteURI], store.OperationUpdate{Status: store.OperationSending}); err != nil {
			t.Fatal(err)
		}
		done, err := e.u.Cancel(ctx, up.ID, 0)
		if err != nil || done.State != StateCancelled || done.Active || done.FinishedAt.IsZero() {
			t.Fatalf("cancel: %+v, %v", done, err)
		}
		want = []string{"observe /5/0/3 CONFIRMED", "observe /5/0/5 CONFIRMED", "write /5/0/1 SENDING",
			"write /5/0/1 QUEUED", "cancel-observe /5/0/3 QUEUED", "cancel-observe /5/0/5 QUEUED"}
		ops := e.ops(t, reg.EndpointID)
		if s := summary(ops); !slices.Equal(s, want) {
			t.Fatalf("after cancel %v, want %v", s, want)
		}
		if dop, _ := jobs.DecodeOperation(ops[3]); dop.Values[0].Value.StringValue() != "" {
			t.Errorf("the reset writes %v, want an empty Package URI", dop.Values[0].Value)
		}
		if _, err := e.u.Cancel(ctx, up.ID, 0); !errors.As(err, &fe) || fe.Kind != Conflict {
			t.Errorf("cancel twice: %v", err)
		}
		// A step of the cancelled update does nothing.
		if err := e.u.step(ctx, up.ID); err != nil {
			t.Fatal(err)
		}
		if n := len(e.ops(t, reg.EndpointID)); n != 6 {
			t.Errorf("%d operations after a step of a cancelled update", n)
		}
		var states []string
		for len(sub.C) > 0 {
			if ev := <-sub.C; ev.Topic == events.TopicFirmware {
				states = append(states, ev.Data.(events.FirmwareEvent).State)
			}
		}
		if !slices.Equal(states, []string{StatePending, StateDownloading, StateCancelled}) {
			t.Errorf("published %v", states)
		}
		evs, err := e.st.ListEvents(ctx, reg.EndpointID, 10)
		if err != nil || len(evs) != 3 || evs[0].Kind != "firmware.cancelled" {
			t.Errorf("history: %+v, %v", evs, err)
		}

		// Cancelled before anything reached the device: the queued read is
		// cancelled, nothing is written.
		up2, err := e.u.Start(ctx, "urn:dev:a", "2.0", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.u.step(ctx, up2.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.u.Cancel(ctx, up2.ID, 0); err != nil {
			t.Fatal(err)
		}
		ops = e.ops(t, reg.EndpointID)
		if s := summary(ops[6:]); !slices.Equal(s, []string{"read /5/0 CANCELLED"}) {
			t.Errorf("cancel before anything was sent: %v", s)
		}
	})
}
