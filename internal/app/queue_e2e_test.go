package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/devmgmt"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
)

// End-to-end tests of queued operations: the real server (in process, or
// as a child process that the test kills) and simulated queue-mode devices
// on loopback UDP.

// The devices stay awake deviceWindow after each exchange; the server
// counts on serverWindow, a little less, as operators are told to.
const (
	deviceWindow = 2500 * time.Millisecond
	serverWindow = 2 * time.Second
)

func queueOptions() Tuning {
	return Tuning{ReceiveWindow: serverWindow, JobPollInterval: 100 * time.Millisecond, OpTimeout: 2 * time.Second}
}

type queuedJSON struct {
	ID          int64       `json:"id"`
	Endpoint    string      `json:"endpoint"`
	Kind        string      `json:"kind"`
	Paths       []string    `json:"paths"`
	Status      string      `json:"status"`
	Attempts    int         `json:"attempts"`
	MaxAttempts int         `json:"max_attempts"`
	ResultCode  string      `json:"result_code"`
	ResultError string      `json:"result_error"`
	QueuedBy    string      `json:"queued_by"`
	Values      []valueJSON `json:"values"`
	Result      *struct {
		Values []valueJSON `json:"values"`
	} `json:"result"`
}

func (s *server) enqueue(t *testing.T, ep string, body map[string]any) queuedJSON {
	t.Helper()
	var op queuedJSON
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/operations", body, &op); code != http.StatusAccepted {
		t.Fatalf("queue %v: %d %+v", body, code, op)
	}
	if op.Status != "QUEUED" || op.ID == 0 {
		t.Fatalf("queued: %+v", op)
	}
	return op
}

func (s *server) queued(t *testing.T, ep string, id int64) queuedJSON {
	t.Helper()
	var op queuedJSON
	if code := s.call(t, "GET", fmt.Sprintf("/api/v1/endpoints/%s/operations/%d", ep, id), nil, &op); code != 200 {
		t.Fatalf("get operation %d: %d", id, code)
	}
	return op
}

func (s *server) waitQueued(t *testing.T, ep string, id int64, status string) queuedJSON {
	t.Helper()
	var op queuedJSON
	eventually(t, 15*time.Second, fmt.Sprintf("operation %d %s", id, status), func() bool {
		op = s.queued(t, ep, id)
		return op.Status == status
	})
	return op
}

// waitConfirmed waits until operation id is CONFIRMED, waking dev every
// 2 s meanwhile: work that does not fit one receive window (a slow test
// machine) goes out on a later wake, as with real queue-mode devices.
func (s *server) waitConfirmed(t *testing.T, dev *simulator.Device, ep string, id int64) queuedJSON {
	t.Helper()
	var op queuedJSON
	lastWake := time.Now()
	eventually(t, 30*time.Second, fmt.Sprintf("operation %d CONFIRMED", id), func() bool {
		op = s.queued(t, ep, id)
		if op.Status != "CONFIRMED" && time.Since(lastWake) > 2*time.Second {
			dev.TriggerUpdate()
			lastWake = time.Now()
		}
		return op.Status == "CONFIRMED"
	})
	return op
}

// startSleepyFleet starts queue-mode devices that wake only when told to
// (no value changes to notify, the Update due after 270 s), and waits
// until the server's auto-observe requests after their Register are done:
// all answered, or one dropped (the policy sends nothing after a request
// that got no answer).
//
// An auto-observe request the device dropped (its window ended first on a
// slow machine) holds the server's connection to the device until it times
// out (queueOptions' OpTimeout). The wait covers that time, so that the
// tests' own operations do not queue behind it.
func startSleepyFleet(t *testing.T, s *server, n int, mod func(*simulator.Config)) *simulator.Fleet {
	t.Helper()
	var mu sync.Mutex
	observes, dropped := map[string]int{}, map[string]bool{}
	f := startFleet(t, s, n, func(c *simulator.Config) {
		c.Binding = "UQ"
		c.ReceiveWindow = deviceWindow
		c.ValueInterval = time.Hour
		if mod != nil {
			mod(c)
		}
		next := c.OnEvent
		c.OnEvent = func(e simulator.Event) {
			if isAutoObserve(e.Path) && (e.Kind == simulator.EventRequest || e.Kind == simulator.EventDropped) {
				mu.Lock()
				observes[e.Endpoint]++
				if e.Kind == simulator.EventDropped {
					dropped[e.Endpoint] = true
				}
				mu.Unlock()
			}
			if next != nil {
				next(e)
			}
		}
	})
	eventually(t, 10*time.Second, "auto-observe requests", func() bool {
		mu.Lock()
		defer mu.Unlock()
		done := 0
		for _, d := range f.Devices() {
			if ep := d.Endpoint(); dropped[ep] || observes[ep] >= len(devmgmt.DefaultAutoObserve()) {
				done++
			}
		}
		return done == n
	})
	mu.Lock()
	d := len(dropped)
	mu.Unlock()
	if d > 0 {
		time.Sleep(queueOptions().OpTimeout + 500*time.Millisecond)
	}
	return f
}

