package store

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// scopedFleet makes endpoints a (site north), b (site south) and c (no
// site) and returns them with the two sites' ids.
func scopedFleet(t *testing.T, s *Store) (a, b, c Endpoint, north, south int64) {
	t.Helper()
	ctx := context.Background()
	n, err := s.CreateSite(ctx, "north")
	if err != nil {
		t.Fatal(err)
	}
	so, err := s.CreateSite(ctx, "south")
	if err != nil {
		t.Fatal(err)
	}
	a, b, c = mustEndpoint(t, s, "urn:a"), mustEndpoint(t, s, "urn:b"), mustEndpoint(t, s, "urn:c")
	if err := s.SetEndpointSite(ctx, a.ID, n.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEndpointSite(ctx, b.ID, so.ID); err != nil {
		t.Fatal(err)
	}
	return a, b, c, n.ID, so.ID
}

func TestValueCounts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b, c, north, _ := scopedFleet(t, s)
		temp := lwm2m.NewPath(3303, 0, 5700)
		day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		var vals []ResourceValue
		add := func(ep int64, at time.Time, n int) {
			for i := range n {
				vals = append(vals, ResourceValue{EndpointID: ep, Path: temp, Value: lwm2m.Float(float64(i)), ReceivedAt: at})
			}
		}
		add(a.ID, day.Add(10*time.Hour+time.Minute), 3)   // bucket 10:00
		add(a.ID, day.Add(10*time.Hour+4*time.Minute), 2) // bucket 10:00
		add(b.ID, day.Add(10*time.Hour+6*time.Minute), 4) // bucket 10:05
		add(c.ID, day.Add(11*time.Hour), 1)               // bucket 11:00
		add(a.ID, day.Add(-time.Hour), 7)                 // the day before
		if err := s.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		// One value at a time goes through the trigger too.
		if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: b.ID, Path: temp, Value: lwm2m.Float(1),
			ReceivedAt: day.Add(10*time.Hour + 9*time.Minute)}}); err != nil {
			t.Fatal(err)
		}
		counts := func(sc auth.Scope, since, until time.Time, w time.Duration) []int64 {
			t.Helper()
			bs, err := s.ValueCounts(ctx, sc, since, until, w)
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for i, b := range bs {
				if want := since.Truncate(w).Add(time.Duration(i) * w); !b.Start.Equal(want) {
					t.Errorf("bucket %d starts %v, want %v", i, b.Start, want)
				}
				out = append(out, b.Count)
			}
			return out
		}
		from := day.Add(10 * time.Hour)
		if got := counts(auth.Everything, from, from.Add(14*time.Minute), 5*time.Minute); !slices.Equal(got, []int64{5, 5, 0}) {
			t.Errorf("5-minute buckets = %v", got)
		}
		if got := counts(auth.Everything, from.Add(-time.Hour), from.Add(time.Hour), time.Hour); !slices.Equal(got, []int64{0, 10, 1}) {
			t.Errorf("hourly = %v", got)
		}
		if got := counts(auth.Everything, day.Add(-24*time.Hour), day.Add(time.Hour), 24*time.Hour); !slices.Equal(got, []int64{7, 11}) {
			t.Errorf("daily = %v", got)
		}
		northOnly := auth.Scope{Sites: []int64{north}}
		if got := counts(northOnly, day.Add(-24*time.Hour), day, 24*time.Hour); !slices.Equal(got, []int64{7, 5}) {
			t.Errorf("north daily = %v", got)
		}
		if got := counts(auth.Scope{Sites: []int64{}, Unassigned: true}, day, day, 24*time.Hour); !slices.Equal(got, []int64{1}) {
			t.Errorf("unassigned = %v", got)
		}
		if got := counts(auth.Scope{}, day, day, 24*time.Hour); !slices.Equal(got, []int64{0}) {
			t.Errorf("zero scope = %v", got)
		}
		if _, err := s.ValueCounts(ctx, auth.Everything, day, day, time.Minute); err == nil {
			t.Error("a 1-minute width was accepted")
		}
	})
}

func TestFirmwareVersionCounts(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		a, b, c, north, south := scopedFleet(t, s)
		d := mustEndpoint(t, s, "urn:d")
		ver := lwm2m.NewPath(3, 0, 3)
		set := func(ep int64, v string, at time.Duration) {
			t.Helper()
			if err := s.InsertResources(ctx, []ResourceValue{{EndpointID: ep, Path: ver, Value: lwm2m.String(v),
				ReceivedAt: t0.Add(at)}}); err != nil {
				t.Fatal(err)
			}
		}
		set(a.ID, "1.0", 0)
		set(a.ID, "1.1", time.Second) // the latest counts
		set(b.ID, "1.1", 0)
		set(c.ID, "1.0", 0)
		e := mustEndpoint(t, s, "urn:e")
		// d reported no version and was never updated: not counted. e
		// reported none, an update confirmed 2.0; a's report wins over its
		// column.
		for ep, v := range map[int64]string{e.ID: "2.0", a.ID: "0.1"} {
			if err := s.SetEndpointFirmwareVersion(ctx, ep, v); err != nil {
				t.Fatal(err)
			}
		}
		_ = d
		got, err := s.FirmwareVersionCounts(ctx, auth.Everything)
		if want := []VersionCount{{"1.1", 2}, {"1.0", 1}, {"2.0", 1}}; err != nil || !slices.Equal(got, want) {
			t.Errorf("all = %v, %v; want %v", got, err, want)
		}
		got, err = s.FirmwareVersionCounts(ctx, auth.Scope{Sites: []int64{north, south}})
		if want := []VersionCount{{"1.1", 2}}; err != nil || !slices.Equal(got, want) {
			t.Errorf("north+south = %v, %v", got, err)
		}
		if got, err := s.FirmwareVersionCounts(ctx, auth.Scope{}); err != nil || len(got) != 0 {
			t.Errorf("zero scope = %v, %v", got, err)
		}
	})
}

// TestValueCountBackfill checks that migration 00018 counts the values
// stored before it.
func TestValueCountBackfill(t *testing.T) {
	forEachEngineWith(t, false, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if _, err := s.goose.UpTo(ctx, 16); err != nil {
			t.Fatal(err)
		}
		e := mustEndpoint(t, s, "urn:old")
		var vals []ResourceValue
		for i := range 5 {
			vals = append(vals, ResourceValue{EndpointID: e.ID, Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(1),
				ReceivedAt: t0.Add(time.Duration(i) * time.Minute)})
		}
		if err := s.InsertResources(ctx, vals); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		bs, err := s.ValueCounts(ctx, auth.Everything, t0, t0, time.Hour)
		if err != nil || len(bs) != 1 || bs[0].Count != 5 {
			t.Errorf("after the migration: %+v, %v", bs, err)
		}
		var n sql.NullInt64
		if err := s.DB().QueryRowContext(ctx, "SELECT SUM(n) FROM value_count").Scan(&n); err != nil || n.Int64 != 5 {
			t.Errorf("value_count holds %v, %v", n, err)
		}
	})
}
