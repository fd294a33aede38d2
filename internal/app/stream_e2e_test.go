package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/events"
	"github.com/flownexus/flownexus/internal/simulator"
)

// End-to-end tests of GET /api/v1/events/stream: a real HTTP client reads
// the stream of a real server while simulated devices talk to it.

// sseMessage is one message of an event stream, or a comment line.
type sseMessage struct {
	ID      int64
	Event   string
	Data    string
	Comment string
}

// streamEvent is the JSON on a message's data: line.
type streamEvent struct {
	Topic    string          `json:"topic"`
	Time     time.Time       `json:"time"`
	Endpoint string          `json:"endpoint"`
	Data     json.RawMessage `json:"data"`
}

func (m sseMessage) event(t *testing.T) streamEvent {
	t.Helper()
	var ev streamEvent
	if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
		t.Fatalf("message %d (%s): data %q: %v", m.ID, m.Event, m.Data, err)
	}
	if ev.Topic != m.Event || ev.Time.IsZero() {
		t.Fatalf("message %d: event %q but data %+v", m.ID, m.Event, ev)
	}
	return ev
}

// sseStream reads one open event stream on its own goroutine.
type sseStream struct {
	resp *http.Response
	C    chan sseMessage // closed at the end of the stream
	err  error           // why it ended (nil: a complete response); valid once C is closed
}

// openStream opens the event stream with the given query and checks the
// response headers: when they arrive, the server's subscription is in
// place.
func (s *server) openStream(t *testing.T, query string) *sseStream {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("stream %q: %d %s %s", query, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	st := &sseStream{resp: resp, C: make(chan sseMessage, 10000)}
	t.Cleanup(func() { resp.Body.Close() })
	go st.read()
	return st
}

func (st *sseStream) read() {
	defer close(st.C)
	sc := bufio.NewScanner(st.resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var m sseMessage
	for sc.Scan() {
		line := sc.Text()
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if line == "" {
				if m.Event != "" || m.Data != "" {
					st.C <- m
				}
				m = sseMessage{}
			} else {
				st.C <- sseMessage{Comment: value}
			}
		case "id":
			m.ID, _ = strconv.ParseInt(value, 10, 64)
		case "event":
			m.Event = value
		case "data":
			m.Data += value
		default:
			st.err = fmt.Errorf("unexpected line %q", line)
			return
		}
	}
	st.err = sc.Err()
}

// next returns the next message that is not a comment, failing the test
// after d.
func (st *sseStream) next(t *testing.T, d time.Duration) sseMessage {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-st.C:
			if !ok {
				t.Fatalf("stream ended: %v", st.err)
			}
			if m.Comment == "" {
				return m
			}
		case <-timer.C:
			t.Fatalf("no event within %v", d)
		}
	}
}

// until reads events until cond returns true for one, failing after d.
// It returns every event read, the last one included.
func (st *sseStream) until(t *testing.T, d time.Duration, what string, cond func(sseMessage, streamEvent) bool) []streamEvent {
	t.Helper()
	deadline := time.Now().Add(d)
	var seen []streamEvent
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("timed out after %v waiting for %s; saw %d events", d, what, len(seen))
		}
		m := st.next(t, left)
		ev := m.event(t)
		seen = append(seen, ev)
		if cond(m, ev) {
			return seen
		}
	}
}

type registrationData struct {
	RegistrationID  string `json:"registration_id"`
	Address         string `json:"address"`
	Transport       string `json:"transport"`
	LifetimeSeconds int    `json:"lifetime_seconds"`
	LwM2MVersion    string `json:"lwm2m_version"`
}

type valuesData struct {
	Kind   string      `json:"kind"`
	Values []valueJSON `json:"values"`
}

func TestEventStreamRefusesWithoutToken(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	s.unauthorized(t, "/api/v1/events/stream", "", "Bearer not-a-token")
	// An unknown topic is refused before the stream starts.
	var p problemJSON
	if code := s.call(t, "GET", "/api/v1/events/stream?topic=values,registerd", nil, &p); code != 400 ||
		!strings.Contains(p.Detail, `"registerd"`) || !strings.Contains(p.Detail, "registered") {
		t.Fatalf("unknown topic: %d %+v", code, p)
	}
	// The OpenAPI document describes the stream.
	var doc struct {
		Paths map[string]struct {
			Get struct {
				Description string `json:"description"`
				Responses   map[string]struct {
					Content map[string]any `json:"content"`
				} `json:"responses"`
			} `json:"get"`
		} `json:"paths"`
	}
	s.call(t, "GET", "/api/v1/openapi.json", nil, &doc)
	op := doc.Paths["/api/v1/events/stream"].Get
	if op.Responses["200"].Content["text/event-stream"] == nil || !strings.Contains(op.Description, "`values`") {
		t.Fatalf("OpenAPI of the stream: %+v", op)
	}
}

