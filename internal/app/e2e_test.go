package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/config"
	"github.com/flownexus/flownexus/internal/lwm2m"
	"github.com/flownexus/flownexus/internal/simulator"
)

// server is an App running on loopback ports with a fresh SQLite file,
// plus an API token for its admin user.
type server struct {
	*App
	cfg   config.Config
	token string
	base  string
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("FLOWNEXUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testConfig(t testing.TB, dataDir string) config.Config {
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.CoAPListen = "127.0.0.1:0"
	cfg.CoAPSListen, cfg.FWListen = "", ""
	cfg.SecretKey = config.DevSecretKey
	// The tests' fleets change values every 200 ms and expect prompt
	// notifications: auto-observe without the default pmin (60 s).
	// TestAutoObserveDefaultPolicy runs the default.
	cfg.AutoObserveAttrs = ""
	// The tests' fleets all come from 127.0.0.1, one host: no Register
	// budget per host. TestRegisterFlood runs the default.
	cfg.RegisterRate = 0
	// The tests drive the API with one token as fast as they can: no
	// request budget per token. TestAPIRateLimit runs a limit.
	cfg.APIRate = 0
	return cfg
}

func startServer(t testing.TB, cfg config.Config, opts Tuning) *server {
	t.Helper()
	return startServerLog(t, cfg, opts, testLogger(t))
}

// startServerLog is startServer with the server's logger.
func startServerLog(t testing.TB, cfg config.Config, opts Tuning, log *slog.Logger) *server {
	t.Helper()
	ctx := context.Background()
	if opts.OpTimeout == 0 {
		opts.OpTimeout = 10 * time.Second
	}
	a, err := New(ctx, cfg, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := &server{App: a, cfg: cfg, base: "http://" + a.HTTPAddr()}
	t.Cleanup(func() { s.stop() })
	u, err := a.Store.GetUserByName(ctx, "admin")
	if err != nil {
		hash, _ := auth.HashPassword("admin-password", auth.Params{Memory: 1024, Time: 1, Threads: 1})
		if u, err = a.Store.CreateUser(ctx, "admin", hash, true); err != nil {
			t.Fatal(err)
		}
	}
	tok, hash, prefix := auth.NewToken()
	if _, err := a.Store.CreateAPIToken(ctx, u.ID, "e2e", hash, prefix, time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.token = tok
	return s
}

func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Stop(ctx)
}

// call makes an authenticated API request and decodes the JSON answer.
func (s *server) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func startFleet(t *testing.T, s *server, n int, mod func(*simulator.Config)) *simulator.Fleet {
	t.Helper()
	f := newFleet(t, s, n, mod)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// newFleet is startFleet without the Start; the fleet is stopped at the
// end of the test.
func newFleet(t *testing.T, s *server, n int, mod func(*simulator.Config)) *simulator.Fleet {
	t.Helper()
	cfg := simulator.Config{
		Server:        s.CoAPAddr().String(),
		Devices:       n,
		Lifetime:      300 * time.Second,
		ValueInterval: 200 * time.Millisecond,
		Seed:          1,
		Logger:        testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	f, err := simulator.NewFleet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.Stop(ctx)
	})
	return f
}

// eventually polls cond every 20 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type valueJSON struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

type opResult struct {
	Values      []valueJSON `json:"values"`
	Location    string      `json:"location"`
	Observation string      `json:"observation"`
	Links       []struct {
		Path string `json:"path"`
	} `json:"links"`
}

type problemJSON struct {
	Status   int    `json:"status"`
	Code     string `json:"code"`
	Detail   string `json:"detail"`
	CoAPCode string `json:"coap_code"`
}

func TestEndToEndFleet(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	f := startFleet(t, s, 3, func(c *simulator.Config) { c.SendInterval = 300 * time.Millisecond })
	dev := f.Device(0)
	ep := dev.Endpoint()

	// Registration is visible through the API.
	var list struct {
		Items []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		} `json:"items"`
		Total int `json:"total"`
	}
	eventually(t, 5*time.Second, "3 endpoints online", func() bool {
		s.call(t, "GET", "/api/v1/endpoints?online=true", nil, &list)
		return list.Total == 3
	})

	// Read the Device object.
	var res opResult
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/3/0"}, &res); code != 200 {
		t.Fatalf("read /3/0: %d %+v", code, res)
	}
	got := map[string]valueJSON{}
	for _, v := range res.Values {
		got[v.Path] = v
	}
	if got["/3/0/0"].Value != "flownexus" {
		t.Fatalf("manufacturer: %+v", res.Values)
	}

	// Write the lifetime and read it back from the device.
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/write", map[string]any{"path": "/1/0/1", "value": 600}, &res); code != 200 {
		t.Fatalf("write: %d", code)
	}
	if v, _ := dev.Value(lwm2m.MustParsePath("/1/0/1")); v.String() != "600" {
		t.Fatalf("device lifetime after write: %v", v)
	}
	s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/1/0/1"}, &res)
	if len(res.Values) != 1 || res.Values[0].Value != float64(600) {
		t.Fatalf("read back: %+v", res.Values)
	}

	// A device error keeps its CoAP code.
	var p problemJSON
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/3/0/9999"}, &p); code != 502 || p.CoAPCode != "4.04" || p.Code != "device_error" {
		t.Fatalf("read of a missing resource: %d %+v", code, p)
	}

	// Discover and Execute.
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/discover", map[string]any{"path": "/3303/0"}, &res); code != 200 || len(res.Links) == 0 {
		t.Fatalf("discover: %d %+v", code, res)
	}
	before := dev.Stats().Registrations
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/execute", map[string]any{"path": "/3/0/4"}, nil); code != 200 {
		t.Fatalf("execute reboot: %d", code)
	}
	eventually(t, 10*time.Second, "re-registration after reboot", func() bool { return dev.Stats().Registrations > before })

	// Observe the temperature: notifications arrive in the store.
	eventually(t, 10*time.Second, "device registered again", dev.Registered)
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/observe", map[string]any{"path": "/3303/0/5700"}, &res); code != 200 || res.Observation == "" {
		t.Fatalf("observe: %d %+v", code, res)
	}
	var hist struct {
		Values []valueJSON `json:"values"`
	}
	eventually(t, 10*time.Second, "temperature history", func() bool {
		s.call(t, "GET", "/api/v1/endpoints/"+ep+"/history?path=/3303/0/5700", nil, &hist)
		return len(hist.Values) >= 3
	})
	if hist.Values[0].Type != "float" {
		t.Fatalf("history type: %+v", hist.Values[0])
	}

	// Send (POST /dp) makes events.
	var evs struct {
		Items []struct {
			Kind string `json:"kind"`
		} `json:"items"`
	}
	eventually(t, 10*time.Second, "send events", func() bool {
		s.call(t, "GET", "/api/v1/endpoints/"+ep+"/events", nil, &evs)
		for _, e := range evs.Items {
			if e.Kind == "send" {
				return true
			}
		}
		return false
	})

	// The endpoint detail shows objects and latest values.
	var detail struct {
		Online  bool `json:"online"`
		Objects []struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"objects"`
		Values []valueJSON `json:"values"`
	}
	s.call(t, "GET", "/api/v1/endpoints/"+ep, nil, &detail)
	if !detail.Online || len(detail.Objects) < 6 || len(detail.Values) == 0 {
		t.Fatalf("detail: %+v", detail)
	}

	// Deregistration marks the endpoint offline; operations then say so.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dev.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "endpoint offline", func() bool {
		s.call(t, "GET", "/api/v1/endpoints/"+ep, nil, &detail)
		return !detail.Online
	})
	if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": "/3/0"}, &p); code != 409 || p.Code != "offline" {
		t.Fatalf("read offline: %d %+v", code, p)
	}
}

// unauthorized checks that GET path with each Authorization header (""
// for none) is refused with 401, a challenge and a problem+json body.
func (s *server) unauthorized(t *testing.T, path string, auths ...string) {
	t.Helper()
	for _, auth := range auths {
		req, _ := http.NewRequest("GET", s.base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p problemJSON
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 401 || p.Code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "" ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s, Authorization %q: %d %s %+v %v", path, auth, resp.StatusCode, resp.Header, p, err)
		}
	}
}

func TestAPIAuthAndErrors(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	s.unauthorized(t, "/api/v1/endpoints", "", "Bearer ", "Bearer fnx_wrong", "Basic abc")
	var p problemJSON
	if code := s.call(t, "GET", "/api/v1/endpoints/urn:imei:000000000000000", nil, &p); code != 404 || p.Code != "not_found" {
		t.Errorf("unknown endpoint: %d %+v", code, p)
	}
	if code := s.call(t, "GET", "/api/v1/nope", nil, &p); code != 404 || p.Code != "not_found" {
		t.Errorf("unknown route: %d %+v", code, p)
	}
	if code := s.call(t, "GET", "/api/v1/endpoints?limit=0", nil, &p); code != 400 || p.Code != "bad_request" {
		t.Errorf("bad limit: %d %+v", code, p)
	}
	req, _ := http.NewRequest("POST", s.base+"/api/v1/endpoints/x/read", strings.NewReader("{not json"))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 400 || p.Code != "bad_request" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("malformed body: %d %+v %s", resp.StatusCode, p, resp.Header.Get("Content-Type"))
	}
	// The OpenAPI document is public and describes the operations.
	resp, err = http.Get(s.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/api/v1/endpoints/{ep}/read"]["post"] == nil {
		t.Errorf("openapi: %d %s %d paths", resp.StatusCode, doc.OpenAPI, len(doc.Paths))
	}
}

// TestRestartKeepsRegistrations stops the server while devices stay
// registered, starts a new one on the same database, and checks that the
// devices' next Update is accepted without a new Register.
func TestRestartKeepsRegistrations(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s := startServer(t, cfg, Tuning{})
	port := s.CoAPAddr().Port()
	f := startFleet(t, s, 2, nil)
	s.stop()

	cfg.CoAPListen = fmt.Sprintf("127.0.0.1:%d", port)
	s2 := startServer(t, cfg, Tuning{})
	for _, d := range f.Devices() {
		regs := d.Stats().Registrations
		updates := d.Stats().Updates
		d.TriggerUpdate()
		eventually(t, 10*time.Second, "update after restart", func() bool { return d.Stats().Updates > updates })
		if d.Stats().Registrations != regs {
			t.Fatalf("%s registered again after restart", d.Endpoint())
		}
	}
	var res opResult
	if code := s2.call(t, "POST", "/api/v1/endpoints/"+f.Device(0).Endpoint()+"/read", map[string]any{"path": "/3/0/0"}, &res); code != 200 {
		t.Fatalf("read after restart: %d", code)
	}
}

// TestRestartKeepsObservations restarts the server while a device
// notifies: its notifications after the restart are stored, not answered
// with Reset, so the device keeps every observation the server made.
func TestRestartKeepsObservations(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := startServer(t, cfg, Tuning{})
	f := startFleet(t, s, 1, nil)
	d := f.Device(0)
	eventually(t, 10*time.Second, "auto-observe and notifications", func() bool {
		return d.Observations() > 0 && d.Stats().Notifications > 2
	})
	observed := d.Observations()
	history := func(s *server) int {
		var hist struct {
			Values []valueJSON `json:"values"`
		}
		s.call(t, "GET", "/api/v1/endpoints/"+d.Endpoint()+"/history?path=/3303/0/5700", nil, &hist)
		return len(hist.Values)
	}
	cfg.CoAPListen = s.CoAPAddr().String()
	s.stop()
	s2 := startServer(t, cfg, Tuning{})
	stored := history(s2)
	before := d.Stats().Notifications
	eventually(t, 10*time.Second, "notifications after the restart", func() bool { return d.Stats().Notifications > before+3 })
	if n := d.Observations(); n != observed {
		t.Fatalf("%d observations on the device after the restart, %d before", n, observed)
	}
	eventually(t, 10*time.Second, "temperatures stored after the restart", func() bool { return history(s2) > stored })
	if obs := s2.Devices.Observations(d.Endpoint()); len(obs) != observed {
		t.Fatalf("server holds %d observations after the restart, want %d", len(obs), observed)
	}
}

// TestWildcardListener runs the CoAP listener on all addresses, as the
// default ":5683" does, where go-coap sees a concrete local address on
// incoming datagrams: server-initiated requests must reach the device and
// its answers must come back.
func TestWildcardListener(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPListen = ":0"
	s := startServer(t, cfg, Tuning{})
	f, err := simulator.NewFleet(simulator.Config{
		Server: fmt.Sprintf("127.0.0.1:%d", s.CoAPAddr().Port()), Devices: 1, Seed: 1,
		ValueInterval: 100 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(ctx)
	ep := f.Device(0).Endpoint()
	var res opResult
	for _, p := range []string{"/3/0/0", "/1/0/1", "/3303/0/5700"} {
		if code := s.call(t, "POST", "/api/v1/endpoints/"+ep+"/read", map[string]any{"path": p}, &res); code != 200 {
			t.Fatalf("read %s over a wildcard listener: %d", p, code)
		}
	}
	// The default auto-observations were set up and notify.
	eventually(t, 10*time.Second, "auto-observed humidity in the history", func() bool {
		var hist struct {
			Values []valueJSON `json:"values"`
		}
		s.call(t, "GET", "/api/v1/endpoints/"+ep+"/history?path=/3304/0/5700", nil, &hist)
		return len(hist.Values) >= 2
	})
}
