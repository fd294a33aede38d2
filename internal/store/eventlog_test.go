package store

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

func TestEventLog(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		north, err := s.CreateSite(ctx, "north")
		if err != nil {
			t.Fatal(err)
		}
		south, err := s.CreateSite(ctx, "south")
		if err != nil {
			t.Fatal(err)
		}
		var evs []LoggedEvent
		for i := range 1200 { // more than one insert statement
			e := LoggedEvent{Topic: "values", Endpoint: "ep-n", SiteID: north.ID, Data: json.RawMessage(`{"i":1}`)}
			switch i % 3 {
			case 1:
				e.Endpoint, e.SiteID = "ep-s", south.ID
			case 2:
				e.Topic, e.Endpoint, e.SiteID, e.Data = "registered", "ep-u", 0, nil
			}
			evs = append(evs, e)
		}
		if err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].ID <= evs[i-1].ID {
				t.Fatalf("ids not increasing: %d then %d", evs[i-1].ID, evs[i].ID)
			}
		}
		if evs[0].Time != t0 {
			t.Errorf("time %v, want the store's now %v", evs[0].Time, t0)
		}
		last, err := s.LastEventID(ctx)
		if err != nil || last != evs[len(evs)-1].ID {
			t.Fatalf("LastEventID = %d, %v; want %d", last, err, evs[len(evs)-1].ID)
		}

		got, err := s.EventsAfter(ctx, EventFilter{After: evs[2].ID, Limit: 5, Scope: auth.Everything})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 || got[0].ID != evs[3].ID || got[0].Endpoint != "ep-n" || got[0].SiteID != north.ID ||
			string(got[0].Data) != `{"i":1}` {
			t.Fatalf("EventsAfter = %+v", got)
		}
		got, err = s.EventsAfter(ctx, EventFilter{Limit: 2000, Scope: auth.Scope{Sites: []int64{south.ID}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 400 {
			t.Fatalf("south's events: %d, want 400", len(got))
		}
		for _, e := range got {
			if e.Endpoint != "ep-s" {
				t.Fatalf("event of %q in south's scope", e.Endpoint)
			}
		}
		got, err = s.EventsAfter(ctx, EventFilter{Limit: 2000, Scope: auth.Scope{Unassigned: true}, Topics: []string{"registered"}})
		if err != nil || len(got) != 400 || got[0].Data == nil || string(got[0].Data) != "null" {
			t.Fatalf("unassigned registered events: %d, %v", len(got), err)
		}
		got, err = s.EventsAfter(ctx, EventFilter{Limit: 2000})
		if err != nil || len(got) != 0 {
			t.Fatalf("the zero scope got %d events, %v", len(got), err)
		}
		got, err = s.EventsAfter(ctx, EventFilter{Limit: 2000, Scope: auth.Everything, Endpoint: "ep-n"})
		if err != nil || len(got) != 400 {
			t.Fatalf("endpoint filter: %d events, %v", len(got), err)
		}

		one, err := s.GetLoggedEvent(ctx, evs[5].ID)
		if err != nil || one.Topic != "registered" || one.Endpoint != "ep-u" {
			t.Fatalf("GetLoggedEvent = %+v, %v", one, err)
		}
		if _, err := s.GetLoggedEvent(ctx, last+1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetLoggedEvent of none: %v", err)
		}

		clockOf(s).Advance(time.Hour)
		defer func(n int) { pruneChunk = n }(pruneChunk)
		pruneChunk = 500 // three statements
		if err := s.AppendEvents(ctx, []LoggedEvent{{Topic: "expired", Endpoint: "ep-n"}}); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneEvents(ctx, t0.Add(time.Minute))
		if err != nil || n != int64(len(evs)) {
			t.Fatalf("PruneEvents = %d, %v; want %d", n, err, len(evs))
		}
		got, err = s.EventsAfter(ctx, EventFilter{Scope: auth.Everything})
		if err != nil || len(got) != 1 || got[0].Topic != "expired" || got[0].ID <= last {
			t.Fatalf("after pruning: %+v, %v", got, err)
		}
		if err := s.AppendEvents(ctx, []LoggedEvent{{Endpoint: "x"}}); err == nil {
			t.Fatal("an event without a topic was appended")
		}
	})
}
