package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

// valueCases are values of every type with their edge cases.
var valueCases = []struct {
	name string
	v    lwm2m.Value
}{
	{"none", lwm2m.None()},
	{"int zero", lwm2m.Int(0)},
	{"int negative", lwm2m.Int(-42)},
	{"int min", lwm2m.Int(math.MinInt64)},
	{"int max", lwm2m.Int(math.MaxInt64)},
	{"uint zero", lwm2m.Uint(0)},
	{"uint max int64", lwm2m.Uint(math.MaxInt64)},
	{"uint above max int64", lwm2m.Uint(math.MaxInt64 + 1)},
	{"uint max", lwm2m.Uint(math.MaxUint64)},
	{"float", lwm2m.Float(21.375)},
	{"float negative tiny", lwm2m.Float(-math.SmallestNonzeroFloat64)},
	{"float max", lwm2m.Float(math.MaxFloat64)},
	{"float +inf", lwm2m.Float(math.Inf(1))},
	{"float -inf", lwm2m.Float(math.Inf(-1))},
	{"float integral", lwm2m.Float(3)},
	{"bool true", lwm2m.Bool(true)},
	{"bool false", lwm2m.Bool(false)},
	{"string", lwm2m.String("Zephyr 3.7 – ünïcödé ✓")},
	{"string empty", lwm2m.String("")},
	{"string with NUL", lwm2m.String("a\x00b")},
	{"string not UTF-8", lwm2m.String("\xff\xfe latin-1 \xe9")},
	{"corelnk not UTF-8", lwm2m.Corelnk("</3/0>;x=\xff")},
	{"corelnk", lwm2m.Corelnk(`</3/0>;ver=1.1,</5/0>`)},
	{"opaque", lwm2m.Opaque([]byte{0, 1, 2, 0xfe, 0xff})},
	{"opaque empty", lwm2m.Opaque(nil)},
	{"time", lwm2m.TimeUnix(1_763_632_800)},
	{"time negative", lwm2m.TimeUnix(-1)},
	{"objlnk", lwm2m.Objlnk(lwm2m.ObjLink{Object: 3, Instance: 0})},
	{"objlnk null", lwm2m.Objlnk(lwm2m.ObjLink{Object: 65535, Instance: 65535})},
}

func TestResourceValueRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:values")
		var vals []ResourceValue
		for i, c := range valueCases {
			vals = append(vals, ResourceValue{
				EndpointID: e.ID, Path: lwm2m.NewPath(10000, 0, uint16(i)), Value: c.v,
				DeviceTime: t0.Add(-time.Duration(i) * time.Second), ReceivedAt: t0,
			})
		}
		// A resource instance, without a device time.
		vals = append(vals, ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 7, 1), Value: lwm2m.Int(3800), ReceivedAt: t0})
		if err := s.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		latest, err := s.LatestResources(ctx, e.ID, lwm2m.Root)
		if err != nil {
			t.Fatal(err)
		}
		if len(latest) != len(vals) {
			t.Fatalf("LatestResources returned %d values, want %d", len(latest), len(vals))
		}
		byPath := map[lwm2m.Path]ResourceValue{}
		for _, v := range latest {
			byPath[v.Path] = v
		}
		for i, want := range vals {
			name := "resource instance"
			if i < len(valueCases) {
				name = valueCases[i].name
			}
			got := byPath[want.Path]
			if !got.Value.Equal(want.Value) || got.Value.Type() != want.Value.Type() ||
				got.DeviceTime != want.DeviceTime || got.ReceivedAt != want.ReceivedAt || got.EndpointID != e.ID {
				t.Errorf("%s: latest = %#v %+v, want %#v %+v", name, got.Value, got, want.Value, want)
			}
			hist, err := s.ResourceHistory(ctx, e.ID, want.Path, time.Time{}, time.Time{}, 0)
			if err != nil || len(hist) != 1 || !hist[0].Value.Equal(want.Value) || !reflect.DeepEqual(hist[0].Path, want.Path) {
				t.Errorf("%s: history = %+v, %v", name, hist, err)
			}
		}
	})
}

// NaN is stored as NULL (SQLite cannot store it) and reads back as NaN.
func TestResourceValueNaN(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:nan")
		p := lwm2m.NewPath(3303, 0, 5700)
		if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: e.ID, Path: p, Value: lwm2m.Float(math.NaN())}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.ResourceHistory(ctx, e.ID, p, time.Time{}, time.Time{}, 1)
		if err != nil || len(got) != 1 || got[0].Value.Type() != lwm2m.TypeFloat || !math.IsNaN(got[0].Value.FloatValue()) {
			t.Fatalf("NaN read back as %+v, %v", got, err)
		}
	})
}

