package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newServer(t *testing.T, ping func(context.Context) error) *Server {
	t.Helper()
	return New(Config{
		AllowedHosts: []string{"localhost", "127.0.0.1", "[::1]", ".example.org"},
		Version:      "v9.9.9",
		Commit:       "abc123",
		Ping:         ping,
		Registry:     prometheus.NewRegistry(),
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

func do(h http.Handler, method, host, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHealth(t *testing.T) {
	s := newServer(t, func(context.Context) error { return nil })
	w := do(s.Handler(), "GET", "localhost:8000", "/healthz")
	if w.Code != 200 {
		t.Fatalf("code %d", w.Code)
	}
	var h health
	if err := json.Unmarshal(w.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if h != (health{Status: "ok", Version: "v9.9.9", Commit: "abc123", Database: "ok"}) {
		t.Fatalf("health %+v", h)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func TestHealthDatabaseDown(t *testing.T) {
	s := newServer(t, func(context.Context) error { return errors.New("connection refused") })
	w := do(s.Handler(), "GET", "localhost", "/healthz")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"database":"unreachable"`) {
		t.Fatalf("code %d body %s", w.Code, w.Body)
	}
}

func TestMetrics(t *testing.T) {
	s := newServer(t, nil)
	h := s.Handler()
	do(h, "GET", "localhost", "/healthz")
	do(h, "GET", "localhost", "/nope")
	w := do(h, "GET", "localhost", "/metrics")
	if w.Code != 200 {
		t.Fatalf("code %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`flownexus_http_requests_total{code="200",method="GET"} 1`,
		`flownexus_http_requests_total{code="404",method="GET"} 1`,
		"# TYPE flownexus_http_request_duration_seconds histogram",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("content type %q", w.Header().Get("Content-Type"))
	}
}

func TestHostAllowList(t *testing.T) {
	h := newServer(t, nil).Handler()
	for host, want := range map[string]int{
		"localhost":           200,
		"localhost:8000":      200,
		"LOCALHOST":           200,
		"127.0.0.1:8000":      200,
		"[::1]:8000":          200,
		"[::1]":               200,
		"example.org":         200,
		"dash.example.org":    200,
		"evil.com":            400,
		"localhost.evil.com":  400,
		"example.org.evil.io": 400,
		"badexample.org":      400,
		"":                    400,
	} {
		if w := do(h, "GET", host, "/healthz"); w.Code != want {
			t.Errorf("Host %q: code %d, want %d", host, w.Code, want)
		}
	}
	if !HostAllowed([]string{"*"}, "anything.test") {
		t.Error("* does not allow any host")
	}
}

func TestPanicBecomes500(t *testing.T) {
	s := newServer(t, nil)
	s.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	if w := do(s.Handler(), "GET", "localhost", "/boom"); w.Code != 500 {
		t.Fatalf("code %d", w.Code)
	}
}

// TestGracefulShutdown starts a request that is still running when Shutdown
// is called and checks that it completes with its full response while new
// connections are refused.
func TestGracefulShutdown(t *testing.T) {
	s := newServer(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	url := "http://" + ln.Addr().String()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	// The listener closes before in-flight work ends: new connections fail.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: body %q err %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestSecurityHeadersAnd405(t *testing.T) {
	s := newServer(t, nil)
	s.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	s.Handle("GET /own", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Referrer-Policy", "strict-origin-when-cross-origin")
	}))
	h := s.Handler()
	for _, c := range []struct {
		method, host, path string
		code               int
		allow              string
	}{
		{"GET", "localhost", "/healthz", 200, ""},
		{"GET", "localhost", "/metrics", 200, ""},
		{"GET", "localhost", "/nope", 404, ""},
		{"POST", "localhost", "/nope", 404, ""},
		{"POST", "localhost", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "localhost", "/metrics", 405, "GET, HEAD"},
		{"GET", "evil.com", "/healthz", 400, ""},
		{"GET", "localhost", "/boom", 500, ""},
	} {
		w := do(h, c.method, c.host, c.path)
		what := c.method + " " + c.host + c.path
		if w.Code != c.code || w.Header().Get("Allow") != c.allow {
			t.Errorf("%s: %d Allow %q, want %d %q", what, w.Code, w.Header().Get("Allow"), c.code, c.allow)
		}
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", what, got)
		}
		if got := w.Header().Get("Referrer-Policy"); got != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q", what, got)
		}
	}
	// A handler may set its own.
	if got := do(h, "GET", "localhost", "/own").Header().Get("Referrer-Policy"); got != "strict-origin-when-cross-origin" {
		t.Errorf("handler's own Referrer-Policy replaced: %q", got)
	}
}
