package web

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m/objects"
	"github.com/flownexus/flownexus/internal/store"
)

var (
	dataValues = flag.Int("datavalues", 100_000, "values stored for BenchmarkDataPages (10000000 for BENCHMARKS.md)")
	dataDir    = flag.String("datadir", "", "directory caching BenchmarkDataPages' database (default: the system's temporary directory)")
)

// dataBenchShape is the fleet of BenchmarkDataPages for n values: as many
// endpoints as n/10,000 (at least 10), each with /3303/0/5700 and
// /3304/0/5700 reported at a steady rate over the 30 days before t0.
func dataBenchShape(n int) (endpoints, perPath int) {
	endpoints = max(10, n/10_000)
	return endpoints, n / (endpoints * 2)
}

// dataBenchStore opens the cached database of n values, building it first
// when absent (SQLite, a file kept between runs: building 10,000,000 values
// takes minutes).
func dataBenchStore(b *testing.B, n int) *store.Store {
	ctx := context.Background()
	dir := *dataDir
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("flownexus-bench-data-%d.db", n))
	clk := &clock{t: t0}
	if _, err := os.Stat(path); err == nil {
		st, err := store.Open(ctx, path, store.Config{Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		return st
	}
	tmp := path + ".building"
	_ = os.Remove(tmp)
	st, err := store.Open(ctx, tmp, store.Config{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	hash, _ := auth.HashPassword(password, auth.Params{Memory: 1024, Time: 1, Threads: 1})
	if _, err := st.CreateUser(ctx, "admin", hash, true); err != nil {
		b.Fatal(err)
	}
	eps, per := dataBenchShape(n)
	start := time.Now()
	step := 30 * 24 * time.Hour / time.Duration(per)
	db := st.WriteDB()
	for e := range eps {
		ep, err := st.UpsertEndpointRegistration(ctx, store.EndpointRegistration{Name: fmt.Sprintf("urn:imei:%015d", e),
			RegistrationID: fmt.Sprint(e), ObjectLinks: "</3303/0>,</3304/0>", Time: t0})
		if err != nil {
			b.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO resource (endpoint_id, path, object_id, instance_id, resource_id,
			value_type, value_float, received_at) VALUES ($1, $2, $3, 0, 5700, 'float', $4, $5)`)
		if err != nil {
			b.Fatal(err)
		}
		for _, obj := range []int{3303, 3304} {
			p := fmt.Sprintf("/%d/0/5700", obj)
			var last int64
			for i := range per {
				last = t0.Add(-time.Duration(per-i) * step).UnixMilli()
				if _, err := ins.ExecContext(ctx, ep.ID, p, obj, 20+float64((i*7+e)%50)/10, last); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO resource_latest (endpoint_id, path, object_id, instance_id, resource_id,
				value_type, value_float, received_at) VALUES ($1, $2, $3, 0, 5700, 'float', 21, $4)`, ep.ID, p, obj, last); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d values in %v", n, time.Since(start))
	st.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Rename(tmp+suffix, path+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.Fatal(err)
		}
	}
	return dataBenchStore(b, n)
}

// BenchmarkDataPages measures the history page and the data explorer over
// -datavalues values in SQLite, through the whole handler (session,
// queries, downsampling, template): server time p50 and p95, and the
// page's size. Run for BENCHMARKS.md with
//
//	go test -run '^$' -bench BenchmarkDataPages -benchtime 30x -timeout 60m ./internal/web/ -args -datavalues=10000000
func BenchmarkDataPages(b *testing.B) {
	n := *dataValues
	st := dataBenchStore(b, n)
	defer st.Close()
	w, err := New(Config{Store: st, Objects: objects.Default(), Now: func() time.Time { return t0 }, Debug: true})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range Patterns {
		mux.Handle(p, w.Handler())
	}
	e := &env{w: w, st: st, srv: httptest.NewServer(mux)}
	defer e.srv.Close()
	br := e.loggedIn(b, "admin")
	cookies := br.c.Jar.Cookies(mustParse(e.srv.URL))
	h := w.Handler()
	eps, _ := dataBenchShape(n)
	ep := fmt.Sprintf("urn:imei:%015d", eps/2)
	ten := fmt.Sprintf("urn:imei:%014d", eps/20) // ten endpoints
	for _, c := range []struct{ name, path string }{
		{"history-24h", "/devices/" + ep + "/history?path=/3303/0/5700&range=24h"},
		{"history-30d", "/devices/" + ep + "/history?path=/3303/0/5700&range=30d"},
		{"data-one-24h", "/data?names=" + ep + "&path=3303/0/5700&range=24h"},
		{"data-ten-7d", "/data?prefix=" + ten + "&path=3303/*/5700&range=7d"},
		{"data-all-1h", "/data?path=3303/*/5700&range=1h"},
		{"data-all-24h", "/data?path=3303/*/5700&range=24h"},
		{"export-csv-ten-7d", "/data/export?format=csv&prefix=" + ten + "&path=3303/*/5700&range=7d"},
	} {
		b.Run(c.name, func(b *testing.B) { benchPage(b, h, cookies, c.path, true) })
	}
}
