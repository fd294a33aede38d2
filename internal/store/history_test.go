package store

import (
	"context"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/lwm2m"
)

// historyFixture stores, for endpoints a (site north) and b (no site),
// values of /3303/0/5700 and /3303/1/5700 (floats, one a minute from t0)
// and /3/0/0 (a string), and returns the north site's id.
func historyFixture(t *testing.T, s *Store, n int) (site int64, a, b Endpoint) {
	t.Helper()
	ctx := context.Background()
	var err error
	if a, err = s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:h:a", RegistrationID: "ra"}); err != nil {
		t.Fatal(err)
	}
	if b, err = s.UpsertEndpointRegistration(ctx, EndpointRegistration{Name: "urn:h:b", RegistrationID: "rb"}); err != nil {
		t.Fatal(err)
	}
	north, err := s.CreateSite(ctx, "north")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetEndpointSite(ctx, a.ID, north.ID); err != nil {
		t.Fatal(err)
	}
	var vals []ResourceValue
	for _, ep := range []Endpoint{a, b} {
		for i := range n {
			at := t0.Add(time.Duration(i) * time.Minute)
			vals = append(vals,
				ResourceValue{EndpointID: ep.ID, Path: lwm2m.MustParsePath("/3303/0/5700"), Value: lwm2m.Float(float64(i)), ReceivedAt: at},
				ResourceValue{EndpointID: ep.ID, Path: lwm2m.MustParsePath("/3303/1/5700"), Value: lwm2m.Int(int64(-i)), ReceivedAt: at},
				ResourceValue{EndpointID: ep.ID, Path: lwm2m.MustParsePath("/3/0/0"), Value: lwm2m.String("acme"), ReceivedAt: at})
		}
	}
	if err := s.InsertResources(ctx, vals); err != nil {
		t.Fatal(err)
	}
	return north.ID, a, b
}

func TestValueQueries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		site, a, _ := historyFixture(t, s, 30)
		all := ValueQuery{Scope: auth.Everything, Object: 3303, Instance: -1, Resource: 5700}
		keys, more, err := s.ListSeries(ctx, all, 0)
		if err != nil || more || len(keys) != 4 || keys[0].Endpoint != "urn:h:a" || keys[0].Path != "/3303/0/5700" || keys[0].Type != "float" {
			t.Fatalf("series: %+v %v %v", keys, more, err)
		}
		if n, err := s.CountValues(ctx, all); err != nil || n != 120 {
			t.Errorf("count all: %d %v", n, err)
		}
		north := auth.Scope{Sites: []int64{site}}
		scoped := all
		scoped.Scope = north
		if n, _ := s.CountValues(ctx, scoped); n != 60 {
			t.Errorf("count in north: %d", n)
		}
		if n, _ := s.CountValues(ctx, ValueQuery{Object: 3303, Instance: -1, Resource: -1}); n != 0 {
			t.Errorf("zero scope counts %d", n)
		}
		ranged := all
		ranged.From, ranged.To = t0.Add(10*time.Minute), t0.Add(20*time.Minute)
		ranged.Prefix = "urn:h:b"
		if n, _ := s.CountValues(ctx, ranged); n != 20 {
			t.Errorf("count of b in 10 minutes, two paths: %d", n)
		}
		// Keyset pages cover every row once, in order.
		var seen []ValueRow
		var after *ValueCursor
		for {
			page, more, err := s.PageValues(ctx, all, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, page...)
			if !more {
				break
			}
			c := CursorOf(page[len(page)-1])
			after = &c
		}
		if len(seen) != 120 {
			t.Fatalf("pages gave %d rows", len(seen))
		}
		for i := 1; i < len(seen); i++ {
			p, c := seen[i-1], seen[i]
			if p.EndpointID > c.EndpointID || p.EndpointID == c.EndpointID && p.Path.String() == c.Path.String() && !p.ReceivedAt.Before(c.ReceivedAt) {
				t.Fatalf("out of order at %d: %+v then %+v", i, p, c)
			}
		}
		if seen[0].Endpoint != "urn:h:a" || seen[0].Value.FloatValue() != 0 {
			t.Errorf("first row %+v", seen[0])
		}
		one := ValueQuery{Scope: auth.Everything, EndpointID: a.ID, Path: "/3303/1/5700", Object: -1, Instance: -1, Resource: -1}
		if n, _ := s.CountValues(ctx, one); n != 30 {
			t.Errorf("one path: %d", n)
		}
		if n, err := s.CountPoints(ctx, a.ID, "/3303/0/5700", t0, t0.Add(5*time.Minute)); n != 5 || err != nil {
			t.Errorf("count points: %d %v", n, err)
		}
		var ys []float64
		if err := s.EachPoint(ctx, a.ID, "/3303/1/5700", time.Time{}, time.Time{}, func(ms int64, y float64) { ys = append(ys, y) }); err != nil {
			t.Fatal(err)
		}
		if len(ys) != 30 || ys[0] != 0 || ys[29] != -29 {
			t.Errorf("points %v", ys)
		}
		ys = nil
		_ = s.EachPoint(ctx, a.ID, "/3/0/0", time.Time{}, time.Time{}, func(int64, float64) { ys = append(ys, 0) })
		if len(ys) != 0 {
			t.Errorf("a string resource gave %d points", len(ys))
		}
	})
}

func TestEventQueries(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		site, a, b := historyFixture(t, s, 1)
		for i, ep := range []Endpoint{a, b, a} {
			at := t0.Add(time.Duration(i) * time.Minute)
			if _, err := s.IngestEvent(ctx, Event{EndpointID: ep.ID, Kind: "notify", Time: at, ReceivedAt: at}, nil); err != nil {
				t.Fatal(err)
			}
		}
		q := ValueQuery{Scope: auth.Scope{Sites: []int64{site}}}
		if n, err := s.CountEvents(ctx, q); n != 2 || err != nil {
			t.Errorf("events in north: %d %v", n, err)
		}
		var got []EventRow
		if err := s.EachEvent(ctx, ValueQuery{Scope: auth.Everything, From: t0.Add(time.Minute)}, 0, 0, func(r EventRow) error {
			got = append(got, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Endpoint != "urn:h:b" || got[1].Endpoint != "urn:h:a" {
			t.Errorf("events from t0+1m: %+v", got)
		}
	})
}
