package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/lwm2m"
)

func TestEventRoundTrip(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		e := mustEndpoint(t, s, "urn:dev:events")
		other := mustEndpoint(t, s, "urn:dev:other")
		ev := Event{EndpointID: e.ID, Kind: "send", Time: t0.Add(-time.Minute), ReceivedAt: t0}
		vals := []ResourceValue{
			{Path: lwm2m.NewPath(3303, 0, 5700), Value: lwm2m.Float(21.5), DeviceTime: t0.Add(-time.Minute)},
			{Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(87)},
			{EndpointID: e.ID, Path: lwm2m.NewPath(3, 0, 7, 0), Value: lwm2m.Int(3800)},
		}
		id, err := s.IngestEvent(ctx, ev, vals)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.GetEvent(ctx, id)
		ev.ID = id
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("GetEvent = %+v, %v; want %+v", got, err, ev)
		}
		carried, err := s.EventResources(ctx, id)
		if err != nil || len(carried) != 3 {
			t.Fatalf("EventResources = %+v, %v", carried, err)
		}
		wantPaths := []string{"/3/0/7/0", "/3/0/9", "/3303/0/5700"}
		for i, v := range carried {
			if v.Path.String() != wantPaths[i] || v.EventID != id || v.EndpointID != e.ID || v.ReceivedAt != t0 {
				t.Errorf("carried value %d = %+v", i, v)
			}
		}
		if carried[2].DeviceTime != t0.Add(-time.Minute) || carried[2].Value.FloatValue() != 21.5 {
			t.Errorf("value of 3303/0/5700: %+v", carried[2])
		}
		// The values are in the history and the latest values, and the
		// event_resource view links them.
		latest, _ := s.LatestResources(ctx, e.ID, lwm2m.Root)
		if len(latest) != 3 || latest[0].EventID != id {
			t.Errorf("latest after event: %+v", latest)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM event_resource WHERE event_id = $1", id).Scan(&n); err != nil || n != 3 {
			t.Errorf("event_resource rows = %d, %v", n, err)
		}

		// Defaults: time and received time.
		clockOf(s).Advance(time.Hour)
		id2, err := s.IngestEvent(ctx, Event{EndpointID: e.ID, Kind: "register"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got2, _ := s.GetEvent(ctx, id2)
		if got2.Time != t0.Add(time.Hour) || got2.ReceivedAt != t0.Add(time.Hour) {
			t.Errorf("defaulted times: %+v", got2)
		}
		list, err := s.ListEvents(ctx, e.ID, 0)
		if err != nil || len(list) != 2 || list[0].ID != id2 || list[1].ID != id {
			t.Errorf("ListEvents = %+v, %v", list, err)
		}
		if list, _ := s.ListEvents(ctx, e.ID, 1); len(list) != 1 || list[0].ID != id2 {
			t.Errorf("ListEvents limit 1 = %+v", list)
		}

		// Rejected: a value of another endpoint, no kind, a missing
		// endpoint. Nothing is stored.
		if _, err := s.IngestEvent(ctx, Event{EndpointID: e.ID, Kind: "notify"},
			[]ResourceValue{{EndpointID: other.ID, Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(1)}}); err == nil {
			t.Error("value of another endpoint accepted")
		}
		if _, err := s.IngestEvent(ctx, Event{EndpointID: e.ID}, nil); err == nil {
			t.Error("event without kind accepted")
		}
		if _, err := s.IngestEvent(ctx, Event{EndpointID: 999999, Kind: "notify"},
			[]ResourceValue{{Path: lwm2m.NewPath(3, 0, 9), Value: lwm2m.Int(1)}}); !errors.Is(err, ErrConflict) {
			t.Errorf("event of a missing endpoint: %v", err)
		}
		if list, _ := s.ListEvents(ctx, e.ID, 0); len(list) != 2 {
			t.Errorf("rejected events were stored: %d events", len(list))
		}
		if _, err := s.GetEvent(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetEvent(missing) = %v", err)
		}
		if _, err := s.EventResources(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Errorf("EventResources(missing) = %v", err)
		}

		// Deleting the endpoint takes its events and values along.
		if err := s.DeleteEndpoint(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"event", "resource", "resource_latest"} {
			if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE endpoint_id = $1", e.ID).Scan(&n); err != nil || n != 0 {
				t.Errorf("%s rows of the deleted endpoint: %d, %v", table, n, err)
			}
		}
	})
}
