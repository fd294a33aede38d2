package coapd_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpclient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/flownexus/flownexus/internal/coapd"
	"github.com/flownexus/flownexus/internal/ingest"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/lwm2m/senml"
	"github.com/flownexus/flownexus/internal/registry"
	"github.com/flownexus/flownexus/internal/store"
)

// fakeClock is a settable registry clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// stack is a running server over a real SQLite file.
type stack struct {
	t      testing.TB
	dbPath string
	clock  *fakeClock
	st     *store.Store
	w      *ingest.Writer
	reg    *registry.Registry
	srv    *coapd.Server
	addr   string
	logs   *logBuffer

	mu         sync.Mutex
	activities []coapd.Activity
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newStack(t testing.TB, dbPath string, clock *fakeClock) *stack {
	t.Helper()
	return newStackWith(t, dbPath, clock, 0, false, nil)
}

// newStackIdle is newStack with the system clock and the given idle
// timeout, keeping neither logs nor activities (for measurements).
func newStackIdle(t testing.TB, dbPath string, idle time.Duration) *stack {
	t.Helper()
	return newStackWith(t, dbPath, nil, idle, true, nil)
}

// newStackWith is the stack with every option; mod, when set, changes the
// server's Config before it is built.
func newStackWith(t testing.TB, dbPath string, clock *fakeClock, idle time.Duration, quiet bool, mod func(*coapd.Config)) *stack {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dbPath: dbPath, clock: clock, st: st, logs: &logBuffer{}}
	var logw io.Writer = s.logs
	if quiet {
		logw = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: logLevel()}))
	s.w = ingest.New(st, ingest.Config{Logger: log})
	s.w.Start()
	ropts := registry.Config{Logger: log, Ingest: s.w}
	if clock != nil {
		ropts.Clock = clock
	}
	s.reg = registry.New(st, ropts)
	cfg := coapd.Config{
		Registry:    s.reg,
		Ingest:      s.w,
		Types:       objects.Default().TypeOf,
		Logger:      log,
		IdleTimeout: idle,
	}
	noSourceBounds(t, &cfg)
	if mod != nil {
		mod(&cfg)
	}
	s.srv = coapd.New(cfg)
	s.srv.Subscribe(func(a coapd.Activity) {
		if quiet {
			return
		}
		s.mu.Lock()
		s.activities = append(s.activities, a)
		s.mu.Unlock()
	})
	if err := s.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.addr = s.srv.Addr().String()
	t.Cleanup(s.close)
	return s
}

// noSourceBounds turns admission's per-source bounds (the Register budget
// and MaxPerSource) off for benchmarks and fuzz targets: their devices,
// hundreds or thousands, all talk from 127.0.0.1 at once, where a fleet
// comes from many addresses. Tests keep the defaults (TestAdmission checks
// them).
func noSourceBounds(t testing.TB, cfg *coapd.Config) {
	switch t.(type) {
	case *testing.B, *testing.F:
		cfg.Admission.RegisterRate, cfg.Admission.MaxPerSource = -1, 1<<20
	}
}

// close stops server, writer and store, in that order. Calls after the
// first do nothing.
func (s *stack) close() {
	if s.st == nil {
		return
	}
	s.srv.Stop()
	s.w.Close()
	_ = s.st.Close()
	s.st = nil
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)}
}

