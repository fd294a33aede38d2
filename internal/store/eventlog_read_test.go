package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
)

// TestEventLogResumeReads: what a resuming event stream reads of the log:
// its bounds, a range up to an id, and appended events equal to what is
// read back.
func TestEventLogResumeReads(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		if lo, hi, err := s.EventLogBounds(ctx); err != nil || lo != 0 || hi != 0 {
			t.Fatalf("empty log: bounds %d %d %v", lo, hi, err)
		}
		at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
		evs := []LoggedEvent{{Topic: "values", Endpoint: "ep", Time: at, Data: json.RawMessage(`{"a": 1}`)}}
		for range 9 {
			evs = append(evs, LoggedEvent{Topic: "operation", Time: at})
		}
		if err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		lo, hi, err := s.EventLogBounds(ctx)
		if err != nil || lo != evs[0].ID || hi != evs[9].ID {
			t.Fatalf("bounds %d %d %v, want %d %d", lo, hi, err, evs[0].ID, evs[9].ID)
		}
		got, err := s.EventsAfter(ctx, EventFilter{After: evs[0].ID, Through: evs[4].ID, Limit: 100, Scope: auth.Everything})
		if err != nil || len(got) != 4 || got[0].ID != evs[1].ID || got[3].ID != evs[4].ID {
			t.Fatalf("after %d through %d: %+v %v", evs[0].ID, evs[4].ID, got, err)
		}
		back, err := s.EventsAfter(ctx, EventFilter{Limit: 100, Scope: auth.Everything})
		if err != nil || len(back) != len(evs) {
			t.Fatalf("read back: %d %v", len(back), err)
		}
		for i := range evs {
			if !back[i].Time.Equal(evs[i].Time) || string(back[i].Data) != string(evs[i].Data) {
				t.Errorf("event %d appended as %v %s, read back as %v %s", i, evs[i].Time, evs[i].Data, back[i].Time, back[i].Data)
			}
		}
	})
}
