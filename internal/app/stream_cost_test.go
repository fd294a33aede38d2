package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/events"
)

// What open event streams cost the server: each event is encoded once
// whatever the number of streams, and a client that stops reading holds
// a bounded amount of the server's memory.

// countedData is event data that counts how often it is encoded.
type countedData struct {
	n *atomic.Int64
	V int
}

func (c countedData) MarshalJSON() ([]byte, error) {
	c.n.Add(1)
	return json.Marshal(c.V)
}

// TestEventStreamEncodesEachEventOnce: an event's data is encoded once,
// by the durable event log's recorder; the streams, however many, carry
// the log's JSON of it.
func TestEventStreamEncodesEachEventOnce(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{})
	const streams, evs = 20, 10
	open := make([]*sseStream, streams)
	for i := range open {
		open[i] = s.openStream(t, "topic=operation")
	}
	var encoded atomic.Int64
	for i := range evs {
		s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: "urn:test:once", Data: countedData{&encoded, i}})
	}
	for i, st := range open {
		for j := range evs {
			m := st.next(t, 10*time.Second)
			if ev := m.event(t); string(ev.Data) != fmt.Sprint(j) || m.ID != int64(j+1) { // the log's ids, from 1
				t.Fatalf("stream %d message %d: id %d data %s", i, j, m.ID, ev.Data)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if got := encoded.Load(); got != evs {
		t.Fatalf("%d events to %d streams were encoded %d times, want %d (once, for the event log)",
			evs, streams, got, evs)
	}
}

// TestEventStreamStalledClientIsBounded: a client that stops reading
// while large events come holds at most about the stream's share of the
// feed (events.DefaultMaxBytes) of the server's heap, not a queue of
// events; when it reads again it gets every event, those the feed dropped
// for it read from the event log, in order, and the stream goes on.
func TestEventStreamStalledClientIsBounded(t *testing.T) {
	s := startServer(t, testConfig(t, t.TempDir()), Tuning{StreamKeepAlive: 100 * time.Millisecond})
	const ep = "urn:test:stalled"
	query := "endpoint=" + ep

	// The stalled client: it reads the response headers, then nothing.
	conn, err := net.Dial("tcp", s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4<<10), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stalled client: %v %v", resp, err)
	}
	// A witness that reads: when it has an event, the stalled stream has
	// been offered it too.
	witness := s.openStream(t, query)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	// 16 KiB events, in bursts the witness can keep up with; each event's
	// data is its own.
	const size, total, burst = 16 << 10, 600, 10
	for i := 0; i < total; i += burst {
		for j := range burst {
			s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: ep,
				Data: strings.Repeat(string(rune('a'+(i+j)%26)), size)})
		}
		for range burst {
			if m := witness.next(t, 10*time.Second); m.Event != events.TopicOperation {
				t.Fatalf("witness got %s", m.Event)
			}
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap %d KiB before, %d KiB with the stalled stream holding what it can (%d KiB published)",
		before.HeapAlloc>>10, after.HeapAlloc>>10, total*size>>10)
	// The stream holds up to DefaultMaxBytes queued and as much again
	// taken for the write that is stuck.
	if limit := int64(2 << 20); growth > limit {
		t.Fatalf("the heap grew by %d KiB with a stalled stream, more than %d KiB", growth>>10, limit>>10)
	}

	// The client reads again: every event once, in the log's order.
	st := &sseStream{resp: resp, C: make(chan sseMessage, 10000)}
	go st.read()
	lastID := int64(0)
	for got := 0; got < total; got++ {
		m := st.next(t, 10*time.Second)
		if m.Event != events.TopicOperation || m.ID <= lastID {
			t.Fatalf("message %d: %s id %d after %d", got, m.Event, m.ID, lastID)
		}
		lastID = m.ID
		if ev := m.event(t); !strings.HasPrefix(string(ev.Data), `"`+string(rune('a'+got%26))) {
			t.Fatalf("message %d: data %.20s", got, ev.Data)
		}
	}
	// The stream goes on.
	s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: ep, Data: "after"})
	if m := st.next(t, 10*time.Second); m.event(t).Topic != events.TopicOperation || !strings.Contains(m.Data, `"after"`) {
		t.Fatalf("after the stall: %+v", m)
	}
}