func dial(t testing.TB, addr string) *udpclient.Conn {
	t.Helper()
	cc, err := udp.Dial(addr, options.WithErrors(func(error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func queries(qs ...string) []message.Option {
	out := make([]message.Option, len(qs))
	for i, q := range qs {
		out[i] = message.Option{ID: message.URIQuery, Value: []byte(q)}
	}
	return out
}

type result struct {
	code     codes.Code
	location string
	body     string
}

func post(t testing.TB, cc *udpclient.Conn, path string, cf message.MediaType, body []byte, qs ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var resp *pool.Message
	var err error
	if rd == nil {
		req, e := cc.NewPostRequest(ctx, path, cf, nil, queries(qs...)...)
		if e != nil {
			t.Fatal(e)
		}
		resp, err = cc.Do(req)
	} else {
		resp, err = cc.Post(ctx, path, cf, rd, queries(qs...)...)
	}
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return toResult(t, resp)
}

func toResult(t testing.TB, resp *pool.Message) result {
	r := result{code: resp.Code()}
	r.location, _ = resp.Options().LocationPath()
	if b, err := resp.ReadBody(); err == nil {
		r.body = string(b)
	}
	return r
}

func del(t testing.TB, cc *udpclient.Conn, path string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Delete(ctx, path)
	if err != nil {
		t.Fatalf("DELETE %s: %v", path, err)
	}
	return toResult(t, resp)
}

const links = `</1/0>,</3/0>,</3303/0>,</5/0>`

func register(t testing.TB, cc *udpclient.Conn, ep string, qs ...string) string {
	t.Helper()
	r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), append([]string{"ep=" + ep}, qs...)...)
	if r.code != codes.Created {
		t.Fatalf("register %s: %v %q", ep, r.code, r.body)
	}
	if !strings.HasPrefix(r.location, "/rd/") {
		t.Fatalf("register %s: location %q", ep, r.location)
	}
	return r.location
}

func history(t testing.TB, st *store.Store, epID int64, p lwm2m.Path) []store.ResourceValue {
	t.Helper()
	vs, err := st.ResourceHistory(context.Background(), epID, p, time.Time{}, time.Now().Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestRegisterUpdateDeregister(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	cc := dial(t, s.addr)
	ctx := context.Background()

	loc := register(t, cc, "urn:imei:1", "lt=300", "lwm2m=1.1", "b=U", "Q", "sms=+15550001")
	ep, err := s.st.GetEndpoint(ctx, "urn:imei:1")
	if err != nil {
		t.Fatal(err)
	}
	if !ep.Online || ep.RegistrationID != strings.TrimPrefix(loc, "/rd/") || ep.Lifetime != 300*time.Second ||
		ep.Binding != "U" || !ep.QueueMode || ep.LwM2MVersion != "1.1" || ep.SMSNumber != "+15550001" ||
		ep.ObjectLinks != links || ep.Address != cc.LocalAddr().String() {
		t.Fatalf("stored endpoint after Register: %+v (client %s)", ep, cc.LocalAddr())
	}
	if vs := history(t, s.st, ep.ID, registry.PathRegistered); len(vs) != 1 || vs[0].Value.Type() != lwm2m.TypeTime {
		t.Fatalf("10240/0/0 history: %+v", vs)
	}
	reg, ok := s.reg.ByEndpoint("urn:imei:1")
	if !ok || !reg.HasInstance(3303, 0) || reg.HasObject(4) {
		t.Fatalf("registry: %+v %v", reg, ok)
	}

	// Update with new lifetime and object list.
	s.clock.Advance(10 * time.Second)
	if r := post(t, cc, loc, message.AppLinkFormat, []byte(`</1/0>,</3/0>,</3304/0>`), "lt=600"); r.code != codes.Changed {
		t.Fatalf("update: %v %q", r.code, r.body)
	}
	ep, _ = s.st.GetEndpoint(ctx, "urn:imei:1")
	if ep.Lifetime != 600*time.Second || ep.ObjectLinks != `</1/0>,</3/0>,</3304/0>` || !ep.Online {
		t.Fatalf("stored endpoint after Update: %+v", ep)
	}
	if reg, _ := s.reg.ByEndpoint("urn:imei:1"); !reg.HasObject(3304) || reg.HasObject(3303) || reg.Lifetime != 600 {
		t.Fatalf("registry after update: %+v", reg)
	}
	if vs := history(t, s.st, ep.ID, registry.PathUpdated); len(vs) != 1 {
		t.Fatalf("10240/0/2 history: %+v", vs)
	}
	// Update without payload or parameters keeps everything.
	if r := post(t, cc, loc, 0, nil); r.code != codes.Changed {
		t.Fatalf("empty update: %v %q", r.code, r.body)
	}
	if ep2, _ := s.st.GetEndpoint(ctx, "urn:imei:1"); ep2.ObjectLinks != ep.ObjectLinks || ep2.Lifetime != ep.Lifetime {
		t.Fatalf("empty update changed the endpoint: %+v", ep2)
	}

	if r := del(t, cc, loc); r.code != codes.Deleted {
		t.Fatalf("deregister: %v", r.code)
	}
	ep, _ = s.st.GetEndpoint(ctx, "urn:imei:1")
	if ep.Online || ep.RegistrationID != "" {
		t.Fatalf("stored endpoint after De-register: %+v", ep)
	}
	if vs := history(t, s.st, ep.ID, registry.PathDeregistered); len(vs) != 1 {
		t.Fatalf("10240/0/1 history: %+v", vs)
	}
	if _, ok := s.reg.ByEndpoint("urn:imei:1"); ok {
		t.Fatal("registration still live after De-register")
	}
	// The registration is gone: Update and De-register get 4.04.
	if r := post(t, cc, loc, 0, nil); r.code != codes.NotFound {
		t.Fatalf("update after de-register: %v", r.code)
	}
	if r := del(t, cc, loc); r.code != codes.NotFound {
		t.Fatalf("de-register twice: %v", r.code)
	}

	s.mu.Lock()
	kinds := []coapd.ActivityKind{}
	for _, a := range s.activities {
		kinds = append(kinds, a.Kind)
	}
	s.mu.Unlock()
	want := []coapd.ActivityKind{coapd.ActivityRegister, coapd.ActivityUpdate, coapd.ActivityUpdate}
	if len(kinds) != len(want) || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Fatalf("activities %v, want %v", kinds, want)
	}
}

func TestRegistrationVersions(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	cc := dial(t, s.addr)
	ctx := context.Background()
	tests := []struct {
		name    string
		qs      []string
		payload string
		want    codes.Code
		version string
		binding string
		queue   bool
		formats []lwm2m.MediaType
	}{
		{"1.0 with UQ binding", []string{"ep=v10", "lt=60", "b=UQ"}, links, codes.Created, "1.0", "UQ", true, nil},
		{"no lwm2m parameter is 1.0", []string{"ep=v10b"}, links, codes.Created, "1.0", "U", false, nil},
		{"1.1 with Q", []string{"ep=v11", "lwm2m=1.1", "b=U", "Q"}, links, codes.Created, "1.1", "U", true, nil},
		{"1.2 without b and with root link", []string{"ep=v12", "lwm2m=1.2", "lt=120"},
			`</>;rt="oma.lwm2m";ct="110 112",</1>;ver=1.2,</1/0>,</3>;ver=1.2,</3/0>`, codes.Created, "1.2", "U", false,
			[]lwm2m.MediaType{lwm2m.FormatSenMLJSON, lwm2m.FormatSenMLCBOR}},
		{"unknown version", []string{"ep=v99", "lwm2m=9.9"}, links, codes.PreconditionFailed, "", "", false, nil},
		{"missing ep", []string{"lt=60", "lwm2m=1.1"}, links, codes.BadRequest, "", "", false, nil},
		{"empty ep", []string{"ep=", "lwm2m=1.1"}, links, codes.BadRequest, "", "", false, nil},
		{"lt not a number", []string{"ep=badlt", "lt=abc"}, links, codes.BadRequest, "", "", false, nil},
		{"lt zero", []string{"ep=badlt", "lt=0"}, links, codes.BadRequest, "", "", false, nil},
		{"lt negative", []string{"ep=badlt", "lt=-5"}, links, codes.BadRequest, "", "", false, nil},
		{"bad binding", []string{"ep=badb", "b=X"}, links, codes.BadRequest, "", "", false, nil},
		{"bad link-format", []string{"ep=badlinks"}, `</3/0`, codes.BadRequest, "", "", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, cc, "/rd", message.AppLinkFormat, []byte(tc.payload), tc.qs...)
			if r.code != tc.want {
				t.Fatalf("code %v (%q), want %v", r.code, r.body, tc.want)
			}
			if tc.want == codes.BadRequest && r.body == "" {
				t.Error("4.00 without diagnostic payload")
			}
			if tc.want != codes.Created {
				return
			}
			ep := strings.TrimPrefix(tc.qs[0], "ep=")
			reg, ok := s.reg.ByEndpoint(ep)
			if !ok {
				t.Fatal("not registered")
			}
			if string(reg.Version) != tc.version || reg.Binding != tc.binding || reg.Queue != tc.queue {
				t.Fatalf("registration %+v", reg)
			}
			if len(tc.formats) > 0 && !equalFormats(reg.Objects.ContentFormats, tc.formats) {
				t.Fatalf("formats %v, want %v", reg.Objects.ContentFormats, tc.formats)
			}
			stored, err := s.st.GetEndpoint(ctx, ep)
			if err != nil || stored.LwM2MVersion != tc.version {
				t.Fatalf("stored %+v %v", stored, err)
			}
		})
	}
	// Each refused request logged one line naming its code.
	logs := s.logs.String()
	for _, code := range []string{"code=4.12", "code=4.00"} {
		if !strings.Contains(logs, code) {
			t.Errorf("log has no %s line:\n%s", code, logs)
		}
	}
	if n := strings.Count(logs, "coap request refused"); n != 8 {
		t.Errorf("%d refusal lines, want 8:\n%s", n, logs)
	}
}

func equalFormats(a, b []lwm2m.MediaType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWrongContentFormat(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	cc := dial(t, s.addr)
	if r := post(t, cc, "/rd", message.AppJSON, []byte(`{}`), "ep=x"); r.code != codes.UnsupportedMediaType {
		t.Fatalf("register with JSON: %v", r.code)
	}
	register(t, cc, "x")
	if r := post(t, cc, "/dp", message.TextPlain, []byte(`1`)); r.code != codes.UnsupportedMediaType {
		t.Fatalf("send as text: %v", r.code)
	}
	if r := post(t, cc, "/dp", message.AppSenmlJSON, []byte(`[{"n":"/3303/0/5700",`)); r.code != codes.BadRequest || r.body == "" {
		t.Fatalf("bad SenML: %v %q", r.code, r.body)
	}
	if r := post(t, cc, "/nothing", message.TextPlain, nil); r.code != codes.NotFound {
		t.Fatalf("unknown path: %v", r.code)
	}
}

func TestSend(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	cc := dial(t, s.addr)
	ctx := context.Background()

	// A Send from an address with no registration is not allowed.
	other := dial(t, s.addr)
	body, err := senml.EncodeCBOR(lwm2m.Root, []lwm2m.Record{{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(21.5)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, other, "/dp", message.AppSenmlCbor, body); r.code != codes.Forbidden {
		t.Fatalf("send unregistered: %v", r.code)
	}

	register(t, cc, "sender", "lwm2m=1.1")
	t1 := time.Unix(1_700_000_000, 0).UTC()
	recs := []lwm2m.Record{
		{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(21.5), Time: t1},
		{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(22.5), Time: t1.Add(time.Minute)},
		{Path: lwm2m.NewPath(3, 0, 7, 0), Value: lwm2m.Int(3800)},
		{Path: lwm2m.NewPath(3, 0, 7, 1), Value: lwm2m.Int(5000)},
	}
	body, err = senml.EncodeCBOR(lwm2m.Root, recs)
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, cc, "/dp", message.AppSenmlCbor, body); r.code != codes.Changed {
		t.Fatalf("send: %v %q", r.code, r.body)
	}
	// The answer came after the commit: the values are there now.
	ep, _ := s.st.GetEndpoint(ctx, "sender")
	temps := history(t, s.st, ep.ID, lwm2m.NewPath(3303, 0, 5700))
	slices.SortFunc(temps, func(a, b store.ResourceValue) int { return a.DeviceTime.Compare(b.DeviceTime) })
	if len(temps) != 2 || !temps[0].DeviceTime.Equal(t1) || temps[1].Value.FloatValue() != 22.5 || temps[0].EventID == 0 ||
		temps[0].EventID != temps[1].EventID {
		t.Fatalf("stored temperatures: %+v", temps)
	}
	if vs := history(t, s.st, ep.ID, lwm2m.NewPath(3, 0, 7, 1)); len(vs) != 1 || vs[0].Value.IntValue() != 5000 || vs[0].EventID != temps[0].EventID {
		t.Fatalf("stored multi-instance value: %+v", vs)
	}
	evs, err := s.st.EventResources(ctx, temps[0].EventID)
	if err != nil || len(evs) != 4 {
		t.Fatalf("event values %d %v", len(evs), err)
	}
	ev, err := s.st.GetEvent(ctx, temps[0].EventID)
	if err != nil || ev.Kind != ingest.KindSend {
		t.Fatalf("event %+v %v", ev, err)
	}
	// Subscribers get the Send's records, just after the answer is written.
	var last coapd.Activity
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		last = s.activities[len(s.activities)-1]
		s.mu.Unlock()
		if last.Kind == coapd.ActivitySend || time.Now().After(deadline) {
			break
		}
	}
	if last.Kind != coapd.ActivitySend || last.Registration.Endpoint != "sender" || !sameRecords(last.Records, recs) {
		t.Fatalf("send activity: %+v", last)
	}
}

// TestRestartKeepsRegistration closes server and store and reopens them on
// the same file: the device's next Update is accepted.
func TestRestartKeepsRegistration(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "db.sqlite")
	clock := newClock()
	s := newStack(t, dbPath, clock)
	cc := dial(t, s.addr)
	loc := register(t, cc, "survivor", "lt=300", "lwm2m=1.1")
	s.close()

	s2 := newStack(t, dbPath, clock)
	cc2 := dial(t, s2.addr)
	clock.Advance(time.Minute)
	if r := post(t, cc2, loc, 0, nil, "lt=400"); r.code != codes.Changed {
		t.Fatalf("update after restart: %v %q", r.code, r.body)
	}
	reg, ok := s2.reg.ByEndpoint("survivor")
	if !ok || reg.Lifetime != 400 || !reg.HasInstance(3303, 0) || reg.Version != lwm2m.V1_1 ||
		reg.Addr.String() != cc2.LocalAddr().String() {
		t.Fatalf("restored registration %+v", reg)
	}
	ep, _ := s2.st.GetEndpoint(context.Background(), "survivor")
	if ep.Lifetime != 400*time.Second || ep.Address != cc2.LocalAddr().String() {
		t.Fatalf("stored after restart update: %+v", ep)
	}
	// An unknown ID still gets 4.04.
	if r := post(t, cc2, "/rd/nosuchid", 0, nil); r.code != codes.NotFound {
		t.Fatalf("unknown id: %v", r.code)
	}
}

func TestLifetimeExpiry(t *testing.T) {
	clock := newClock()
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), clock)
	cc := dial(t, s.addr)
	ctx := context.Background()
	loc := register(t, cc, "sleepy", "lt=60")
	register(t, dial(t, s.addr), "awake", "lt=600")

	var events []registry.Change
	s.reg.Subscribe(func(ev registry.Change) { events = append(events, ev) })

	clock.Advance(59 * time.Second)
	if n := s.reg.Sweep(ctx); n != 0 {
		t.Fatalf("swept %d before the lifetime ended", n)
	}
	clock.Advance(2 * time.Second)
	if n := s.reg.Sweep(ctx); n != 1 {
		t.Fatalf("swept %d, want 1", n)
	}
	ep, _ := s.st.GetEndpoint(ctx, "sleepy")
	if ep.Online || ep.RegistrationID != "" {
		t.Fatalf("expired endpoint stored as %+v", ep)
	}
	if vs := history(t, s.st, ep.ID, registry.PathDeregistered); len(vs) != 1 || !vs[0].Value.TimeValue().Equal(clock.Now().Truncate(time.Second)) {
		t.Fatalf("10240/0/1 on expiry: %+v", vs)
	}
	if len(events) != 1 || events[0].Kind != registry.Expired || events[0].Registration.Endpoint != "sleepy" {
		t.Fatalf("events %+v", events)
	}
	if _, ok := s.reg.ByEndpoint("awake"); !ok {
		t.Fatal("the other registration expired too")
	}
	if r := post(t, cc, loc, 0, nil); r.code != codes.NotFound {
		t.Fatalf("update after expiry: %v", r.code)
	}
	// An Update inside the lifetime keeps it alive.
	loc = register(t, cc, "sleepy", "lt=60")
	clock.Advance(50 * time.Second)
	post(t, cc, loc, 0, nil)
	clock.Advance(50 * time.Second)
	if n := s.reg.Sweep(ctx); n != 0 {
		t.Fatalf("updated registration expired")
	}
}