func TestInsertResourcesRejects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:rejects")
		good := ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(80)}
		cases := map[string]ResourceValue{
			"object path":   {EndpointID: e.ID, Path: lwm2m.NewPath(3), Value: lwm2m.Int(1)},
			"instance path": {EndpointID: e.ID, Path: lwm2m.NewPath(3, 0), Value: lwm2m.Int(1)},
			"no endpoint":   {Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(1)},
		}
		for name, bad := range cases {
			if err := s.InsertResources(ctx, []ResourceValue{good, bad}); err == nil {
				t.Errorf("%s accepted", name)
			}
		}
		// A missing endpoint fails the whole batch: nothing is stored.
		err := s.InsertResources(ctx, []ResourceValue{good, {EndpointID: 999999, Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(1)}})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("value of a missing endpoint: %v", err)
		}
		if hist, _ := s.ResourceHistory(ctx, e.ID, good.Path, time.Time{}, time.Time{}, 0); len(hist) != 0 {
			t.Errorf("a failed batch left %d values", len(hist))
		}
		if latest, _ := s.LatestResources(ctx, e.ID, lwm2m.Root); len(latest) != 0 {
			t.Errorf("a failed batch left %d latest values", len(latest))
		}
		if err := s.InsertResources(ctx, nil); err != nil {
			t.Errorf("empty batch: %v", err)
		}
	})
}

func TestLatestResources(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:latest")
		other := mustEndpoint(t, s, "urn:dev:other")
		temp := lwm2m.NewPath(3303, 0, 5700)
		at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
		rv := func(ep int64, p lwm2m.Path, v float64, recv time.Time, dev time.Time) ResourceValue {
			return ResourceValue{EndpointID: ep, Path: p, Value: lwm2m.Float(v), ReceivedAt: recv, DeviceTime: dev}
		}
		must := func(vals ...ResourceValue) {
			t.Helper()
			if err := s.InsertResources(ctx, vals); err != nil {
				t.Fatal(err)
			}
		}
		latestTemp := func() float64 {
			t.Helper()
			vs, err := s.LatestResources(ctx, e.ID, temp)
			if err != nil || len(vs) != 1 {
				t.Fatalf("LatestResources(%s) = %+v, %v", temp, vs, err)
			}
			return vs[0].Value.FloatValue()
		}

		// A SenML time series in one batch: the newest device time wins,
		// whatever the order in the batch.
		must(rv(e.ID, temp, 20, at(10), at(1)), rv(e.ID, temp, 22, at(10), at(3)), rv(e.ID, temp, 21, at(10), at(2)))
		if got := latestTemp(); got != 22 {
			t.Errorf("latest after series = %v, want 22", got)
		}
		// Received later wins over an earlier device time.
		must(rv(e.ID, temp, 23, at(11), time.Time{}))
		if got := latestTemp(); got != 23 {
			t.Errorf("latest = %v, want 23", got)
		}
		// A value received earlier than the stored latest (a late batch)
		// goes to the history only.
		must(rv(e.ID, temp, 5, at(9), at(9)))
		if got := latestTemp(); got != 23 {
			t.Errorf("late value replaced latest: %v", got)
		}
		// Same received time: the later-stored value wins a tie.
		must(rv(e.ID, temp, 24, at(11), time.Time{}))
		if got := latestTemp(); got != 24 {
			t.Errorf("tie: latest = %v, want 24", got)
		}
		// Another endpoint's values are separate.
		must(rv(other.ID, temp, 99, at(20), time.Time{}))
		if got := latestTemp(); got != 24 {
			t.Errorf("other endpoint's value leaked: %v", got)
		}

		// Prefixes.
		must(
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 0), Value: lwm2m.String("ACME"), ReceivedAt: at(12)},
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 7, 0), Value: lwm2m.Int(3800), ReceivedAt: at(12)},
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 7, 1), Value: lwm2m.Int(5000), ReceivedAt: at(12)},
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 10), Value: lwm2m.Int(1024), ReceivedAt: at(12)},
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3, 1, 0), Value: lwm2m.String("other"), ReceivedAt: at(12)},
			ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(33, 0, 0), Value: lwm2m.String("not 3"), ReceivedAt: at(12)},
		)
		paths := func(prefix lwm2m.Path) string {
			t.Helper()
			vs, err := s.LatestResources(ctx, e.ID, prefix)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, v := range vs {
				out = append(out, v.Path.String())
			}
			return strings.Join(out, " ")
		}
		for prefix, want := range map[string]string{
			"/":        "/3/0/0 /3/0/7/0 /3/0/7/1 /3/0/10 /3/1/0 /33/0/0 /3303/0/5700",
			"/3":       "/3/0/0 /3/0/7/0 /3/0/7/1 /3/0/10 /3/1/0",
			"/3/0":     "/3/0/0 /3/0/7/0 /3/0/7/1 /3/0/10",
			"/3/0/7":   "/3/0/7/0 /3/0/7/1",
			"/3/0/7/1": "/3/0/7/1",
			"/4":       "",
		} {
			if got := paths(lwm2m.MustParsePath(prefix)); got != want {
				t.Errorf("LatestResources(%s) = %q, want %q", prefix, got, want)
			}
		}
	})
}