func waitAsleep(t *testing.T, d *simulator.Device) {
	t.Helper()
	eventually(t, 10*time.Second, d.Endpoint()+" asleep", func() bool { return !d.Awake() })
}

// requestLog records the server requests devices answered (auto-observe
// left out), as "op path".
type requestLog struct {
	mu  sync.Mutex
	got []string
}

func (l *requestLog) onEvent(e simulator.Event) {
	if isAutoObserve(e.Path) {
		return
	}
	var what string
	switch e.Kind {
	case simulator.EventRequest:
		what = e.Op + " " + e.Path.String()
	case simulator.EventDropped:
		what = "dropped " + e.Path.String()
	default:
		return
	}
	l.mu.Lock()
	l.got = append(l.got, what)
	l.mu.Unlock()
}

// isAutoObserve reports a path the server observes after every Register.
func isAutoObserve(p lwm2m.Path) bool {
	return slices.ContainsFunc(devmgmt.DefaultAutoObserve(), func(o devmgmt.ObserveSpec) bool { return o.Paths[0] == p })
}

func (l *requestLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// isOperation selects the events of queued operations.
func isOperation(ev events.Event) bool { return ev.Topic == events.TopicOperation }

// statusesOf drains sub and returns the statuses published for op id.
func statusesOf(sub *events.Subscription, id int64) []string {
	var out []string
	for {
		select {
		case ev := <-sub.C:
			if d, ok := ev.Data.(events.OperationEvent); ok && d.ID == id {
				out = append(out, d.Status)
			}
		default:
			return out
		}
	}
}

// TestQueuedWriteDeliveredOnNextUpdate queues a write and a read for a
// sleeping device: nothing is sent while it sleeps; on its next Update
// both go out, in order, and the read brings back the written value.
func TestQueuedWriteDeliveredOnNextUpdate(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	sub := s.Events.Subscribe(1000, isOperation)
	defer sub.Close()
	var log requestLog
	f := startSleepyFleet(t, s, 1, func(c *simulator.Config) { c.OnEvent = log.onEvent })
	dev := f.Device(0)
	ep := dev.Endpoint()
	waitAsleep(t, dev)

	w := s.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/3", "value": 600})
	if w.QueuedBy != "admin" || w.Kind != "write" || len(w.Values) != 1 || w.Values[0].Value != float64(600) ||
		w.MaxAttempts != 3 || w.Attempts != 0 {
		t.Fatalf("queued write: %+v", w)
	}
	r := s.enqueue(t, ep, map[string]any{"kind": "read", "path": "/1/0/3"})
	// The workers have looked and found the device asleep: nothing sent.
	time.Sleep(300 * time.Millisecond)
	if got := s.queued(t, ep, w.ID); got.Status != "QUEUED" || got.Attempts != 0 {
		t.Fatalf("while asleep: %+v", got)
	}
	if got := log.list(); len(got) != 0 {
		t.Fatalf("the server sent %v to the sleeping device", got)
	}
	if v, _ := dev.Value(lwm2m.MustParsePath("/1/0/3")); v.String() == "600" {
		t.Fatal("value written while asleep")
	}

	dev.TriggerUpdate()
	got := s.waitConfirmed(t, dev, ep, w.ID)
	if got.Attempts != 1 || got.ResultCode != "" {
		t.Fatalf("confirmed write: %+v", got)
	}
	if v, _ := dev.Value(lwm2m.MustParsePath("/1/0/3")); v.String() != "600" {
		t.Fatalf("device value after delivery: %v", v)
	}
	rd := s.waitConfirmed(t, dev, ep, r.ID)
	if rd.Result == nil || len(rd.Result.Values) != 1 || rd.Result.Values[0].Value != float64(600) {
		t.Fatalf("read back: %+v", rd.Result)
	}
	if st := statusesOf(sub, w.ID); !slices.Equal(st, []string{"QUEUED", "SENDING", "CONFIRMED"}) {
		t.Fatalf("published statuses: %v", st)
	}
	if got, want := log.list(), []string{"write /1/0/3", "read /1/0/3"}; !slices.Equal(got, want) {
		t.Fatalf("device saw %v, want %v", got, want)
	}
	var list struct{ Items []queuedJSON }
	s.call(t, "GET", "/api/v1/endpoints/"+ep+"/operations", nil, &list)
	if len(list.Items) != 2 || list.Items[0].ID != r.ID || list.Items[1].Status != "CONFIRMED" {
		t.Fatalf("list: %+v", list.Items)
	}
	s.call(t, "GET", "/api/v1/endpoints/"+ep+"/operations?status=QUEUED", nil, &list)
	if len(list.Items) != 0 {
		t.Fatalf("queued after delivery: %+v", list.Items)
	}
}

// TestQueuedOperationFailsAfterThreeWakes: a device that answers every
// request with 5.00 costs one attempt per wake; the third makes the
// operation FAILED with the reason. A 4.04 fails at once.
func TestQueuedOperationFailsAfterThreeWakes(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	f := startSleepyFleet(t, s, 1, func(c *simulator.Config) { c.Faults.ErrorRate = 1 })
	dev := f.Device(0)
	ep := dev.Endpoint()
	waitAsleep(t, dev)
	op := s.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/3", "value": 120})
	for wake := 1; wake <= 3; wake++ {
		dev.TriggerUpdate()
		var got queuedJSON
		eventually(t, 10*time.Second, fmt.Sprintf("attempt %d", wake), func() bool {
			got = s.queued(t, ep, op.ID)
			return got.Attempts == wake && got.Status != "SENDING"
		})
		want := "QUEUED"
		if wake == 3 {
			want = "FAILED"
		}
		if got.Status != want || got.ResultCode != "5.00" || !strings.Contains(got.ResultError, "injected fault") {
			t.Fatalf("after wake %d: %+v", wake, got)
		}
		waitAsleep(t, dev)
		// One attempt per wake, not more.
		if got := s.queued(t, ep, op.ID); got.Attempts != wake {
			t.Fatalf("wake %d made %d attempts", wake, got.Attempts)
		}
	}

	// A path the device lacks fails at once: retrying cannot help.
	online := startFleet(t, s, 1, func(c *simulator.Config) { c.BaseIMEI = "35000000000500" })
	bad := s.enqueue(t, online.Device(0).Endpoint(), map[string]any{"kind": "write", "path": "/3/0/9999", "value": 1})
	got := s.waitQueued(t, online.Device(0).Endpoint(), bad.ID, "FAILED")
	if got.Attempts != 1 || got.ResultCode != "4.04" {
		t.Fatalf("write to a missing resource: %+v", got)
	}
}

// TestQueueOrderPerDevice: five operations queued while the device sleeps
// reach it in the order queued, in two rounds within one wake.
func TestQueueOrderPerDevice(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	sub := s.Events.Subscribe(1000, isOperation)
	defer sub.Close()
	var log requestLog
	f := startSleepyFleet(t, s, 1, func(c *simulator.Config) { c.OnEvent = log.onEvent })
	dev := f.Device(0)
	ep := dev.Endpoint()
	waitAsleep(t, dev)
	bodies := []map[string]any{
		{"kind": "write", "path": "/1/0/2", "value": 5},
		{"kind": "write", "path": "/1/0/3", "value": 600},
		{"kind": "write", "path": "/3/0/14", "value": "+02:00"},
		{"kind": "read", "path": "/3/0/0"},
		{"kind": "write", "path": "/3/0/15", "value": "Europe/Berlin"},
	}
	var ids []int64
	for _, b := range bodies {
		ids = append(ids, s.enqueue(t, ep, b).ID)
	}
	dev.TriggerUpdate()
	for _, id := range ids {
		s.waitConfirmed(t, dev, ep, id)
	}
	want := []string{"write /1/0/2", "write /1/0/3", "write /3/0/14", "read /3/0/0", "write /3/0/15"}
	if got := log.list(); !slices.Equal(got, want) {
		t.Fatalf("device saw %v, want %v", got, want)
	}
	var sending []int64
	for {
		select {
		case ev := <-sub.C:
			if d := ev.Data.(events.OperationEvent); d.Status == "SENDING" {
				sending = append(sending, d.ID)
			}
			continue
		default:
		}
		break
	}
	if !slices.Equal(sending, ids) {
		t.Fatalf("SENDING order %v, want %v", sending, ids)
	}
}

// TestTwoDevicesDoNotWaitForEachOther: while one device does not answer,
// another device's operation is delivered.
func TestTwoDevicesDoNotWaitForEachOther(t *testing.T) {
	opts := queueOptions()
	opts.OpTimeout = 3 * time.Second
	s := startServer(t, testConfig(t, t.TempDir()), opts)
	mute := startFleet(t, s, 1, func(c *simulator.Config) { c.Faults.DropRate = 1 })
	fine := startFleet(t, s, 1, func(c *simulator.Config) { c.BaseIMEI = "35000000000600" })
	muteEP, fineEP := mute.Device(0).Endpoint(), fine.Device(0).Endpoint()

	a := s.enqueue(t, muteEP, map[string]any{"kind": "write", "path": "/1/0/3", "value": 100})
	s.waitQueued(t, muteEP, a.ID, "SENDING")
	b := s.enqueue(t, fineEP, map[string]any{"kind": "write", "path": "/1/0/3", "value": 100})
	s.waitQueued(t, fineEP, b.ID, "CONFIRMED")
	if got := s.queued(t, muteEP, a.ID); got.Status != "SENDING" {
		t.Fatalf("the mute device's operation: %+v", got)
	}
	// The attempt on the mute device times out and counts.
	var got queuedJSON
	eventually(t, 10*time.Second, "timeout recorded", func() bool {
		got = s.queued(t, muteEP, a.ID)
		return got.Status == "QUEUED"
	})
	if got.Attempts != 1 || !strings.Contains(got.ResultError, "did not answer in time") {
		t.Fatalf("after the timeout: %+v", got)
	}
}

// TestCancelledOperationNeverSent cancels one of three operations queued
// for a sleeping device: the other two are delivered, it never is.
func TestCancelledOperationNeverSent(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	var log requestLog
	f := startSleepyFleet(t, s, 1, func(c *simulator.Config) { c.OnEvent = log.onEvent })
	dev := f.Device(0)
	ep := dev.Endpoint()
	waitAsleep(t, dev)
	a := s.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/2", "value": 1})
	b := s.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/3", "value": 2})
	c := s.enqueue(t, ep, map[string]any{"kind": "execute", "path": "/3/0/5"})

	var cancelled queuedJSON
	path := fmt.Sprintf("/api/v1/endpoints/%s/operations/%d", ep, b.ID)
	if code := s.call(t, "DELETE", path, nil, &cancelled); code != 200 || cancelled.Status != "CANCELLED" {
		t.Fatalf("cancel: %d %+v", code, cancelled)
	}
	var p problemJSON
	if code := s.call(t, "DELETE", path, nil, &p); code != 409 || p.Code != "conflict" {
		t.Fatalf("cancel twice: %d %+v", code, p)
	}
	if code := s.call(t, "DELETE", fmt.Sprintf("/api/v1/endpoints/%s/operations/%d", ep, c.ID+100), nil, &p); code != 404 {
		t.Fatalf("cancel of an unknown operation: %d %+v", code, p)
	}
	dev.TriggerUpdate()
	s.waitConfirmed(t, dev, ep, a.ID)
	s.waitConfirmed(t, dev, ep, c.ID)
	if got := s.queued(t, ep, b.ID); got.Status != "CANCELLED" || got.Attempts != 0 {
		t.Fatalf("cancelled: %+v", got)
	}
	if got, want := log.list(), []string{"write /1/0/2", "execute /3/0/5"}; !slices.Equal(got, want) {
		t.Fatalf("device saw %v, want %v", got, want)
	}
	if code := s.call(t, "DELETE", fmt.Sprintf("/api/v1/endpoints/%s/operations/%d", ep, a.ID), nil, &p); code != 409 {
		t.Fatalf("cancel of a confirmed operation: %d %+v", code, p)
	}
}

func TestQueueAPIValidation(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), queueOptions())
	f := startSleepyFleet(t, s, 1, nil)
	ep := f.Device(0).Endpoint()
	for _, c := range []struct {
		body map[string]any
		code int
		want string
	}{
		{map[string]any{"kind": "reboot", "path": "/3/0/4"}, 400, "validation failed"},
		{map[string]any{"kind": "read"}, 400, "path is required"},
		{map[string]any{"kind": "write", "path": "/1/0/1"}, 400, "give value or values"},
		{map[string]any{"kind": "write", "path": "/1/0/1", "value": "soon"}, 400, "/1/0/1"},
		{map[string]any{"kind": "execute", "path": "/3/0"}, 400, "want a resource"},
		{map[string]any{"kind": "write-attributes", "path": "/3/0/9", "attributes": map[string]any{"pmin": "x"}}, 400, "pmin"},
		{map[string]any{"kind": "delete", "path": "/3303"}, 400, "object instance"},
	} {
		var p problemJSON
		if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/operations", c.body, &p); code != c.code || !strings.Contains(p.Detail+fmt.Sprint(p), c.want) {
			t.Errorf("%v: %d %+v, want %d with %q", c.body, code, p, c.code, c.want)
		}
	}
	var p problemJSON
	if code := s.call(t, "POST", "/api/v1/endpoints/urn:imei:000000000000000/operations", map[string]any{"kind": "read", "path": "/3/0"}, &p); code != 404 {
		t.Errorf("unknown endpoint: %d %+v", code, p)
	}
	// Every kind is accepted for a sleeping device.
	for _, b := range []map[string]any{
		{"kind": "read", "paths": []string{"/3/0/0", "/1/0/1"}},
		{"kind": "discover", "path": "/3/0"},
		{"kind": "write", "values": map[string]any{"/1/0/3": 60, "/3/0/14": "+01:00"}},
		{"kind": "write", "path": "/1/0", "values": map[string]any{"3": 60}, "mode": "update"},
		{"kind": "execute", "path": "/3/0/4", "args": "0='x'"},
		{"kind": "write-attributes", "path": "/3303/0/5700", "attributes": map[string]any{"pmin": 10, "gt": nil}},
		{"kind": "create", "path": "/3303", "values": map[string]any{"5700": 21.5}},
		{"kind": "delete", "path": "/3303/1"},
		{"kind": "observe", "path": "/3303/0/5700"},
		{"kind": "cancel", "path": "/3303/0/5700"},
		{"kind": "observe-composite", "paths": []string{"/3/0/9", "/3/0/10"}},
	} {
		op := s.enqueue(t, ep, b)
		if op.Kind == "" || len(op.Paths) == 0 {
			t.Errorf("%v: %+v", b, op)
		}
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	resp, err := http.Get(s.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	ops := doc.Paths["/api/v1/endpoints/{ep}/operations"]
	one := doc.Paths["/api/v1/endpoints/{ep}/operations/{id}"]
	if ops["post"] == nil || ops["get"] == nil || one["get"] == nil || one["delete"] == nil {
		t.Fatalf("OpenAPI lacks the queue routes: %v %v", ops, one)
	}
}

// TestQueuedOperationsSurviveKill queues operations on a server process,
// kills it (SIGKILL), starts a new server on the same database and port,
// and checks that the device's next Update gets them, in order.
func TestQueuedOperationsSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	ctx := context.Background()
	dir := t.TempDir()
	cfg := testConfig(t, dir)

	proc := startServerProcess(t, dir)
	// The new server listens where the killed one did.
	cfg.CoAPListen = proc.coap
	child := &server{base: proc.http, token: proc.token}

	var log requestLog
	fleet, err := simulator.NewFleet(simulator.Config{
		Server: cfg.CoAPListen, Devices: 1, Lifetime: 300 * time.Second, Binding: "UQ",
		ReceiveWindow: deviceWindow, ValueInterval: time.Hour, Seed: 1, Logger: testLogger(t), OnEvent: log.onEvent,
	})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fleet.Start(sctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fleet.Stop(ctx)
	})
	dev := fleet.Device(0)
	ep := dev.Endpoint()
	waitAsleep(t, dev)
	first := child.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/3", "value": 77})
	second := child.enqueue(t, ep, map[string]any{"kind": "write", "path": "/1/0/2", "value": 7})

	proc.kill()

	s := startServer(t, cfg, queueOptions())
	for _, id := range []int64{first.ID, second.ID} {
		if got := s.queued(t, ep, id); got.Status != "QUEUED" {
			t.Fatalf("after the kill: %+v", got)
		}
	}
	dev.TriggerUpdate()
	s.waitConfirmed(t, dev, ep, first.ID)
	s.waitConfirmed(t, dev, ep, second.ID)
	if v, _ := dev.Value(lwm2m.MustParsePath("/1/0/3")); v.String() != "77" {
		t.Fatalf("/1/0/3 on the device: %v", v)
	}
	if got, want := log.list(), []string{"write /1/0/3", "write /1/0/2"}; !slices.Equal(got, want) {
		t.Fatalf("device saw %v, want %v", got, want)
	}
}
