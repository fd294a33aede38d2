package app

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/auth"
	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/simulator"
	"github.com/flownexus/flownexus/internal/store"
)

// Tests of resuming the event stream with Last-Event-ID: message ids are
// the events' ids in the durable event log.

// openStreamAfter opens the event stream resuming after id, with the
// Last-Event-ID header.
func (s *server) openStreamAfter(t *testing.T, query string, id int64) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Last-Event-ID", strconv.FormatInt(id, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("stream after %d: %d", id, resp.StatusCode)
	}
	st := &sseStream{resp: resp, C: make(chan sseMessage, 10000)}
	t.Cleanup(func() { resp.Body.Close() })
	go st.read()
	return st
}

// TestEventStreamResume: a client disconnects while values and operation
// events happen, reconnects with Last-Event-ID, and gets every logged
// event exactly once, in id order, then the live ones.
func TestEventStreamResume(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 100 * time.Millisecond})
	st := s.openStream(t, "")
	f := startFleet(t, s, 2, func(c *simulator.Config) { c.SendInterval = 100 * time.Millisecond })
	ep0 := f.Device(0).Endpoint()

	got := map[int64]int{} // id → times received
	var last int64
	take := func(m sseMessage) {
		if m.ID <= last {
			t.Fatalf("message id %d after %d (%s)", m.ID, last, m.Event)
		}
		last = m.ID
		got[m.ID]++
	}
	st.until(t, 10*time.Second, "values of both devices", func(m sseMessage, ev streamEvent) bool {
		take(m)
		return len(got) >= 6
	})
	st.resp.Body.Close() // the client goes away

	// While it is away: values keep coming, and an operation runs.
	op := s.enqueue(t, ep0, map[string]any{"kind": "write", "path": "/1/0/3", "value": 600})
	resumeWait(t, 10*time.Second, "the operation confirmed", func() bool {
		evs, err := s.Store.EventsAfter(context.Background(), store.EventFilter{After: last, Limit: 1000,
			Scope: auth.Everything, Topics: []string{events.TopicOperation}})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			var d events.OperationEvent
			if json.Unmarshal(e.Data, &d) == nil && d.ID == op.ID && d.Status == "CONFIRMED" {
				return true
			}
		}
		return false
	})
	away, err := s.Store.EventsAfter(context.Background(), store.EventFilter{After: last, Limit: 10000, Scope: auth.Everything})
	if err != nil {
		t.Fatal(err)
	}
	if len(away) < 3 {
		t.Fatalf("%d events while the client was away", len(away))
	}

	// It comes back: everything it missed, then live events that happen
	// after it reconnected (values go on).
	again := s.openStreamAfter(t, "", last)
	end := away[len(away)-1].ID
	var live int
	again.until(t, 10*time.Second, "the missed events and live ones", func(m sseMessage, ev streamEvent) bool {
		if m.Event == "reset" || m.Event == "dropped" {
			t.Fatalf("unexpected %s: %s", m.Event, m.Data)
		}
		take(m)
		if m.ID > end {
			live++
		}
		return live >= 4
	})
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %d received %d times", id, n)
		}
	}
	logged, err := s.Store.EventsAfter(context.Background(), store.EventFilter{After: 0, Through: last, Limit: 100000, Scope: auth.Everything})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range logged {
		if got[e.ID] == 0 {
			t.Fatalf("logged event %d (%s of %s) never received; %d of %d received", e.ID, e.Topic, e.Endpoint, len(got), len(logged))
		}
	}
	if len(logged) != len(got) {
		t.Fatalf("%d logged up to %d, %d received", len(logged), last, len(got))
	}

	// The filters apply to the replay too (the query parameter form).
	ops := s.openStream(t, "topic=operation&last_event_id=0")
	var statuses []string
	ops.until(t, 5*time.Second, "the operation's statuses", func(m sseMessage, ev streamEvent) bool {
		if ev.Topic != events.TopicOperation {
			t.Fatalf("topic-filtered replay got %s", ev.Topic)
		}
		var d events.OperationEvent
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, d.Status)
		return d.Status == "CONFIRMED"
	})
	if len(statuses) != 3 {
		t.Fatalf("replayed statuses %v", statuses)
	}
}

// TestEventStreamResumeReset: an id whose successors are no longer
// logged starts the stream with a reset notice, then continues.
func TestEventStreamResumeReset(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 100 * time.Millisecond})
	ctx := context.Background()
	for i := range 3 {
		s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: "", Data: i})
	}
	resumeWait(t, 5*time.Second, "3 events logged", func() bool {
		_, hi, err := s.Store.EventLogBounds(ctx)
		return err == nil && hi >= 3
	})
	if _, err := s.Store.PruneEvents(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Events.Publish(events.Event{Topic: events.TopicOperation, Data: "after the prune"})
	resumeWait(t, 5*time.Second, "the 4th event logged", func() bool {
		lo, _, err := s.Store.EventLogBounds(ctx)
		return err == nil && lo >= 4
	})
	st := s.openStreamAfter(t, "", 1)
	m := st.next(t, 5*time.Second)
	if m.Event != "reset" || m.ID != 0 {
		t.Fatalf("first message %+v, want a reset without id", m)
	}
	var r struct {
		Data struct {
			LastEventID int64 `json:"last_event_id"`
			Oldest      int64 `json:"oldest"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(m.Data), &r); err != nil || r.Data.LastEventID != 1 || r.Data.Oldest < 4 {
		t.Fatalf("reset %s (%v)", m.Data, err)
	}
	if m := st.next(t, 5*time.Second); m.Event != events.TopicOperation || m.ID != r.Data.Oldest {
		t.Fatalf("after the reset: %+v", m)
	}
	// A malformed id is refused.
	req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Last-Event-ID", "x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("Last-Event-ID x: %d", resp.StatusCode)
	}
}

// resumeWait polls cond until it holds, failing the test after d.
func resumeWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}

// TestEventStreamResumeScope: a site user's replay from the log carries
// the events of its sites' devices only (and those of no device).
func TestEventStreamResumeScope(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 100 * time.Millisecond})
	ctx := context.Background()
	const epA, epB = "urn:test:site-a", "urn:test:site-b"
	if _, err := s.Store.ProvisionEndpoints(ctx, []string{epA, epB}, store.AuditEntry{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	s.assign(t, epA, s.site(t, "a"))
	s.assign(t, epB, s.site(t, "b"))
	_, tok := s.memberToken(t, "viewer", false, "a", auth.SiteUser, auth.FlagOf(auth.ViewData))
	for _, ep := range []string{epA, epB, epA, epB} {
		s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: ep, Data: ep})
	}
	s.Events.Publish(events.Event{Topic: events.TopicOperation, Data: "marker"})
	resumeWait(t, 5*time.Second, "5 events logged", func() bool {
		_, hi, err := s.Store.EventLogBounds(ctx)
		return err == nil && hi >= 5
	})
	for who, token := range map[string]string{"viewer": tok, "admin": s.token} {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream?last_event_id=0", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream of %s: %v %v", who, resp, err)
		}
		st := &sseStream{resp: resp, C: make(chan sseMessage, 10000)}
		go st.read()
		var got []string
		st.until(t, 5*time.Second, "the marker", func(m sseMessage, ev streamEvent) bool {
			got = append(got, ev.Endpoint)
			return string(ev.Data) == `"marker"`
		})
		resp.Body.Close()
		want := []string{epA, epB, epA, epB, ""}
		if who == "viewer" {
			want = []string{epA, epA, ""}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's replay: %q, want %q", who, got, want)
		}
	}
}