// TestEventStreamDevices watches a fleet start, report and stop through
// three streams: one of everything, one of a single endpoint, and one of
// some topics.
func TestEventStreamDevices(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 100 * time.Millisecond})
	f := newFleet(t, s, 2, func(c *simulator.Config) { c.SendInterval = 300 * time.Millisecond })
	ep0, ep1 := f.Device(0).Endpoint(), f.Device(1).Endpoint()
	all := s.openStream(t, "")
	one := s.openStream(t, "endpoint="+url.QueryEscape(ep1))
	some := s.openStream(t, "topic=registered,deregistered&topic=operation")

	start, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.Start(start); err != nil {
		t.Fatal(err)
	}

	// Both devices register, then report values by notifications (the
	// auto-observed paths) and by Send.
	registered := map[string]registrationData{}
	kinds := map[string]bool{}
	ids := int64(0)
	all.until(t, 10*time.Second, "registrations, notifications and a Send", func(m sseMessage, ev streamEvent) bool {
		if m.ID <= ids { // the event log's ids
			t.Fatalf("message id %d after %d", m.ID, ids)
		}
		ids = m.ID
		switch ev.Topic {
		case events.TopicRegistered:
			var d registrationData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			registered[ev.Endpoint] = d
		case events.TopicValues:
			var d valuesData
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			if _, ok := registered[ev.Endpoint]; !ok {
				t.Fatalf("values of %s before its registration", ev.Endpoint)
			}
			if len(d.Values) == 0 || !strings.HasPrefix(d.Values[0].Path, "/") || d.Values[0].Type == "" {
				t.Fatalf("values event: %s", ev.Data)
			}
			kinds[ev.Endpoint+" "+d.Kind] = true
		}
		return len(registered) == 2 && kinds[ep0+" notify"] && kinds[ep0+" send"] &&
			(kinds[ep1+" notify"] || kinds[ep1+" send"])
	})
	for ep, d := range registered {
		if d.RegistrationID == "" || d.Transport != "udp" || d.LifetimeSeconds != 300 || d.Address == "" || d.LwM2MVersion == "" {
			t.Fatalf("registered %s: %+v", ep, d)
		}
	}

	// The endpoint filter: a marker published after all of the above
	// closes what the filtered stream got, in bus order.
	s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: ep1, Data: "marker"})
	var oneTopics []string
	for _, ev := range one.until(t, 5*time.Second, "the marker", func(_ sseMessage, ev streamEvent) bool {
		return string(ev.Data) == `"marker"`
	}) {
		if ev.Endpoint != ep1 {
			t.Fatalf("stream of %s got an event of %q: %s %s", ep1, ev.Endpoint, ev.Topic, ev.Data)
		}
		oneTopics = append(oneTopics, ev.Topic)
	}
	if oneTopics[0] != events.TopicRegistered || !strings.Contains(strings.Join(oneTopics, " "), events.TopicValues) {
		t.Fatalf("stream of %s: %v", ep1, oneTopics)
	}
	// Keep-alive comments arrive while nothing happens on a stream.
	sawKeepAlive := false
	for timeout := time.After(5 * time.Second); !sawKeepAlive; {
		select {
		case m := <-one.C:
			sawKeepAlive = m.Comment == "keep-alive"
		case <-timeout:
			t.Fatal("no keep-alive comment")
		}
	}

	// A queued operation's status changes.
	op := s.enqueue(t, ep0, map[string]any{"kind": "write", "path": "/1/0/3", "value": 600})
	var statuses []string
	some.until(t, 10*time.Second, "operation CONFIRMED", func(_ sseMessage, ev streamEvent) bool {
		if ev.Topic != events.TopicOperation || ev.Endpoint != ep0 {
			return false
		}
		var d events.OperationEvent
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID == op.ID {
			statuses = append(statuses, d.Status)
		}
		return d.Status == "CONFIRMED"
	})
	if strings.Join(statuses, " ") != "QUEUED SENDING CONFIRMED" {
		t.Fatalf("operation statuses: %v", statuses)
	}

	// The fleet stops: both de-register.
	stop, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := f.Stop(stop); err != nil {
		t.Fatal(err)
	}
	gone := map[string]bool{}
	for _, ev := range some.until(t, 5*time.Second, "two de-registrations", func(_ sseMessage, ev streamEvent) bool {
		if ev.Topic == events.TopicDeregistered {
			gone[ev.Endpoint] = true
		}
		return len(gone) == 2
	}) {
		if ev.Topic != events.TopicRegistered && ev.Topic != events.TopicDeregistered && ev.Topic != events.TopicOperation {
			t.Fatalf("topic-filtered stream got %s", ev.Topic)
		}
	}
	if !gone[ep0] || !gone[ep1] {
		t.Fatalf("de-registered: %v", gone)
	}
}