func TestResourceHistory(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:history")
		p := lwm2m.NewPath(3303, 0, 5700)
		var vals []ResourceValue
		for i := range 100 {
			vals = append(vals, ResourceValue{EndpointID: e.ID, Path: p, Value: lwm2m.Int(int64(i)), ReceivedAt: t0.Add(time.Duration(i) * time.Minute)})
			// Noise on other paths and endpoints.
			vals = append(vals, ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3303, 1, 5700), Value: lwm2m.Int(-1), ReceivedAt: t0.Add(time.Duration(i) * time.Minute)})
		}
		if err := s.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		ints := func(vs []ResourceValue) []int64 {
			var out []int64
			for _, v := range vs {
				out = append(out, v.Value.IntValue())
			}
			return out
		}
		h, err := s.ResourceHistory(ctx, e.ID, p, t0.Add(10*time.Minute), t0.Add(15*time.Minute), 0)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ints(h), []int64{14, 13, 12, 11, 10}; !reflect.DeepEqual(got, want) {
			t.Errorf("[10 min, 15 min) = %v, want %v", got, want)
		}
		h, _ = s.ResourceHistory(ctx, e.ID, p, t0.Add(10*time.Minute), time.Time{}, 3)
		if got, want := ints(h), []int64{99, 98, 97}; !reflect.DeepEqual(got, want) {
			t.Errorf("newest 3 from 10 min = %v, want %v", got, want)
		}
		h, _ = s.ResourceHistory(ctx, e.ID, p, time.Time{}, t0.Add(2*time.Minute), 0)
		if got, want := ints(h), []int64{1, 0}; !reflect.DeepEqual(got, want) {
			t.Errorf("before 2 min = %v, want %v", got, want)
		}
		h, _ = s.ResourceHistory(ctx, e.ID, p, time.Time{}, time.Time{}, 0)
		if len(h) != 100 {
			t.Errorf("whole history: %d values", len(h))
		}
		if h, _ := s.ResourceHistory(ctx, e.ID, lwm2m.NewPath(3303, 0, 5701), time.Time{}, time.Time{}, 0); len(h) != 0 {
			t.Errorf("history of an unknown path: %v", h)
		}
	})
}

func TestInsertResourcesBatch10000(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var eps []Endpoint
		for i := range 10 {
			eps = append(eps, mustEndpoint(t, s, "urn:dev:batch"+string(rune('0'+i))))
		}
		// 10,000 values: 10 endpoints x 100 paths x 10 samples, more than
		// one INSERT statement's worth.
		vals := make([]ResourceValue, 0, 10000)
		for sample := range 10 {
			for i, e := range eps {
				for r := range 100 {
					vals = append(vals, ResourceValue{
						EndpointID: e.ID, Path: lwm2m.NewPath(3303, uint16(r), 5700),
						Value:      lwm2m.Int(int64(sample*1000 + i*100 + r)),
						DeviceTime: t0.Add(time.Duration(sample) * time.Second), ReceivedAt: t0,
					})
				}
			}
		}
		start := time.Now()
		if err := s.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		t.Logf("10,000 values in %v", time.Since(start))
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM resource").Scan(&n); err != nil || n != 10000 {
			t.Fatalf("resource rows = %d, %v", n, err)
		}
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM resource_latest").Scan(&n); err != nil || n != 1000 {
			t.Fatalf("resource_latest rows = %d, %v", n, err)
		}
		latest, err := s.LatestResources(ctx, eps[3].ID, lwm2m.Root)
		if err != nil || len(latest) != 100 {
			t.Fatalf("latest of one endpoint: %d values, %v", len(latest), err)
		}
		for r, v := range latest {
			if want := int64(9*1000 + 3*100 + r); v.Value.IntValue() != want {
				t.Fatalf("latest of %s = %d, want %d (the last sample)", v.Path, v.Value.IntValue(), want)
			}
		}
	})
}

