package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/store"
)

// BenchmarkDevicesPage measures GET /devices over 100,000 endpoints in
// SQLite, through the whole handler (session lookup, query, template): the
// first page, a page deep in the list (keyset ?after=), a name prefix
// search and the online filter. It reports the server time's p50 and p95
// and the page's size.
func BenchmarkDevicesPage(b *testing.B) {
	const n = 100_000
	e := newEnv(b, nil)
	ctx := context.Background()
	tx, err := e.st.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	ms := t0.UnixMilli()
	for i := range n {
		online := i%3 != 0
		if _, err := tx.ExecContext(ctx, `INSERT INTO endpoint (name, online, registered_at, last_seen, address, lifetime,
			binding, lwm2m_version, queue_mode, object_links, transport, firmware_version, created_at, updated_at)
			VALUES ($1, $2, $3, $3, '192.0.2.1:5683', 300, 'U', '1.1', FALSE, '</3/0>', 'udp', '1.0.3', $3, $3)`,
			fmt.Sprintf("urn:imei:%015d", i*7919%1_000_003), online, ms); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := e.st.WriteDB().ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	br := e.loggedIn(b, "admin")
	cookies := br.c.Jar.Cookies(mustParse(e.srv.URL))
	h := e.w.Handler()
	for _, c := range []struct{ name, path string }{
		{"first", "/devices"},
		{"deep", "/devices?after=urn:imei:000000000900000"},
		{"prefix", "/devices?q=urn:imei:00000000050"},
		{"online", "/devices?state=online&after=urn:imei:000000000500000"},
		{"seen", "/devices?sort=seen"},
	} {
		b.Run(c.name, func(b *testing.B) { benchPage(b, h, cookies, c.path, true) })
	}
	// Baseline, same data: the API's offset paging (store.ListEndpoints,
	// with its total count) at the same depth as "deep", store time only.
	b.Run("baseline-offset-store", func(b *testing.B) {
		var times []time.Duration
		for b.Loop() {
			start := time.Now()
			if _, _, err := e.st.ListEndpoints(ctx, store.EndpointFilter{Limit: DevicesPageSize, Offset: 90_000}); err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		reportTimes(b, times)
	})
}

// benchPage times GET path through h with the session cookies and
// reports the server time's p50 and p95 and, with size, the page's bytes.
func benchPage(b *testing.B, h http.Handler, cookies []*http.Cookie, path string, size bool) {
	var times []time.Duration
	n := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		times = append(times, time.Since(start))
		if rec.Code != 200 {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
		n = rec.Body.Len()
	}
	reportTimes(b, times)
	if size {
		b.ReportMetric(float64(n), "page-bytes")
	}
}

// reportTimes reports the p50 and p95 of times in milliseconds.
func reportTimes(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*95/100].Microseconds())/1000, "p95-ms")
}

func mustParse(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
