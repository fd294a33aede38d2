package app

import (
	"flag"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/flownexus/flownexus/internal/events"
)

// The benchmark's size: small by default for `.ci/run`; the figures for
// BENCHMARKS.md come from
//
//	go test -run '^$' -bench BenchmarkEventStreamFanout -benchtime 1x ./internal/app \
//	    -fanout.streams 100 -fanout.events 50000 -fanout.rate 5000
var (
	fanoutStreams = flag.Int("fanout.streams", 20, "BenchmarkEventStreamFanout: event streams")
	fanoutEvents  = flag.Int("fanout.events", 2000, "BenchmarkEventStreamFanout: events published")
	fanoutRate    = flag.Int("fanout.rate", 2000, "BenchmarkEventStreamFanout: events published per second, in bursts every 10 ms (0: all at once)")
)

// BenchmarkEventStreamFanout measures the event stream's path from the bus
// to HTTP clients: events published on the App's bus are logged by the
// event log's recorder, published again with their log ids, and written
// to -fanout.streams unfiltered streams read by real HTTP clients (TCP,
// every message counted) in the same process as the server. It reports
// the rate at which the bus took the events (publish), the rate at which
// the log committed them, the rate at which each client received them
// (first publish to the last message of the slowest client), all
// messages/s together, and the events the streams dropped. One iteration
// is one run: use -benchtime 1x.
func BenchmarkEventStreamFanout(b *testing.B) {
	for range b.N {
		runEventStreamFanout(b, *fanoutStreams, *fanoutEvents, *fanoutRate)
	}
}

func runEventStreamFanout(b *testing.B, streams, n, rate int) {
	b.StopTimer()
	s := startServer(b, testConfig(b, b.TempDir()), Tuning{})
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: streams}}
	sts := make([]*benchStream, streams)
	for i := range sts {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/events/stream", nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("stream %d: %v %v", i, resp, err)
		}
		sts[i] = &benchStream{body: resp.Body, done: make(chan struct{})}
		go sts[i].read()
		b.Cleanup(func() { resp.Body.Close() })
	}
	logged0 := s.Webhooks.Stats().Logged
	payload := map[string]any{"id": 0, "status": "CONFIRMED", "kind": "write", "path": "/1/0/3"}
	b.StartTimer()
	start := time.Now()
	var busTime time.Duration
	burst, tick := n, time.Duration(0)
	if rate > 0 {
		tick = 10 * time.Millisecond
		burst = max(rate/100, 1)
	}
	for sent := 0; sent < n; {
		t0 := time.Now()
		for range min(burst, n-sent) {
			s.Events.Publish(events.Event{Topic: events.TopicOperation, Endpoint: "urn:bench:fanout", Data: payload})
			sent++
		}
		busTime += time.Since(t0)
		if tick > 0 && sent < n {
			time.Sleep(time.Until(start.Add(time.Duration(sent/burst) * tick)))
		}
	}
	published := time.Since(start)
	var loggedAt time.Duration
	deadline := start.Add(time.Duration(n)*time.Millisecond + 60*time.Second)
	for {
		if loggedAt == 0 && s.Webhooks.Stats().Logged-logged0 >= uint64(n) {
			loggedAt = time.Since(start)
		}
		all := true
		for _, st := range sts {
			if st.messages.Load()+st.dropped.Load() < uint64(n) {
				all = false
				break
			}
		}
		if all && loggedAt > 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after %v: logged %d of %d, a stream has %d+%d dropped", time.Since(start),
				s.Webhooks.Stats().Logged-logged0, n, sts[0].messages.Load(), sts[0].dropped.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var msgs, dropped uint64
	for _, st := range sts {
		msgs += st.messages.Load()
		dropped += st.dropped.Load()
	}
	if lost := s.Webhooks.Stats().Dropped; lost > 0 {
		b.Logf("the event log's recorder dropped %d events", lost)
	}
	b.ReportMetric(float64(n)/busTime.Seconds(), "bus_publish_ev/s")
	b.ReportMetric(float64(n)/published.Seconds(), "offered_ev/s")
	b.ReportMetric(float64(n)/loggedAt.Seconds(), "logged_ev/s")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "sse_ev/s_per_client")
	b.ReportMetric(float64(msgs)/elapsed.Seconds(), "sse_msgs/s")
	b.ReportMetric(float64(dropped), "dropped")
	b.Log(fmt.Sprintf("%d streams, %d events offered over %v: logged after %v, all streams done after %v; %d messages, %d dropped",
		streams, n, published.Round(time.Millisecond), loggedAt.Round(time.Millisecond), elapsed.Round(time.Millisecond), msgs, dropped))
}