// TestExpiryAfterRestart: a registration made before a restart whose
// device never returns expires from the store.
func TestExpiryAfterRestart(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "db.sqlite")
	clock := newClock()
	s := newStack(t, dbPath, clock)
	register(t, dial(t, s.addr), "gone", "lt=60")
	s.close()
	s2 := newStack(t, dbPath, clock)
	// The store counts last_seen from the wall clock of the registration;
	// move the fake clock well past it.
	clock.Advance(2 * time.Minute)
	s2.reg.Sweep(context.Background())
	ep, _ := s2.st.GetEndpoint(context.Background(), "gone")
	if ep.Online {
		t.Fatalf("endpoint still online: %+v", ep)
	}
	if vs := history(t, s2.st, ep.ID, registry.PathDeregistered); len(vs) != 1 {
		t.Fatalf("10240/0/1 after restart expiry: %+v", vs)
	}
}

// rawExchange sends one datagram and returns the reply.
func rawExchange(t testing.TB, conn *net.UDPConn, m message.Message) message.Message {
	t.Helper()
	buf := make([]byte, 1500)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf[:n]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err = conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	out := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUnknownTokenGetsReset(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	raddr, _ := net.ResolveUDPAddr("udp", s.addr)
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	opts := message.Options{}
	buf := make([]byte, 16)
	opts, _, _ = opts.SetUint32(buf, message.Observe, 7)
	opts, _, _ = opts.SetContentFormat(buf[4:], message.TextPlain)
	for _, typ := range []message.Type{message.Confirmable, message.NonConfirmable} {
		reply := rawExchange(t, conn, message.Message{
			Code: codes.Content, Type: typ, MessageID: 4242 + int32(typ), Token: message.Token{9, 9, 9, 9},
			Options: opts, Payload: []byte("21.5"),
		})
		if reply.Type != message.Reset || reply.MessageID != 4242+int32(typ) || reply.Code != codes.Empty || len(reply.Token) != 0 {
			t.Fatalf("%v notification with unknown token: got %v", typ, reply.String())
		}
	}
}

func TestMalformedDatagramsDoNotStopTheServer(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	raddr, _ := net.ResolveUDPAddr("udp", s.addr)
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, d := range [][]byte{{}, {0x40}, {0x40, 0x02, 0x00}, {0xff, 0xff, 0xff, 0xff}, {0x48, 0x02, 0, 1, 1}} {
		if _, err := conn.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	// Still serving.
	cc := dial(t, s.addr)
	register(t, cc, "after-garbage")
}

func TestStoppedServerRefusesDial(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	addr := s.srv.Addr()
	s.close()
	if _, err := s.srv.Dial(context.Background(), registry.Registration{Addr: addr}); err == nil {
		t.Fatal("Dial after Stop succeeded")
	}
}

// logLevel is Info, or Debug when COAPD_TEST_DEBUG is set.
func logLevel() slog.Level {
	if os.Getenv("COAPD_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// TestNotificationAckedAfterCommit: a confirmable notification of a known
// token gets an ACK (not a Reset), and its value is in the store when the
// ACK arrives.
func TestNotificationAckedAfterCommit(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	d := newRawDevice(t, s.addr)
	defer d.conn.Close()
	loc, err := d.register("notifier")
	if err != nil {
		t.Fatal(err)
	}
	temp := lwm2m.NewPath(3303, 0, 5700)
	if err := s.reg.AddObservation(context.Background(), registry.Observation{Token: "tok12345", RegistrationID: strings.TrimPrefix(loc, "/rd/"),
		Paths: []lwm2m.Path{temp}, Format: lwm2m.FormatText}); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"20.5", "21.25"} {
		if err := d.notify([]byte("tok12345"), uint32(i+2), v); err != nil {
			t.Fatal(err)
		}
		reg, _ := s.reg.ByEndpoint("notifier")
		vs, err := s.st.LatestResources(context.Background(), reg.EndpointID, temp)
		if err != nil || len(vs) != 1 || vs[0].Value.String() != v || vs[0].Value.Type() != lwm2m.TypeFloat {
			t.Fatalf("after ACK %d: %+v %v", i, vs, err)
		}
	}
	// A bad payload is acknowledged (retransmitting it would not help),
	// stores nothing and logs one line.
	if err := d.notify([]byte("tok12345"), 9, "warm"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(s.logs.String(), "bad notification"); n != 1 {
		t.Fatalf("%d bad-notification lines:\n%s", n, s.logs.String())
	}
	// The subscriber ran before each ACK, with the values stored (none
	// for the bad payload).
	s.mu.Lock()
	var got [][]lwm2m.Record
	for _, a := range s.activities {
		if a.Kind == coapd.ActivityNotify {
			got = append(got, a.Records)
		}
	}
	s.mu.Unlock()
	want := [][]lwm2m.Record{{{Path: temp, Value: lwm2m.Float(20.5)}}, {{Path: temp, Value: lwm2m.Float(21.25)}}, nil}
	if !slices.EqualFunc(got, want, sameRecords) {
		t.Fatalf("notify activities %v, want %v", got, want)
	}
}

func sameRecords(a, b []lwm2m.Record) bool {
	return slices.EqualFunc(a, b, func(a, b lwm2m.Record) bool {
		return a.Path == b.Path && a.Value.Equal(b.Value) && a.Time.Equal(b.Time)
	})
}

// TestStoreUnavailable: with the ingest writer closed (shutdown), Register
// and Send get 5.03 and nothing is registered.
func TestStoreUnavailable(t *testing.T) {
	s := newStack(t, filepath.Join(t.TempDir(), "db.sqlite"), newClock())
	cc := dial(t, s.addr)
	register(t, cc, "early")
	s.w.Close()
	if r := post(t, cc, "/rd", message.AppLinkFormat, []byte(links), "ep=late"); r.code != codes.ServiceUnavailable {
		t.Fatalf("register while shutting down: %v", r.code)
	}
	if _, ok := s.reg.ByEndpoint("late"); ok {
		t.Fatal("registered without storing")
	}
	body, _ := senml.EncodeCBOR(lwm2m.Root, []lwm2m.Record{{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(1)}})
	if r := post(t, cc, "/dp", message.AppSenmlCbor, body); r.code != codes.ServiceUnavailable {
		t.Fatalf("send while shutting down: %v", r.code)
	}
}