// Negative zero and infinities: PostgreSQL keeps -0.0, SQLite reads it back
// as +0.0 (documented); both keep the infinities.
func TestResourceValueSpecialFloats(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:floats")
		p := lwm2m.NewPath(3303, 0, 5700)
		if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: e.ID, Path: p, Value: lwm2m.Float(math.Copysign(0, -1))}}); err != nil {
			t.Fatal(err)
		}
		got, err := s.ResourceHistory(ctx, e.ID, p, time.Time{}, time.Time{}, 1)
		if err != nil || len(got) != 1 || got[0].Value.FloatValue() != 0 {
			t.Fatalf("-0.0 read back as %+v, %v", got, err)
		}
		if neg := math.Signbit(got[0].Value.FloatValue()); neg != (s.Dialect() == DialectPostgres) {
			t.Errorf("%s: sign of -0.0 after the round trip: negative = %v", s.Dialect(), neg)
		}
	})
}

// The history and latest-value queries use their indexes on SQLite.
func TestResourceQueryPlans(t *testing.T) {
	s := openTestStore(t, sqliteTestURL(t), true)
	for q, want := range map[string]string{
		"SELECT * FROM resource WHERE endpoint_id = 1 AND path = '/3/0/1' AND received_at >= 0 AND received_at < 5 ORDER BY received_at DESC, id DESC LIMIT 10": "resource_history",
		"SELECT * FROM resource_latest WHERE endpoint_id = 1 AND object_id = 3":                                                                                 "PRIMARY KEY",
		"SELECT * FROM resource WHERE event_id = 7":                                                                                                             "resource_event",
	} {
		rows, err := s.DB().Query("EXPLAIN QUERY PLAN " + q)
		if err != nil {
			t.Fatal(err)
		}
		plan := ""
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan += detail + "\n"
		}
		rows.Close()
		if !strings.Contains(plan, want) || strings.Contains(plan, "SCAN resource") {
			t.Errorf("%s\nplan:\n%s\nwant %s", q, plan, want)
		}
	}
}

// Concurrent ingest and reads on one store.
func TestConcurrentIngest(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:concurrent")
		errs := make(chan error, 16)
		for w := range 8 {
			go func() {
				var err error
				for i := range 10 {
					vals := make([]ResourceValue, 100)
					for j := range vals {
						vals[j] = ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3303, uint16(w), uint16(j)), Value: lwm2m.Int(int64(i))}
					}
					if err = s.InsertResources(ctx, vals); err != nil {
						break
					}
				}
				errs <- err
			}()
			go func() {
				var err error
				for range 20 {
					if _, err = s.LatestResources(ctx, e.ID, lwm2m.Root); err != nil {
						break
					}
				}
				errs <- err
			}()
		}
		for range 16 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM resource").Scan(&n); err != nil || n != 8000 {
			t.Errorf("rows = %d, %v", n, err)
		}
	})
}

// Inserting without the prepared statements (the first use of each
// statement, before prepareMissing prepares it) works, and so does the
// second, prepared, use.
func TestInsertWithoutPreparedStatements(t *testing.T) {
	s := openTestStore(t, sqliteTestURL(t), true)
	ctx := context.Background()
	e := mustEndpoint(t, s, "urn:dev:unprepared")
	vals := make([]ResourceValue, 300)
	for i := range vals {
		vals[i] = ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3303, uint16(i), 5700), Value: lwm2m.Int(int64(i))}
	}
	rows, err := s.encodeResourceRows(vals)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return s.insertResourceRows(ctx, tx, rows) }); err != nil {
		t.Fatal(err)
	}
	if latest, err := s.LatestResources(ctx, e.ID, lwm2m.Root); err != nil || len(latest) != 300 {
		t.Fatalf("latest: %d values, %v", len(latest), err)
	}
	s.prepareMissing(ctx)
	if n := len(s.inserts); n != 8 { // 256 + 32 + 8 + 4 rows, resource and latest
		t.Errorf("%d statements prepared, want 8", n)
	}
	if err := s.InsertResources(ctx, vals); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM resource").Scan(&n); err != nil || n != 600 {
		t.Errorf("%d rows, %v; want 600", n, err)
	}
}
