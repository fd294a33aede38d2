package app

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/simulator"
)

// TestHealthzStorage: while the database takes no writes (here: SQLite may
// not grow, as with a full disk) /healthz answers 503 and names the
// reason; it recovers by itself once writes go through again.
func TestHealthzStorage(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := startServer(t, cfg, Tuning{HealthInterval: 50 * time.Millisecond})
	health := func() (int, map[string]string) {
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode, h
	}
	if code, h := health(); code != 200 || h["storage"] != "ok" {
		t.Fatalf("healthy server: %d %v", code, h)
	}
	var pages int
	if err := s.Store.WriteDB().QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.WriteDB().Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	// Devices keep sending; their values cannot be stored.
	startFleet(t, s, 20, func(c *simulator.Config) {
		c.Version = "1.1"
		c.SendInterval = 50 * time.Millisecond
	})
	var h map[string]string
	eventually(t, 10*time.Second, "/healthz failing", func() bool {
		var code int
		code, h = health()
		return code == http.StatusServiceUnavailable
	})
	if h["status"] != "unavailable" || !strings.Contains(h["storage"], "full") {
		t.Errorf("failing /healthz: %v; want the reason", h)
	}
	if _, err := s.Store.WriteDB().Exec("PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "/healthz recovered", func() bool {
		code, _ := health()
		return code == http.StatusOK
	})
}

// TestMetricsListen: with --metrics-listen /metrics moves to a listener of
// its own (with /healthz) and is gone from the HTTP listener.
func TestMetricsListen(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MetricsListen = "127.0.0.1:0"
	s := startServer(t, cfg, Tuning{})
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	metrics := "http://" + s.MetricsAddr()
	if code := get(metrics + "/metrics"); code != 200 {
		t.Errorf("metrics listener /metrics: %d", code)
	}
	if code := get(metrics + "/healthz"); code != 200 {
		t.Errorf("metrics listener /healthz: %d", code)
	}
	if code := get(s.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("HTTP listener /metrics: %d, want 404", code)
	}
	if code := get(s.base + "/healthz"); code != 200 {
		t.Errorf("HTTP listener /healthz: %d", code)
	}
}

// TestInternalErrorNamesRequest: an unexpected error reaches the client as
// "internal error" with the request id, never its chain; the log has both.
func TestInternalErrorNamesRequest(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	var logs logBuffer
	s := startServerLog(t, cfg, Tuning{}, slog.New(slog.NewTextHandler(&logs, nil)))
	_, tok := s.userToken(t, "reader", false)
	// Listing endpoints fails from now on; tokens still work.
	if _, err := s.Store.WriteDB().Exec("ALTER TABLE endpoint RENAME TO endpoint_gone"); err != nil {
		t.Fatal(err)
	}
	r := s.do(t, tok, "GET", "/api/v1/endpoints", nil)
	p := r.problem(t)
	id := r.header.Get("X-Request-Id")
	if r.code != 500 || id == "" || p.Detail != "internal error (request "+id+")" {
		t.Fatalf("internal error: %d, X-Request-Id %q, %+v", r.code, id, p)
	}
	if strings.Contains(string(r.body), "sql:") || strings.Contains(string(r.body), "store:") {
		t.Fatalf("internal chain shown to the client: %s", r.body)
	}
	if !strings.Contains(logs.String(), "request_id="+id) {
		t.Fatalf("log does not name request %s:\n%s", id, logs.String())
	}
}