// TestEventStreamExpired: a device that vanishes without de-registering
// expires, and the stream says so.
func TestEventStreamExpired(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{SweepInterval: 100 * time.Millisecond, RegistrationGrace: -1})
	st := s.openStream(t, "topic=registered,expired,deregistered")
	f := startFleet(t, s, 1, func(c *simulator.Config) { c.Lifetime = 2 * time.Second })
	ep := f.Device(0).Endpoint()
	st.until(t, 5*time.Second, "registered", func(_ sseMessage, ev streamEvent) bool { return ev.Topic == events.TopicRegistered })
	gone, cancel := context.WithCancel(context.Background())
	cancel() // no time to de-register
	f.Stop(gone)
	evs := st.until(t, 10*time.Second, "expired", func(_ sseMessage, ev streamEvent) bool { return ev.Topic != events.TopicRegistered })
	if last := evs[len(evs)-1]; last.Topic != events.TopicExpired || last.Endpoint != ep {
		t.Fatalf("after the device vanished: %+v", last)
	}
}

// TestEventStreamSlowClientCatchesUp: events come in bursts faster than
// the stream's share of the feed holds; the client still gets every one
// exactly once, in order (what the feed dropped for it is read from the
// event log), and no dropped notice.
func TestEventStreamSlowClientCatchesUp(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 50 * time.Millisecond})
	const ep, total, burst = "urn:test:burst", 20000, 2000
	st := s.openStream(t, "endpoint="+ep)
	go func() {
		for n := 0; n < total; {
			for range burst {
				n++
				s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: ep, Data: n})
			}
			time.Sleep(time.Millisecond)
		}
	}()
	lastID := int64(0)
	deadline := time.After(30 * time.Second)
	for got := 1; got <= total; {
		select {
		case <-deadline:
			t.Fatalf("after 30 s: received %d of %d", got-1, total)
		case m, ok := <-st.C:
			if !ok {
				t.Fatalf("stream ended: %v", st.err)
			}
			if m.Comment != "" {
				continue
			}
			if m.Event != events.TopicOperation || m.ID <= lastID {
				t.Fatalf("%s message id %d after %d: %s", m.Event, m.ID, lastID, m.Data)
			}
			lastID = m.ID
			if ev := m.event(t); string(ev.Data) != strconv.Itoa(got) {
				t.Fatalf("message %d: data %s", got, ev.Data)
			}
			got++
		}
	}
	if d := s.Webhooks.Stats().Dropped; d != 0 {
		t.Fatalf("the event log dropped %d events", d)
	}
}

// TestEventStreamEndsOnStop: App.Stop does not wait for open streams; they
// end with a complete response.
func TestEventStreamEndsOnStop(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	streams := []*sseStream{s.openStream(t, ""), s.openStream(t, "topic=values")}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	begin := time.Now()
	s.Stop(ctx)
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("Stop took %v with streams open", took)
	}
	for i, st := range streams {
		select {
		case _, ok := <-st.C:
			for ok {
				_, ok = <-st.C
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d still open after Stop", i)
		}
		if st.err != nil && !errors.Is(st.err, io.EOF) {
			t.Fatalf("stream %d ended with %v, not a complete response", i, st.err)
		}
	}
}
